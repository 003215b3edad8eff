/*-------------------------------------------------------------------------
 * lock.c
 *	  The read-write lock recipe and this backend's table of holds.
 *
 * The recipe (ZooKeeper's "Shared Locks", in Apache Curator's layout so a
 * Curator InterProcessReadWriteLock on the same path shares the lock):
 *
 *	 {root}/locks/{name}/_c_{guid}-__WRIT__{seq}	a writer
 *	 {root}/locks/{name}/_c_{guid}-__READ__{seq}	a reader
 *
 * (with zksync.lock_layout = go, "-write-{seq}" and "-read-{seq}", the seed's
 * Go library's names; layout.c owns the grammar.)
 *
 * The parents are container nodes, which the server removes once empty.
 * Each acquisition creates one EPHEMERAL_SEQUENTIAL node and reads the
 * children in the same round trip (the two requests are pipelined; the
 * server answers them in order, so the listing includes our node).
 * Contenders are the children that end in a 10-digit sequence; names with
 * "__READ__", "__rlock__" (kazoo) or "-read-" are readers, all others
 * writers.  Then:
 *
 *	 writer: granted when no contender has a lower sequence; otherwise it
 *			 watches only its immediate predecessor.
 *	 reader: granted when no writer has a lower sequence; otherwise it
 *			 watches only the nearest lower writer.
 *
 * So one release wakes one writer, or the run of readers behind it: there
 * is no herd.  A watch that fires only tells us to read the children again;
 * the predecessor may have gone because it gave up, not because it held.
 *
 * Hand-off.  A waiter whose blocker is a write node may also be told by
 * the blocker's holder, if that is a backend of this cluster, that the
 * node was released: then it is granted without waiting for the delete
 * to reach ZooKeeper (handoff.c explains why that grants nothing the
 * recipe would not).
 *
 * The GUID.  Nodes are made by nodes.c's protected create: a create whose
 * reply was lost is found again by its GUID, and a wait that ends by an
 * ERROR (cancel, statement_timeout) has its node deleted in PG_CATCH before
 * the client hears of the error, so nothing is left behind to block others.
 *
 * Holds.  Per backend there is at most one node per (lock, mode), whose
 * acquisitions are counted by scope in the hold table (locktable.c); the
 * node is deleted when both counts reach zero.  Stacking (taking a lock
 * this backend holds already) only counts: it needs no connection and
 * costs nothing in ZooKeeper.  At most zksync.max_holds nodes may exist at
 * once, so that one backend cannot fill an ensemble every cluster shares.
 *
 * Releases.  A hold ends by deleting its node through the connection
 * layer, which keeps the delete until ZooKeeper has applied it or the
 * session has ended.  With zksync.synchronous_release on, the release
 * waits (at most ZKSYNC_RELEASE_WAIT_MS, and not at all while
 * disconnected) until it is applied, so when an unlock returns, every
 * client sees the lock free.  Session unlocks need no connection: during
 * an outage the delete goes on in the background.
 *
 * Downgrade.  A backend holding the write lock gets the read lock at once:
 * its read node is created without waiting.  If the write hold then ends
 * while a writer of another client queued between our two nodes, deleting
 * our write node would let that writer in beside our read hold.  In that
 * case the write node is kept ("retained") until the read hold ends too:
 * the exclusion lasts a little longer than asked, never shorter.  An
 * upgrade (read held, write asked) would wait for itself: ERROR.
 *
 * What can go wrong.  A wait ends without a grant (timeout, cancel,
 * lock_timeout, a lost session): the queue removes our node first.  The
 * session expires or another client deletes our node: the hold is lost
 * (locktable.c).  A grant is returned only on a session known alive at
 * that moment: a hand-off that reaches a waiter whose process was stopped
 * past the session timeout is checked against ZooKeeper first (queue.c).
 * docs/recipes.md tells the whole recipe.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "releases.h"
#include "lock.h"
#include "nodes.h"
#include "queue.h"
#include "xact.h"
#include "handoff.h"
#include "lock.h"
#include "lock_int.h"
#include "shared.h"

/*
 * The acquisition in progress, for the cleanup that runs when its wait is
 * interrupted: the GUID finds the node even if the create's reply is lost.
 */
static ZkProtected acq;

static void release_write_node(const char *node);
static void drop_hold(Hold *hold, bool nothrow);

