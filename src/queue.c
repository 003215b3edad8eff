/*-------------------------------------------------------------------------
 * queue.c
 *	  The contender queue that every waiting recipe shares, and the checks
 *	  every recipe makes around it (max_holds, lock_timeout).
 *
 * ZooKeeper's lock recipes all wait the same way; only the answer to "is
 * my node granted, and if not, which node must go first?" differs from one
 * recipe to the next (Apache Curator builds its mutex, read lock, write
 * lock and semaphore on one such loop).  This file is that loop; a recipe
 * hands it a driver (ZkQueueDriver) with its grant rule.
 *
 *	 1. create our node EPHEMERAL_SEQUENTIAL under a fresh GUID
 *		(nodes.c's protected create), with a listing of the directory
 *		pipelined behind it, so that one round trip gives both;
 *	 2. order the contenders (layout.c) and ask the driver;
 *	 3. granted: return; else watch only the node the driver named (a data
 *		watch, which is not left behind if that node is gone already), and
 *		wait for the watch, a hand-off, the deadline or an interrupt;
 *	 4. look again from 2 (a watch only says "something changed": the node
 *		may have gone because it gave up, not because it held).
 *
 * However the wait ends without a grant (timeout, cancel, lock_timeout,
 * statement_timeout, a lost session, a ZooKeeper error), our node is
 * removed before the caller hears of it: at once if we can, in the
 * background if the ensemble is out of reach (nodes.c, "Abandonment").
 *
 * Hand-off.  If the driver allows it and the node to wait for is a write
 * node, a backend of this cluster that releases that node may tell us so
 * through shared memory (handoff.c explains why that grants nothing the
 * recipe would not).  Such a grant is taken only on a session known alive,
 * or confirmed alive by the server with our node still ours: a process
 * stopped past its session timeout must not wake up as a holder: its
 * session may have expired, and another client may hold the lock now
 * (docs/recipes.md, "Hand-off").
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/proc.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "releases.h"
#include "queue.h"
#include "nodes.h"
#include "handoff.h"
#include "shared.h"

/*
 * The first-in-queue rule, its one home: the contender with the lowest
 * sequence is granted; any other waits for its immediate predecessor.  A
 * write lock and a semaphore's mutex use it (lock.c, semaphore.c).
 */
bool
zk_queue_first_granted(const ZkContender *c, int n, int mine, int *watch)
{
	if (mine == 0)
		return true;
	*watch = mine - 1;
	return false;
}

/* Our node is not in its queue any more: ERROR (08006). */
static void
report_node_gone(ZkQueueWhat what, const char *name, const char *node)
{
	switch (what)
	{
		case ZKQ_WRITE_LOCK:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the node of zksync write lock \"%s\" disappeared while waiting",
							name),
					 errdetail("The ZooKeeper session expired, or another client deleted node \"%s\".",
							   node)));
			break;
		case ZKQ_READ_LOCK:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the node of zksync read lock \"%s\" disappeared while waiting",
							name),
					 errdetail("The ZooKeeper session expired, or another client deleted node \"%s\".",
							   node)));
			break;
		case ZKQ_SEMAPHORE:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the node of zksync semaphore \"%s\" disappeared while waiting",
							name),
					 errdetail("The ZooKeeper session expired, or another client deleted node \"%s\".",
							   node)));
			break;
	}
	pg_unreachable();
}

/*
 * The session expired during a wait: ERROR (08006).  `handed`: the lock
 * had been handed to us by a backend of this cluster meanwhile (only a
 * lock's waits take hand-offs).
 */
static void
report_session_expired(ZkQueueWhat what, const char *name, bool handed)
{
	if (handed && what == ZKQ_READ_LOCK)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("ZooKeeper session expired while waiting for zksync read lock \"%s\"",
						name),
				 errdetail("The lock was released to this backend, but its session had expired meanwhile (was the process stopped?); another client may hold it now."),
				 errhint("Every zksync lock this backend held is lost. The next call opens a new session.")));
	if (handed)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("ZooKeeper session expired while waiting for zksync write lock \"%s\"",
						name),
				 errdetail("The lock was released to this backend, but its session had expired meanwhile (was the process stopped?); another client may hold it now."),
				 errhint("Every zksync lock this backend held is lost. The next call opens a new session.")));
	switch (what)
	{
		case ZKQ_WRITE_LOCK:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("ZooKeeper session expired while waiting for zksync write lock \"%s\"",
							name)));
			break;
		case ZKQ_READ_LOCK:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("ZooKeeper session expired while waiting for zksync read lock \"%s\"",
							name)));
			break;
		case ZKQ_SEMAPHORE:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("ZooKeeper session expired while waiting for zksync semaphore \"%s\"",
							name)));
			break;
	}
	pg_unreachable();
}

/*
 * Ask the driver whether our node is granted in listing `g`.  Returns true
 * if so; else sets `*watch` (a full path, palloc'd: another client's name
 * may be of any length) to the node to wait for and `*handed` to whether
 * that node may be handed to us.  ERROR if our node is gone.
 */
