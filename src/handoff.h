/*-------------------------------------------------------------------------
 * handoff.h
 *	  Passing a released write lock to a waiting backend of this cluster
 *	  through shared memory (handoff.c).
 *
 * Nothing here waits or throws, so releases in transaction callbacks may
 * hand off too.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_HANDOFF_H
#define ZKSYNC_HANDOFF_H


extern void zksync_handoff_init(void);
extern bool zksync_handoff_register(const char *node, const char *ensemble);
extern bool zksync_handoff_received(void);
extern bool zksync_handoff_unregister(void);
extern void zksync_handoff_release(const char *node, const char *ensemble);

#endif							/* ZKSYNC_HANDOFF_H */
