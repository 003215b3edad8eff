/*-------------------------------------------------------------------------
 * shared.h
 *	  What this cluster's backends share in shared memory (shared.c,
 *	  docs/operations.md): the counters of zksync_stats and the entries
 *	  of zksync_local_locks.
 *
 * Both need shared_preload_libraries = 'zksync'.  Without it every call
 * here does nothing, and only the SQL functions that read the state say
 * so (zksync_shared_require).
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_SHARED_H
#define ZKSYNC_SHARED_H

#include "datatype/timestamp.h"

/* The counters of zksync_stats, in its column order (but wait_time_ms) */
typedef enum ZkStat
{
	ZKSTAT_ACQUIRED,			/* locks, leases, barrier passes, entries */
	ZKSTAT_WAITED,				/* waits that had to sleep */
	ZKSTAT_TIMEOUTS,			/* waits ended by their timeout */
	ZKSTAT_CANCELLED,			/* waits ended by a cancel or termination */
	ZKSTAT_DEADLOCKS,			/* 40P01 raised here */
	ZKSTAT_LOST,				/* holds lost while held */
	ZKSTAT_SESSIONS_EXPIRED,	/* ZooKeeper sessions found expired */
	ZKSTAT_RECONNECTS,			/* a session's connection re-established */
	ZKSTAT_HANDOFFS,			/* grants handed over locally */
	ZKSTAT_UNTRACKED,			/* holds and waits left out of the view */
	ZKSTAT_COUNT
} ZkStat;

/* A snapshot of the counters */
typedef struct ZkStats
{
	uint64		counts[ZKSTAT_COUNT];
	double		wait_time_ms;
	TimestampTz stats_reset;
} ZkStats;

/* What an entry of zksync_local_locks is */
typedef enum ZkLocalKind
{
	ZKLOCAL_LOCK,
	ZKLOCAL_SEMAPHORE,
	ZKLOCAL_BARRIER,
	ZKLOCAL_DBARRIER
} ZkLocalKind;

typedef enum ZkLocalState
{
	ZKLOCAL_WAITING,
	ZKLOCAL_HELD,
	ZKLOCAL_LOST,
	ZKLOCAL_RELEASING
} ZkLocalState;

/* A row of zksync_local_locks */
typedef struct ZkLocalRow
{
	int			pid;
	ZkLocalKind kind;
	ZkLocalState state;
	char		mode[16];
	char	   *name;
	TimestampTz since;
	int64		token;			/* 0: none */
} ZkLocalRow;

/* No entry (the view's table was full, or no shared memory) */
#define ZKLOCAL_NONE	(-1)

extern void zksync_shared_init(void);
extern void zksync_shared_require(const char *what);

extern void zksync_stat_count(ZkStat stat, int n);
extern void zksync_stat_wait(TimestampTz start);
extern void zksync_stats_read(ZkStats *out);
extern void zksync_stats_reset_all(void);

extern int	zksync_local_add(ZkLocalKind kind, const char *name,
							 const char *mode, ZkLocalState state);
extern void zksync_local_set(int slot, ZkLocalState state, int64 token);
extern void zksync_local_set_mode(int slot, const char *mode,
								  ZkLocalState state);
extern void zksync_local_remove(int slot);
extern void zksync_local_releasing(int slot);
extern void zksync_local_released(void);
extern int	zksync_local_read(ZkLocalRow **rows);
extern const char *zksync_local_kind_name(ZkLocalKind kind);
extern const char *zksync_local_state_name(ZkLocalState state);

#endif							/* ZKSYNC_SHARED_H */