/*
 * The read-write lock's grant rule, its one home: used by the wait (as the
 * queue's drivers) and by zksync_lock_holders().  `c` is in sequence
 * order, `mine` our index.
 *
 *	 writer: granted when no contender is ahead; else it waits for its
 *			 immediate predecessor (the queue's first-in-queue rule,
 *			 zk_queue_first_granted).
 *	 reader: granted when no writer is ahead; else it waits for the
 *			 nearest writer ahead.
 */
static bool
reader_granted(const ZkContender *c, int n, int mine, int *watch)
{
	int			i;

	for (i = mine - 1; i >= 0; i--)
		if (!c[i].reader)
		{
			*watch = i;
			return false;
		}
	return true;
}

static const char *
lock_mode(int q, const ZkContender *c)
{
	return c->reader ? "read" : "write";
}

static ZkQueueWhat
lock_what(int q, const ZkContender *c)
{
	return c->reader ? ZKQ_READ_LOCK : ZKQ_WRITE_LOCK;
}

static bool
lock_granted(int q, const ZkContender *c, int n, int i, int capacity)
{
	return zksync_rwlock_granted(c, n, i);
}

/*
 * What blocks a waiting contender, for the views and the deadlock scan:
 * a writer waits for everyone ahead of it, a reader for the writers ahead.
 */
static bool
lock_blocks(int q, const ZkContender *c, int n, int i, int j, int capacity)
{
	return j < i && (!c[i].reader || !c[j].reader);
}

static const ZkQueueKind lock_kind = {
	"lock", ZKSYNC_LOCKS, 1, {""}, NULL,
	lock_mode, lock_what, lock_granted, lock_blocks
};

/* A blocker that is a write node may be handed to us (handoff.c). */
static const ZkQueueDriver write_driver = {
	zk_queue_first_granted, true, &lock_kind, 0, false, ZKQ_WRITE_LOCK
};
static const ZkQueueDriver read_driver = {
	reader_granted, true, &lock_kind, 0, false, ZKQ_READ_LOCK
};

#define MODE_DRIVER(c)	((c) == 'w' ? &write_driver : &read_driver)

/* Is contender i of `c` granted? */
bool
zksync_rwlock_granted(const ZkContender *c, int n, int i)
{
	int			watch;

	return c[i].reader ? reader_granted(c, n, i, &watch) :
		zk_queue_first_granted(c, n, i, &watch);
}

/*
 * Create our node and wait until it is granted or `deadline` (0: none)
 * passes (queue.c); a downgrade's read node is granted at once.  Returns
 * true when granted, with hold->node and hold->token set; false on
 * timeout, with the node removed.  May throw; the queue has then removed
 * the node.
 */
static bool
acquire_node(Hold *hold, char mode, bool downgrade, TimestampTz deadline)
{
	const char *tag = zksync_lock_tag(mode);
	char	   *data;
	int			datalen;
	bool		granted = true;

	data = zksync_owner_data(NULL, &datalen);
	if (downgrade)
		zk_queue_join(&acq, hold->key.dir, tag, data, datalen);
	else
		granted = zk_queue_wait(&acq, hold->key.dir, tag, data, datalen,
								MODE_DRIVER(mode), deadline, hold->name);
	if (granted)
	{
		strlcpy(hold->node, acq.node, sizeof(hold->node));
		hold->token = acq.czxid;
	}
	return granted;
}

/*
 * Send the releases batched since zk_release_batch_begin() (one multi for
 * many), and with zksync.synchronous_release on, wait until ZooKeeper has
 * applied the releases just sent (at most ZKSYNC_RELEASE_WAIT_MS, not at all while
 * disconnected: then they go on in the background).  Without `nothrow`,
 * an interrupt ends the wait with an ERROR; the releases go on.
 */
static void
finish_releases(bool nothrow)
{
	zk_release_batch_end();
	/* an interrupt here leaves the entries releasing until the next time */
	if (zksync_synchronous_release)
		zk_await_releases(ZKSYNC_RELEASE_WAIT_MS, nothrow);
	zksync_local_released();
}

/* One name of an acquisition */
typedef struct Want
{
	const char *name;
	char	   *dir;			/* {root}/locks/{name} */
	Hold	   *hold;			/* the hold it adds a count to */
	bool		stacked;		/* held already: only a count */
	bool		downgrade;		/* a read node beside our write node */
	bool		owned;			/* our node is granted (for cleanup) */
} Want;

