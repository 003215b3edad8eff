/*-------------------------------------------------------------------------
 * settings.c
 *	  Every zksync setting (GUC) and its check hook.
 *
 * A bad value is refused by a check hook with a message that says why
 * (names.c checks hosts and root, as it checks names).  A change applies
 * to the next ZooKeeper session; session.c keeps a session that holds
 * anything, so a change never silently drops a lock.  zksync.auth is a
 * secret: it is never shown or quoted (see check_auth).
 *
 * zksync.lock_layout names the read-write lock nodes created after it
 * changes (layout.c); a node already made keeps its name, so a change
 * never touches a held lock.
 *
 * What can go wrong: a value that would break a path or a connect string
 * (names.c says why, and the check hook refuses it: a check hook never
 * throws), and a secret that must not show (zksync.auth, below).
 * Every setting's variable is defined here, zksync.local_handoff's (which
 * only handoff.c reads) too: this file is a leaf that others read.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "nls.h"
#include "names.h"
#include "settings.h"

char	   *zksync_hosts = NULL;
char	   *zksync_root = NULL;
int			zksync_session_timeout = 10000;
int			zksync_connect_timeout = 10000;
char	   *zksync_auth = NULL;
bool		zksync_synchronous_release = true;
int			zksync_max_holds = 10000;
char	   *zksync_lock_layout = NULL;
bool		zksync_local_handoff = true;
int			zksync_local_locks_per_backend = 64;

/* check_auth refused a SET: hide the statement of the ERROR that follows */
static bool auth_refused = false;
static emit_log_hook_type prev_emit_log_hook = NULL;

static bool
check_hosts(char **newval, void **extra, GucSource source)
{
	char	   *why = NULL;

	if (zksync_hosts_are_valid(*newval, &why))
		return true;
	GUC_check_errdetail("The value is refused: %s.", why);
	return false;
}

static bool
check_root(char **newval, void **extra, GucSource source)
{
	char	   *why = NULL;

	if (zksync_root_is_valid(*newval, &why))
		return true;
	GUC_check_errdetail("The value is refused: %s.", why);
	return false;
}

/*
 * zksync.lock_layout: "curator" or "go", in any case (stored in lower
 * case, so layout.c compares exactly).  Never throws.
 */
static bool
check_lock_layout(char **newval, void **extra, GucSource source)
{
	char	   *c;

	if (*newval != NULL &&
		(pg_strcasecmp(*newval, "curator") == 0 || pg_strcasecmp(*newval, "go") == 0))
	{
		for (c = *newval; *c; c++)
			*c = pg_tolower((unsigned char) *c);
		return true;
	}
	GUC_check_errdetail("The layouts are \"curator\" (Apache Curator's lock node names) and \"go\" (the Go zksync library's).");
	return false;
}

/*
 * zksync.auth holds a secret: a refused value is not echoed (our own
 * primary message replaces the one that would quote it), a refused SET is
 * not logged with its statement (auth_refused and hide_refused_auth), and
 * SHOW, current_setting() and pg_settings show a mask, also to members of
 * pg_read_all_settings.  Never throws.
 */
static bool
check_auth(char **newval, void **extra, GucSource source)
{
	const char *colon;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	colon = strchr(*newval, ':');
	if (colon != NULL && colon != *newval)
		return true;
	/* a SET: the ERROR that guc.c raises next is logged without it */
	if (source == PGC_S_SESSION)
		auth_refused = true;
	GUC_check_errmsg("invalid value for parameter \"zksync.auth\"");
	GUC_check_errdetail("Expected user:password for ZooKeeper digest authentication; the value is not shown.");
	return false;
}

/*
 * emit_log_hook: the ERROR that follows a zksync.auth refused by
 * check_auth is logged without its statement, which holds the secret.
 */
static void
hide_refused_auth(ErrorData *edata)
{
	if (auth_refused && edata->elevel >= ERROR)
	{
		edata->hide_stmt = true;
		auth_refused = false;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

static const char *
show_auth(void)
{
	return (zksync_auth && zksync_auth[0]) ? "********" : "";
}

/* From _PG_init: define every setting, and reserve the zksync prefix. */
void
zksync_settings_init(void)
{
	DefineCustomStringVariable("zksync.hosts",
							   "ZooKeeper connect string: host:port[,host:port...][/chroot].",
							   "Applies to the next session this backend opens; a session holding locks is kept.",
							   &zksync_hosts, "localhost:2181",
							   PGC_SUSET, 0, check_hosts, NULL, NULL);
	DefineCustomStringVariable("zksync.root",
							   "ZooKeeper path under which zksync creates every node.",
							   NULL,
							   &zksync_root, "/zksync",
							   PGC_SUSET, 0, check_root, NULL, NULL);
	DefineCustomIntVariable("zksync.session_timeout",
							"ZooKeeper session timeout asked for at connect.",
							"Locks of a backend that crashed or lost the network end within this time.",
							&zksync_session_timeout, 10000, 1000, 600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("zksync.connect_timeout",
							"How long a call waits for a ZooKeeper connection before it fails.",
							NULL,
							&zksync_connect_timeout, 10000, 1, 3600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("zksync.auth",
							   "ZooKeeper digest identity (user:password) for every node zksync creates.",
							   "When set, zksync's nodes are writable and deletable by this identity only. Empty: open ACLs.",
							   &zksync_auth, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   check_auth, NULL, show_auth);
	DefineCustomBoolVariable("zksync.local_handoff",
							 "Lets a backend waiting for a lock take it directly from a backend of this cluster that releases it.",
							 "Needs zksync in shared_preload_libraries; when off, or without it, every grant comes from ZooKeeper.",
							 &zksync_local_handoff, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("zksync.synchronous_release",
							 "Makes every release wait until ZooKeeper has applied it.",
							 "When on, an unlock (and the end of a transaction holding zksync locks) returns once every client of the ensemble sees the lock free. When off, releases are sent and not waited for: faster loops, but another client may still see the lock held for a few milliseconds.",
							 &zksync_synchronous_release, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("zksync.max_holds",
							"Most zksync nodes one backend may hold or wait with at once.",
							"Distinct lock names and modes count; taking the same lock again does not. Bounds what one backend can put into the ensemble that every cluster shares.",
							&zksync_max_holds, 10000, 1, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("zksync.lock_layout",
							   "How read-write lock nodes are named: \"curator\" or \"go\".",
							   "\"curator\": Apache Curator's InterProcessReadWriteLock names (_c_{uuid}-__WRIT__{seq}); \"go\": the Go zksync library's RWMutex names (_c_{uuid}-write-{seq}). Every client of one zksync.root must use one layout. Applies to nodes created after the change.",
							   &zksync_lock_layout, "curator",
							   PGC_SUSET, 0, check_lock_layout, NULL, NULL);
	/* sizes shared memory: exists only when preloaded (shared.c) */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("zksync.local_locks_per_backend",
								"Entries of zksync_local_locks in shared memory, per possible backend.",
								"The table holds this many times max_connections (and the other backends) entries, shared by every backend. Holds and waits that do not fit are left out of the view and counted in zksync_stats.untracked; they work as usual.",
								&zksync_local_locks_per_backend, 64, 1, 100000,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("zksync");

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = hide_refused_auth;
}
