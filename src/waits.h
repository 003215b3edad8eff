/*-------------------------------------------------------------------------
 * waits.h
 *	  Every wait in view, and the watch over a recipe's wait (waits.c,
 *	  deadlock.c; docs/waits.md).
 *
 * A recipe registers each kind of queue it keeps (ZkQueueKind): where its
 * directories are and the rule its own wait uses.  The views then read any
 * client's contenders of those queues, and a recipe's wait that goes
 * through zksync_wait_watched() is looked at for deadlocks and logged per
 * log_lock_waits.
 *
 * Barriers and double barriers are gates: their waiters join no queue.
 * A gate's wait (zksync_gate_watch_begin) publishes its record at once,
 * which is how the views see it (gates.c); it is logged per
 * log_lock_waits, and is never part of a deadlock.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_WAITS_H
#define ZKSYNC_WAITS_H

#include "datatype/timestamp.h"

#include "layout.h"
#include "transport.h"

/*
 * What a contender waits for, as messages name it.  Each message is
 * written out once for each, so that it can be translated.
 */
typedef enum ZkQueueWhat
{
	ZKQ_WRITE_LOCK,
	ZKQ_READ_LOCK,
	ZKQ_SEMAPHORE
} ZkQueueWhat;

/*
 * What the waiter of a gate waits for; ZKG_NONE for a queue's contender.
 * Also the mode of a gate's row in the views.
 */
typedef enum ZkGateWhat
{
	ZKG_NONE,
	ZKG_BARRIER,				/* a barrier to go */
	ZKG_DBARRIER_ENTER,			/* a double barrier's participants to come */
	ZKG_DBARRIER_EXIT			/* ... and to leave */
} ZkGateWhat;

/*
 * A kind of queue a recipe keeps, registered for the views and the
 * deadlock scan: its directories and its rule (the one its wait uses).
 */
typedef struct ZkQueueKind
{
	const char *kind;			/* the views' kind: "lock", "semaphore" */
	const char *subdir;			/* its names live in {root}/{subdir} */
	int			nqueues;
	const char *queues[2];		/* the queues under {root}/{subdir}/{name}; ""
								 * is that directory itself */

	/*
	 * Queue 0's capacity (how many of its contenders may be granted at once:
	 * a semaphore's lease count), from the data of the name's node; NULL if
	 * the kind keeps none.  0 if the data records none.
	 */
	int			(*capacity) (const char *data, int len);
	/* contender i of queue q (n of them, in order): its mode, in the views */
	const char *(*mode) (int q, const ZkContender *c);
	/* and what it waits for, in messages */
	ZkQueueWhat (*what) (int q, const ZkContender *c);

	/*
	 * Is it granted?  `capacity` is queue 0's capacity if known, else 0 (no
	 * limit known).
	 */
	bool		(*granted) (int q, const ZkContender *c, int n, int i,
							int capacity);
	/* does contender j block waiting contender i? */
	bool		(*blocks) (int q, const ZkContender *c, int n, int i, int j,
						   int capacity);
} ZkQueueKind;

/* A contender, read from ZooKeeper: a row of zksync_waits() */
typedef struct ZkWaitRow
{
	const ZkQueueKind *kind;
	int			queue;
	char	   *name;
	char	   *node;			/* full path */
	const char *mode;
	ZkQueueWhat what;
	bool		granted;
	int64		czxid;
	int64		ctime_ms;		/* when the node was made (Unix ms) */
	int64		session;		/* its ephemeral owner */
	bool		is_backend;		/* made by zksync: owner is known */
	ZkOwner		owner;
	char	   *data;			/* the node's data as read (any bytes) */
	int			datalen;
	/* its queue: rows[first .. first + count), contenders[index] is it */
	int			first;
	int			count;
	ZkContender *contenders;
	int			ncontenders;
	int			index;
	int			capacity;		/* queue 0's capacity if known, else 0 */
	/* a gate's row (contenders NULL): which, and is it one of its nodes? */
	ZkGateWhat	gate;
	bool		standing;		/* the barrier's node or a participant's, not
								 * a published wait */
} ZkWaitRow;

extern void zksync_register_queue_kind(const ZkQueueKind *kind);
extern int	zksync_read_waits(ZkWaitRow **rows);
extern int	zksync_read_queue(const char *subdir, int queue, const char *name,
							  ZkWaitRow **rows);
extern int	zksync_row_blockers(const ZkWaitRow *rows, int i, int *out);
extern int	zksync_read_blockers(int pid, ZkWaitRow **rows, int **blockers);

/* The watch over a recipe's wait: deadlocks, log_lock_waits */
extern void zksync_wait_watch_begin(const ZkQueueKind *kind, int queue,
									const char *name, const char *node,
									int64 czxid);
extern ZkWaitResult zksync_wait_watched(uint64 seen, bool (*also) (void),
										TimestampTz deadline);
extern void zksync_gate_watch_begin(ZkGateWhat what, const char *name,
									const char *node, int64 czxid,
									int participants);
extern void zksync_wait_watch_node_done(void);
extern void zksync_wait_watch_end(bool granted);
extern void zksync_wait_watch_fail(void);

#endif							/* ZKSYNC_WAITS_H */