/*
 * Release what an acquisition of several names had taken, without
 * throwing: granted nodes, and nodes still queued (abandoned).
 */
static void
release_taken(Want *w, ZkProtected *pns, int k, char mode)
{
	int			j;

	for (j = 0; j < k; j++)
	{
		if (pns[j].active)
			zk_protected_abandon(&pns[j], 0);
		else if (w[j].owned && mode == 'w')
			release_write_node(pns[j].node);
		else if (w[j].owned)
			zk_release_node(pns[j].node, 0, true);
		w[j].owned = false;
	}
}

/*
 * Take the nodes of the `k` new names of one acquisition (w, pns and
 * their dirs in name order), all or nothing: true with every node granted
 * and w[j].hold->node set; false on timeout, nothing left.  May throw,
 * having removed everything.
 *
 * Free names cost one round trip: every node is made in one multi, with
 * the listings pipelined behind.  If some name is not free, the nodes
 * after the first such name (in name order) are released, and the rest
 * are taken one by one in name order: a caller never keeps a place in a
 * queue after the one it waits in, and every caller uses the same order,
 * so two callers whose sets overlap cannot wait for each other in a
 * circle (the lock-ordering rule, applied across clusters).
 */
static bool
acquire_nodes(Want *w, ZkProtected *pns, int k, char mode,
			  TimestampTz deadline)
{
	const ZkQueueDriver *drv = MODE_DRIVER(mode);
	const char *tag = zksync_lock_tag(mode);
	char	   *data;
	int			datalen;
	volatile bool ok = true;
	int			j;

	data = zksync_owner_data(NULL, &datalen);
	PG_TRY();
	{
		char	  **dirs = palloc(sizeof(char *) * k);
		ZkReq	  **listings = palloc0(sizeof(ZkReq *) * k);
		int			first = -1;

		for (j = 0; j < k; j++)
			dirs[j] = w[j].dir;
		zk_protected_create_many(pns, k, dirs, tag, data, datalen, listings);
		for (j = 0; j < k; j++)
		{
			bool		granted;

			if (first >= 0)
			{
				zk_req_free(listings[j]);	/* released below anyway */
				continue;
			}
			granted = zk_queue_granted(drv, &pns[j], listings[j]);
			if (w[j].downgrade || granted)
			{
				pns[j].active = false;
				w[j].owned = true;
			}
			else
				first = j;
		}
		if (first >= 0)
		{
			/* no place in a queue after the one we wait in */
			for (j = first + 1; j < k; j++)
			{
				pns[j].active = false;
				zk_release_node(pns[j].node, 0, true);
			}
			ok = zk_queue_wait_node(&pns[first], drv, deadline,
									w[first].name);
			w[first].owned = ok;
			for (j = first + 1; ok && j < k; j++)
			{
				if (w[j].downgrade)
					zk_queue_join(&pns[j], w[j].dir, tag, data, datalen);
				else
					ok = zk_queue_wait(&pns[j], w[j].dir, tag, data, datalen,
									   drv, deadline, w[j].name);
				w[j].owned = ok;
			}
		}
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		release_taken(w, pns, k, mode);
		zk_await_releases(ZKSYNC_ABANDON_WAIT_MS, true);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!ok)
	{
		/* timed out: what was taken goes, nothing is left */
		release_taken(w, pns, k, mode);
		finish_releases(false);
		return false;
	}
	for (j = 0; j < k; j++)
	{
		strlcpy(w[j].hold->node, pns[j].node, sizeof(w[j].hold->node));
		w[j].hold->token = 0;	/* read when first asked for */
	}
	return true;
}

/*
 * The first step of an acquisition: fill w[] for `names` (n of them) and
 * return how many need a new node.  A name held in `m` already is stacked
 * (only counted: it works during an outage too); a read asked beside our
 * write lock is a downgrade.  ERROR on a lost hold, and on an upgrade
 * (read held, write asked), which would wait for itself.
 */
