/*-------------------------------------------------------------------------
 * semaphore.h
 *	  Counting semaphores in Apache Curator's layout (semaphore.c,
 *	  docs/recipes.md "Semaphores").
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_SEMAPHORE_H
#define ZKSYNC_SEMAPHORE_H

#include "lock.h"				/* ZkLockInfo: leases show in zksync_locks() */

/* A row of zksync_semaphore_leases() */
typedef struct ZkHolderInfo
{
	char	   *node;			/* leases/... or locks/... */
	int64		sequence;
	bool		granted;
	bool		present;		/* still there when its owner was read */
	char	   *owner;
} ZkHolderInfo;

extern void zksync_semaphore_init(void);
extern bool zksync_semaphore_acquire(const char *name, int max_leases,
									 bool xact, int timeout_ms);
extern bool zksync_semaphore_release(const char *name);
extern void zksync_semaphore_release_all(void);
extern int	zksync_semaphore_snapshot(ZkLockInfo **rows);
extern int	zksync_semaphore_contenders(const char *name, ZkHolderInfo **rows);

#endif							/* ZKSYNC_SEMAPHORE_H */