static bool
ask_driver(const ZkQueueDriver *drv, ZkProtected *pn, ZkReq *g,
		   const char *name, char **watch, bool *handed)
{
	ZkContender *c;
	const char *mine = strrchr(pn->node, '/') + 1;
	int			n,
				me = -1,
				blocker = -1,
				i;
	bool		granted;

	n = zksync_contenders(zk_req_rc(g) == ZOK ? zk_req_children(g) : NULL,
						  zk_req_rc(g) == ZOK ? zk_req_nchildren(g) : 0, &c);
	for (i = 0; i < n; i++)
		if (strcmp(c[i].name, mine) == 0)
			me = i;
	if (me < 0)
		report_node_gone(drv->what, name, pn->node);
	granted = drv->granted(c, n, me, &blocker);
	if (!granted)
	{
		*watch = zksync_child_path(pn->dir, c[blocker].name);
		*handed = drv->handoff && !c[blocker].reader;
	}
	pfree(c);
	return granted;
}

/*
 * Steps 1 to 4 above (step 1 only if `tag` is not NULL: else pn is a node
 * made already).  Returns true once granted, false when `deadline` (0:
 * none) has passed, with our node removed.  Throws on errors; the caller
 * abandons the node.
 */
static bool
queue_loop(ZkProtected *pn, const char *dir, const char *tag,
		   const char *data, int datalen, const ZkQueueDriver *drv,
		   TimestampTz deadline, const char *name)
{
	ZkReq	   *g = NULL;

	char	   *path = NULL;

	if (tag)
		zk_protected_create(pn, dir, tag, data, datalen, &g);
	for (;;)
	{
		bool		may_handoff = false;
		bool		granted;
		uint64		seen;
		ZkReq	   *e;
		int			rc = ZNONODE;
		ZkWaitResult result = ZKW_EVENT;

		if (path)
			pfree(path);
		path = NULL;
		if (g == NULL || zk_call(g) != ZOK)
		{
			/* none pipelined, or it failed: list again */
			zk_req_free(g);
			g = zk_children_retrying(dir);
		}
		granted = ask_driver(drv, pn, g, name, &path, &may_handoff);
		zk_req_free(g);
		g = NULL;
		if (granted)
			return true;
		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
			break;

		/*
		 * Wait for the one node that must go first.  If its holder may hand
		 * it to us, register before the watch, so that a release from now on
		 * is seen; if it was released already, there is nothing to watch.
		 */
		seen = zk_events_seen();
		if (!may_handoff ||
			!zksync_handoff_register(path, zk_session_hosts()) ||
			!zksync_handoff_received())
		{
			e = zk_call_retrying(ZKOP_GET_WATCH, path, NULL, 0, 0, NULL);
			rc = zk_req_rc(e);
			zk_req_free(e);
			if (rc == ZOK)
			{
				zksync_wait_watch_begin(drv->kind, drv->queue, name, pn->node,
										pn->czxid);
				result = zksync_wait_watched(seen, zksync_handoff_received,
											 deadline);
			}
		}
		if (zksync_handoff_unregister())
		{
			if (zk_session_known_alive() ||
				zk_confirm_session_alive(pn->node, zksync_session_timeout))
			{
				zksync_stat_count(ZKSTAT_HANDOFFS, 1);
				return true;
			}
			if (!zk_session_usable())
				report_session_expired(drv->what, name, true);
			continue;			/* not confirmed: let ZooKeeper decide */
		}
		if (rc == ZNONODE)
			continue;			/* already gone: look again */
		if (rc != ZOK)
			zk_report_error(rc, "get", path);
		if (result == ZKW_TIMEOUT)
			break;
		if (!zk_session_usable())
			report_session_expired(drv->what, name, false);
	}

	/* timed out: our node must not stay behind to block others */
	pn->active = false;
	zk_release_node(pn->node, ZKSYNC_RELEASE_WAIT_MS, false);
	return false;
}

/*
 * Join the queue of `dir` with a node tagged `tag` carrying `data` (NULL
 * `tag`: pn is in the queue already), and wait until the driver grants it,
 * or `deadline` (0: none) passes.  Returns true when granted: pn->node
 * and pn->czxid name our node, which the caller now owns (and releases
 * with zk_release_node).  Returns false on timeout, our node removed.  On any ERROR our node is abandoned
 * (removed, in the background if need be) before the error propagates.
 * `name` is the recipe's name, in messages (drv->what says what it is).
 * pn must stay valid until this returns.
 */
