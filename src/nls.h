/*-------------------------------------------------------------------------
 * nls.h
 *	  zksync's message catalog (nls.mk).
 *
 * Our messages are looked up in zksync's own catalog, bound in _PG_init,
 * as PostgreSQL's own modules look up theirs.  Every file that reports
 * includes this right after postgres.h, so that ereport() and _() name our
 * domain.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_NLS_H
#define ZKSYNC_NLS_H

#undef TEXTDOMAIN
#define TEXTDOMAIN PG_TEXTDOMAIN("zksync")
#undef _
#define _(x) dgettext(TEXTDOMAIN, x)

#endif							/* ZKSYNC_NLS_H */
