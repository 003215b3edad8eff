/*-------------------------------------------------------------------------
 * queue.h
 *	  The contender queue every waiting recipe shares (queue.c,
 *	  docs/recipes.md "The contender queue").
 *
 * A recipe hands the queue a driver: its grant rule and what the views
 * call its queue.  The queue creates, lists, asks the rule, watches one
 * node, waits, and removes our node on any wait that ends without a grant.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_QUEUE_H
#define ZKSYNC_QUEUE_H

#include "datatype/timestamp.h"

#include "nodes.h"
#include "waits.h"				/* ZkQueueKind, ZkQueueWhat */

/* A recipe's grant rule, for the queue */
typedef struct ZkQueueDriver
{
	/*
	 * Is contender `mine` of `c` (n of them, in sequence order) granted?  If
	 * not, set *watch to the index of the one contender to wait for.
	 */
	bool		(*granted) (const struct ZkContender *c, int n, int mine,
							int *watch);
	/* may a write node we wait for be handed to us by its holder? */
	bool		handoff;
	/* the queue, for the views and the deadlock scan (waits.c) */
	const struct ZkQueueKind *kind;
	int			queue;

	/*
	 * A grant here is one step of the recipe's wait, which goes on (the
	 * semaphore's mutex): the views keep showing one wait.
	 */
	bool		grant_continues_wait;
	/* what its contenders wait for, in messages */
	ZkQueueWhat what;
} ZkQueueDriver;

/* The first-in-queue rule: granted when first, else wait for the one ahead */
extern bool zk_queue_first_granted(const struct ZkContender *c, int n,
								   int mine, int *watch);

extern bool zk_queue_wait(ZkProtected *pn, const char *dir, const char *tag,
						  const char *data, int datalen,
						  const ZkQueueDriver *drv, TimestampTz deadline,
						  const char *name);
extern bool zk_queue_wait_node(ZkProtected *pn, const ZkQueueDriver *drv,
							   TimestampTz deadline, const char *name);
extern void zk_queue_join(ZkProtected *pn, const char *dir, const char *tag,
						  const char *data, int datalen);
extern bool zk_queue_granted(const ZkQueueDriver *drv, ZkProtected *pn,
							 ZkReq *listing);
extern TimestampTz zk_queue_deadline(int timeout_ms, TimestampTz *lock_deadline);
extern void zk_queue_check_lock_timeout(TimestampTz lock_deadline,
										ZkQueueWhat what, const char *name);
extern void zk_queue_check_max_holds(ZkQueueWhat what, const char *name,
									 int more);

#endif							/* ZKSYNC_QUEUE_H */