bool
zk_queue_wait(ZkProtected *pn, const char *dir, const char *tag,
			  const char *data, int datalen, const ZkQueueDriver *drv,
			  TimestampTz deadline, const char *name)
{
	bool		granted = false;

	PG_TRY();
	{
		granted = queue_loop(pn, dir, tag, data, datalen, drv, deadline,
							 name);
		if (granted && drv->grant_continues_wait)
			zksync_wait_watch_node_done();
		else
			zksync_wait_watch_end(granted);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		zksync_wait_watch_fail();
		zksync_handoff_unregister();
		zk_protected_abandon(pn, ZKSYNC_ABANDON_WAIT_MS);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();
	pn->active = false;
	return granted;
}

/*
 * Wait, as zk_queue_wait() does, with a node that is already in the queue
 * (made by zk_protected_create_many and still active).
 */
bool
zk_queue_wait_node(ZkProtected *pn, const ZkQueueDriver *drv,
				   TimestampTz deadline, const char *name)
{
	return zk_queue_wait(pn, pn->dir, NULL, NULL, 0, drv, deadline, name);
}

/*
 * Join the queue without waiting: for a node that is granted by what the
 * caller already holds (a read node beside our own write node).  Same
 * ownership as zk_queue_wait().
 */
void
zk_queue_join(ZkProtected *pn, const char *dir, const char *tag,
			  const char *data, int datalen)
{
	PG_TRY();
	{
		zk_protected_create(pn, dir, tag, data, datalen, NULL);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		zk_protected_abandon(pn, ZKSYNC_ABANDON_WAIT_MS);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();
	pn->active = false;
}

/*
 * Is pn, a node already in its queue, granted now?  `listing` is a
 * listing of pn->dir sent after pn was made (it is waited for, and listed
 * again if it failed); this takes it over.  ERROR if our node is gone.
 */
bool
zk_queue_granted(const ZkQueueDriver *drv, ZkProtected *pn, ZkReq *listing)
{
	char	   *watch = NULL;
	bool		handed;
	bool		granted;
	ZkReq	   *g = listing;

	if (g == NULL || zk_call(g) != ZOK)
	{
		zk_req_free(g);
		g = zk_children_retrying(pn->dir);
	}
	granted = ask_driver(drv, pn, g, strrchr(pn->dir, '/') + 1, &watch, &handed);
	zk_req_free(g);
	return granted;
}

/*
 * The deadline of a wait: `timeout_ms` from now (negative: none), or
 * lock_timeout's if that comes first.  *lock_deadline is set when
 * lock_timeout is what bounds the wait (else 0), for
 * zk_queue_check_lock_timeout().
 */
TimestampTz
zk_queue_deadline(int timeout_ms, TimestampTz *lock_deadline)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz deadline = 0;

	*lock_deadline = 0;
	if (timeout_ms >= 0)
		deadline = TimestampTzPlusMilliseconds(now, timeout_ms);
	if (LockTimeout > 0)
	{
		TimestampTz ld = TimestampTzPlusMilliseconds(now, LockTimeout);

		if (deadline == 0 || ld < deadline)
			deadline = *lock_deadline = ld;
	}
	return deadline;
}

/*
 * A wait ended without a grant: if lock_timeout bounded it and has passed,
 * that is an ERROR (55P03), as PostgreSQL reports for its own locks.
 */
void
zk_queue_check_lock_timeout(TimestampTz lock_deadline, ZkQueueWhat what,
							const char *name)
{
	if (lock_deadline == 0 || GetCurrentTimestamp() < lock_deadline)
		return;
	switch (what)
	{
		case ZKQ_WRITE_LOCK:
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("canceling statement due to lock timeout"),
					 errdetail("Waited %d ms for zksync write lock \"%s\".",
							   LockTimeout, name)));
			break;
		case ZKQ_READ_LOCK:
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("canceling statement due to lock timeout"),
					 errdetail("Waited %d ms for zksync read lock \"%s\".",
							   LockTimeout, name)));
			break;
		case ZKQ_SEMAPHORE:
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("canceling statement due to lock timeout"),
					 errdetail("Waited %d ms for zksync semaphore \"%s\".",
							   LockTimeout, name)));
			break;
	}
}

/*
 * Before a recipe makes `more` nodes that it keeps on the session: one too
 * many (zksync.max_holds) is an ERROR (53400).  The ensemble is shared by
 * every cluster, so one backend may not fill it, as advisory locks may not
 * fill the lock table.  Stacking makes no node and is free; lost holds
 * have no node.
 */
void
zk_queue_check_max_holds(ZkQueueWhat what, const char *name, int more)
{
	int			n = zk_session_nodes() + more;

	if (n <= zksync_max_holds)
		return;
	if (what == ZKQ_SEMAPHORE)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many zksync locks held by this backend"),
				 errdetail_plural("A lease of \"%s\" would make %d node in ZooKeeper; zksync.max_holds is %d.",
								  "A lease of \"%s\" would make %d nodes in ZooKeeper; zksync.max_holds is %d.",
								  n, name, n, zksync_max_holds),
				 errhint("Release leases or locks first, or raise zksync.max_holds.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("too many zksync locks held by this backend"),
			 errdetail_plural("Taking \"%s\" would make %d node in ZooKeeper; zksync.max_holds is %d.",
							  "Taking \"%s\" would make %d nodes in ZooKeeper; zksync.max_holds is %d.",
							  n, name, n, zksync_max_holds),
			 errhint("Take one coarse lock for many items, use the array form, or raise zksync.max_holds.")));
}
