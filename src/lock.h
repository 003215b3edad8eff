/*-------------------------------------------------------------------------
 * lock.h
 *	  The read-write lock recipe (lock.c: grant rule, waits, releases;
 *	  locktable.c: this backend's holds, lost holds, zksync_locks()).
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_LOCK_H
#define ZKSYNC_LOCK_H

#include "layout.h"				/* ZKSYNC_NAME_MAX, ZKSYNC_PATH_MAX */

typedef enum ZkLockMode
{
	ZKLOCK_WRITE,
	ZKLOCK_READ
} ZkLockMode;

/* Row of zksync_locks() (lock holds, and semaphore leases: semaphore.h) */
typedef struct ZkLockInfo
{
	char		name[ZKSYNC_NAME_MAX + 1];
	const char *mode;
	int			session_count;
	int			xact_count;
	const char *state;
	char		node[ZKSYNC_PATH_MAX];
	int64		token;
	bool		has_token;
} ZkLockInfo;

extern bool zksync_lock_acquire_many(const char **names, int n, ZkLockMode mode,
									 bool xact, bool try_only, int timeout_ms);
extern bool zksync_lock_release_many(const char **names, int n, ZkLockMode mode);
extern void zksync_release_session_holds(bool nothrow);
extern void zksync_lock_init(void);
extern int	zksync_lock_snapshot(ZkLockInfo **rows);
extern bool zksync_rwlock_granted(const struct ZkContender *c, int n, int i);

#endif							/* ZKSYNC_LOCK_H */