static int
plan_wants(Want *w, const char **names, int n, char m)
{
	int			fresh = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		Hold	   *hold;
		Hold	   *other;

		w[i].name = names[i];
		w[i].dir = zksync_recipe_dir(ZKSYNC_LOCKS, names[i]);
		hold = hold_find(w[i].dir, m);
		if (hold && hold->state != HOLD_WAITING)
		{
			hold_error_if_lost(hold);
			w[i].hold = hold;
			w[i].stacked = true;
			continue;
		}
		other = hold_find(w[i].dir, m == 'w' ? 'r' : 'w');
		if (other && other->state != HOLD_WAITING)
		{
			hold_error_if_lost(other);
			if (m == 'w')
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("cannot upgrade zksync lock \"%s\" from read to write", names[i]),
						 errdetail("This backend holds the read lock; waiting for the write lock would wait for itself."),
						 errhint("Release the read lock first.")));
			w[i].downgrade = true;
		}
		fresh++;
	}
	return fresh;
}

/*
 * Make a waiting hold for each name of w[] that is not stacked, and copy
 * those wants, in name order, to fresh[]; returns how many.
 */
static int
start_new_holds(Want *w, int n, char m, Want *fresh)
{
	int			k = 0;
	int			i;

	for (i = 0; i < n; i++)
		if (!w[i].stacked)
		{
			w[i].hold = hold_new(w[i].dir, m, w[i].name);
			fresh[k++] = w[i];
		}
	return k;
}

/* Forget the holds start_new_holds() made (their nodes are gone). */
static void
forget_new_holds(Want *w, int n, char m)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		Hold	   *gone = w[i].stacked ? NULL : hold_find(w[i].dir, m);

		if (gone)
			hold_remove(gone);
	}
}

/*
 * Take the nodes of the `k` fresh wants: one by the queue's wait, several
 * all or nothing (acquire_nodes).  True when granted; false at
 * `deadline`.  On an ERROR the holds that were to be are forgotten (the
 * queue has removed their nodes) before it propagates.
 */
static bool
wait_for_new_holds(Want *w, int n, Want *fresh, int k, char m,
				   TimestampTz deadline)
{
	ZkProtected *pns = palloc0(sizeof(ZkProtected) * k);
	volatile bool granted = true;

	PG_TRY();
	{
		if (k == 1)
			granted = acquire_node(fresh[0].hold, m, fresh[0].downgrade,
								   deadline);
		else
			granted = acquire_nodes(fresh, pns, k, m, deadline);
	}
	PG_CATCH();
	{
		forget_new_holds(w, n, m);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return granted;
}

/*
 * The names of w[] that are not stacked (k of them) get their nodes:
 * check max_holds, connect, wait until `timeout_ms` (negative: none) or
 * lock_timeout, then mark them held and watch their nodes.  False on
 * timeout, with nothing left (an ERROR if lock_timeout ended it).
 */
static bool
take_new_holds(Want *w, int n, int k, char m, int timeout_ms)
{
	const ZkQueueDriver *drv = MODE_DRIVER(m);
	Want	   *fresh = palloc0(sizeof(Want) * n);
	TimestampTz deadline;
	TimestampTz lock_deadline;
	int			i;

	for (i = 0; i < n; i++)
		if (!w[i].stacked)
		{
			zk_queue_check_max_holds(drv->what, w[i].name, k);
			break;
		}
	zk_connect();
	deadline = zk_queue_deadline(timeout_ms, &lock_deadline);
	k = start_new_holds(w, n, m, fresh);
	if (!wait_for_new_holds(w, n, fresh, k, m, deadline))
	{
		forget_new_holds(w, n, m);
		zk_queue_check_lock_timeout(lock_deadline, drv->what, w[0].name);
		return false;
	}
	for (i = 0; i < n; i++)
		if (!w[i].stacked)
		{
			hold_set_held(w[i].hold);
			w[i].hold->watch = zk_held_watch(w[i].hold->node);
		}
	return true;
}

/*
 * Acquire every one of `names` (n of them, valid, sorted, without
 * duplicates) in `mode`, at session or transaction level, all or nothing.
 * Blocking unless `try_only`, in which case it waits up to `timeout_ms`
 * and returns false, having taken nothing, if not every lock was granted.
 * lock_timeout applies to every wait, and to the whole call.
 */
bool
zksync_lock_acquire_many(const char **names, int n, ZkLockMode mode,
						 bool xact, bool try_only, int timeout_ms)
{
	char		m = MODE_CHAR(mode);
	Want	   *w = palloc0(sizeof(Want) * n);
	int			fresh;
	int			i;

	zk_notice_session_end();
	fresh = plan_wants(w, names, n, m);
	if (fresh > 0 &&
		!take_new_holds(w, n, fresh, m, try_only ? timeout_ms : -1))
		return false;
	for (i = 0; i < n; i++)
		hold_add_count(w[i].hold, xact);
	zksync_stat_count(ZKSTAT_ACQUIRED, n);
	return true;
}

/*
 * Would our read node be granted without our write node?  If not, the
 * write node must be retained (see "Downgrade" above).
 */
static bool
read_needs_write_node(Hold *read, const char *write_node)
{
	ZkReq	   *g = zk_children_retrying(read->key.dir);
	const char *mine = strrchr(read->node, '/') + 1;
	const char *skip = strrchr(write_node, '/') + 1;
	ZkContender *c;
	int			n,
				k = 0,
				me = -1,
				watch,
				i;
	bool		needed;

	n = zksync_contenders(zk_req_rc(g) == ZOK ? zk_req_children(g) : NULL,
						  zk_req_rc(g) == ZOK ? zk_req_nchildren(g) : 0, &c);
	for (i = 0; i < n; i++)
	{
		if (strcmp(c[i].name, skip) == 0)
			continue;			/* as if our write node were gone */
		c[k] = c[i];
		if (strcmp(c[k].name, mine) == 0)
			me = k;
		k++;
	}
	needed = me >= 0 && !reader_granted(c, k, me, &watch);
	pfree(c);
	zk_req_free(g);
	return needed;
}

/*
 * Release a granted write node of ours, and hand it to a backend of this
 * cluster waiting for it (handoff.c).  Never throws.
 */
static void
release_write_node(const char *node)
{
	zk_release_node(node, 0, true);
	zksync_handoff_release(node, zk_session_hosts());
}

/*
 * Drop a hold whose counts are both zero: release its node(s) and forget
 * it.  The deletes are sent, not waited for: the caller calls
 * finish_releases() once it has sent all of them.  With `nothrow`
 * (transaction callbacks), or while disconnected, the downgrade check,
 * which reads ZooKeeper, is skipped and the write node retained.
 */
static void
drop_hold(Hold *hold, bool nothrow)
{
	if (hold->session_count > 0 || hold->xact_count > 0)
		return;
	if (hold->state == HOLD_HELD)
	{
		Hold	   *read = NULL;

		/* our own delete is not a loss */
		zk_held_drop(hold->watch);
		hold->watch = NULL;

		if (hold->key.mode == 'w')
			read = hold_find(hold->key.dir, 'r');
		if (read && read->state == HOLD_HELD &&
			(nothrow || !zk_is_connected() ||
			 read_needs_write_node(read, hold->node)))
			strlcpy(read->retained, hold->node, sizeof(read->retained));
		else if (hold->key.mode == 'w')
			release_write_node(hold->node);
		else
			zk_release_node(hold->node, 0, true);
		if (hold->retained[0])
			release_write_node(hold->retained);
		hold_keep_releasing(hold);
	}
	hold_remove(hold);
}

/*
 * Release one session-level hold of `name`, sending the delete if it was
 * the last hold (the caller waits for it: finish_releases).  Returns false
 * with a WARNING if there is none.  A lost hold is released and then
 * reported with an ERROR.
 */
static bool
release_one(const char *name, char m)
{
	char	   *dir = zksync_recipe_dir(ZKSYNC_LOCKS, name);
	Hold	   *hold = hold_find(dir, m);

	if (hold == NULL || hold->session_count == 0)
	{
		if (m == 'w')
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("you don't own a zksync write lock on \"%s\"", name)));
		else
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("you don't own a zksync read lock on \"%s\"", name)));
		return false;
	}
	if (hold->state == HOLD_LOST)
	{
		/* the hold ends here, and the caller hears that it had been lost */
		hold->session_count--;
		if (hold->session_count == 0 && hold->xact_count == 0)
			hold_remove(hold);
		hold_report_lost(m, name, hold->node_deleted);
	}
	if (hold->session_count == 1 && hold->xact_count == 0)
	{
		hold->session_count = 0;
		PG_TRY();
		{
			drop_hold(hold, false);
		}
		PG_CATCH();
		{
			/* still held: the caller may try again */
			hold = hold_find(dir, m);
			if (hold)
				hold->session_count = 1;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	else
		hold->session_count--;
	return true;
}

/*
 * Release one session-level hold of each of `names` (zksync_*_unlock).
 * Returns true if every name had one; for each that had none, a WARNING.
 * Needs no connection (during an outage the deletes go on in the
 * background); with zksync.synchronous_release on it returns once
 * ZooKeeper applied the deletes, so that every client sees the locks free.
 */
bool
zksync_lock_release_many(const char **names, int n, ZkLockMode mode)
{
	volatile bool all = true;
	int			i;

	/* first, so that a noticed expiry shows as a lost hold below */
	zk_notice_session_end();
	zk_release_batch_begin();
	PG_TRY();
	{
		for (i = 0; i < n; i++)
			all &= release_one(names[i], MODE_CHAR(mode));
	}
	PG_CATCH();
	{
		zk_release_batch_end(); /* what was released goes all the same */
		PG_RE_THROW();
	}
	PG_END_TRY();
	finish_releases(false);
	/* the release may have been what told us the session had expired */
	zk_notice_session_end();
	return all;
}

/* A lost session hold is dropped (zksync_unlock_all, DISCARD ALL): say so. */
static void
warn_dropping_lost(Hold *hold)
{
	if (hold->key.mode == 'w')
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("zksync write lock \"%s\" had been lost", hold->name),
				 errdetail("It was lost with its ZooKeeper session, or another client deleted its node.")));
	else
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("zksync read lock \"%s\" had been lost", hold->name),
				 errdetail("It was lost with its ZooKeeper session, or another client deleted its node.")));
}

/*
 * End every session-level hold (zksync_unlock_all, DISCARD ALL).  Lost
 * holds are dropped with a WARNING each.
 */
void
zksync_release_session_holds(bool nothrow)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;
	HoldKey    *keys;
	int			n = 0,
				i;

	/* an expiry that no call has noticed yet: its holds are lost */
	zk_notice_session_end();
	if (holds == NULL)
		return;
	keys = palloc(sizeof(HoldKey) * (hash_get_num_entries(holds) + 1));
	zk_release_batch_begin();
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
		if (hold->session_count > 0)
			keys[n++] = hold->key;

	for (i = 0; i < n; i++)
	{
		hold = (Hold *) hash_search(holds, &keys[i], HASH_FIND, NULL);
		if (hold == NULL)
			continue;
		if (hold->state == HOLD_LOST)
			warn_dropping_lost(hold);
		hold->session_count = 0;
		if (hold->xact_count == 0)
		{
			if (hold->state == HOLD_LOST)
				hold_remove(hold);
			else
				drop_hold(hold, true);
		}
	}
	pfree(keys);
	finish_releases(nothrow);
	zk_notice_session_end();
}

/*
 * End the transaction-level holds taken at subtransaction nesting level
 * `nest_level` or deeper (1: the whole transaction).  Called from the
 * transaction callbacks: never throws, and waits for the releases at most
 * ZKSYNC_RELEASE_WAIT_MS.
 */
static void
release_xact_holds(int nest_level, bool nothrow)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;
	bool		released = false;

	if (n_xact_holds == 0)
		return;
	zk_release_batch_begin();
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		int			ended = hold_pop_levels(hold, nest_level);

		if (ended == 0)
			continue;
		hold->xact_count -= ended;
		if (hold->xact_count == 0)
			n_xact_holds--;
		if (hold->session_count == 0 && hold->xact_count == 0)
		{
			/* removing the current entry is allowed during a scan */
			released |= hold->state == HOLD_HELD;
			if (hold->state == HOLD_HELD)
				drop_hold(hold, nothrow);
			else
				hold_remove(hold);
		}
	}
	if (released)
		finish_releases(nothrow);
	else
		zk_release_batch_end();
}

/* DISCARD ALL */
static void
end_session_holds(void)
{
	zksync_release_session_holds(true);
}

/* Transaction end, ROLLBACK TO: never throws */
static void
end_xact_level(int level)
{
	release_xact_holds(level, true);
}

static const ZkScopeHooks lock_scope = {
	holds_check_commit,
	holds_have_xact,
	end_xact_level,
	holds_pass_up,
	end_session_holds
};

/*
 * From _PG_init: hear of the session's end and of transaction ends (the
 * connection layer and xact.c call no recipe by name).
 */
void
zksync_lock_init(void)
{
	holds_init();
	zksync_register_scope(&lock_scope);
	zksync_register_queue_kind(&lock_kind);
}
