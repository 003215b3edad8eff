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
 * Holds.  Per backend there is at most one node per (lock, mode).  A hold
 * counts session-level and transaction-level acquisitions apart, as
 * advisory locks do; the node is deleted when both counts reach zero.
 * Transaction-level acquisitions are counted per subtransaction nesting
 * level, for ROLLBACK TO SAVEPOINT and RELEASE: so stacking costs constant
 * memory per (lock, mode, level), and a million calls in one transaction
 * cost what one does (SPEC point 16).  At most zksync.max_holds holds may
 * exist at once (point 18); stacking is free.
 *
 * Releases.  A hold ends by deleting its node through the connection
 * layer, which keeps the delete until ZooKeeper has applied it or the
 * session has ended.  With zksync.synchronous_release on, the release
 * waits (at most ZKSYNC_RELEASE_WAIT_MS, and not at all while
 * disconnected) until it is applied, so when an unlock returns, every
 * client sees the lock free (point 13).  Stacking and session unlocks need
 * no connection (point 15).
 *
 * Downgrade.  A backend holding the write lock gets the read lock at once:
 * its read node is created without waiting.  If the write hold then ends
 * while a writer of another client queued between our two nodes, deleting
 * our write node would let that writer in beside our read hold.  In that
 * case the write node is kept ("retained") until the read hold ends too:
 * the exclusion lasts a little longer than asked, never shorter.  An
 * upgrade (read held, write asked) would wait for itself: ERROR.
 *
 * Expiry.  When the session expires, every ephemeral node is gone, so
 * every hold becomes "lost" (hold_forget_session, registered with the connection layer).  A lost hold is never
 * reported as held; the commit check in xact.c refuses to commit a
 * transaction that relied on one.  A grant is returned only on a session
 * known alive at that moment (zk_session_known_alive): a hand-off from a
 * backend of this cluster that reaches a waiter whose process was stopped
 * past the session timeout is checked against ZooKeeper first (point 14).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "zksync.h"

typedef struct HoldKey
{
	char		dir[ZKSYNC_PATH_MAX];	/* {root}/locks/{name} */
	char		mode;			/* 'w' or 'r' */
} HoldKey;

typedef enum HoldState
{
	HOLD_WAITING,
	HOLD_HELD,
	HOLD_LOST
} HoldState;

/* Transaction-level acquisitions of one hold at one savepoint level */
typedef struct XactLevel
{
	int			level;			/* subtransaction nesting level */
	int			count;
} XactLevel;

typedef struct Hold
{
	HoldKey		key;			/* hash key: must be first */
	char		name[ZKSYNC_NAME_MAX + 1];
	char		node[ZKSYNC_PATH_MAX];	/* our node, "" until known */
	char		retained[ZKSYNC_PATH_MAX];	/* write node kept for a
											 * downgrade, or "" */
	int			session_count;
	int			xact_count;		/* sum of the levels' counts */
	/* xact_count by savepoint level, ascending; TopMemoryContext */
	XactLevel  *levels;
	int			nlevels;
	int			maxlevels;
	HoldState	state;
	bool		node_deleted;	/* lost: another client deleted the node */
	ZkHeld	   *watch;			/* the node's watch while held */
	int64		token;			/* czxid of the node */
	LocalTransactionId lost_lxid;	/* transaction running when lost */
} Hold;

static HTAB *holds = NULL;
/* holds with xact_count > 0, so that most callbacks have nothing to scan */
static int	n_xact_holds = 0;

/*
 * The acquisition in progress, for the cleanup that runs when its wait is
 * interrupted: the GUID finds the node even if the create's reply is lost.
 */
static ZkProtected acq;

static void release_write_node(const char *node);

#define MODE_CHAR(m)	((m) == ZKLOCK_WRITE ? 'w' : 'r')
#define MODE_NAME(c)	((c) == 'w' ? "write" : "read")

static void
init_holds(void)
{
	HASHCTL		ctl;

	if (holds)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(HoldKey);
	ctl.entrysize = sizeof(Hold);
	ctl.hcxt = TopMemoryContext;
	holds = hash_create("zksync holds", 64, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static void
make_key(HoldKey *key, const char *dir, char mode)
{
	memset(key, 0, sizeof(*key));
	strlcpy(key->dir, dir, sizeof(key->dir));
	key->mode = mode;
}

static Hold *
find_hold(const char *dir, char mode)
{
	HoldKey		key;

	init_holds();
	make_key(&key, dir, mode);
	return (Hold *) hash_search(holds, &key, HASH_FIND, NULL);
}

static void
remove_hold(Hold *hold)
{
	zk_held_drop(hold->watch);
	hold->watch = NULL;
	if (hold->xact_count > 0)
		n_xact_holds--;
	if (hold->levels)
		pfree(hold->levels);
	hash_search(holds, &hold->key, HASH_REMOVE, NULL);
}

/*
 * The read-write lock's grant rule, its one home: used by the wait (as the
 * queue's drivers) and by zksync_lock_holders().  `c` is in sequence
 * order, `mine` our index.
 *
 *	 writer: granted when no contender is ahead; else it waits for its
 *			 immediate predecessor.
 *	 reader: granted when no writer is ahead; else it waits for the
 *			 nearest writer ahead.
 */
static bool
writer_granted(const ZkContender *c, int n, int mine, int *watch)
{
	if (mine == 0)
		return true;
	*watch = mine - 1;
	return false;
}

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
static const ZkQueueDriver write_driver = {writer_granted, true, &lock_kind, 0};
static const ZkQueueDriver read_driver = {reader_granted, true, &lock_kind, 0};

/* Is contender i of `c` granted? */
bool
zksync_rwlock_granted(const ZkContender *c, int n, int i)
{
	int			watch;

	return c[i].reader ? reader_granted(c, n, i, &watch) :
		writer_granted(c, n, i, &watch);
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
								mode == 'w' ? &write_driver : &read_driver,
								deadline,
								mode == 'w' ? "write lock" : "read lock",
								hold->name);
	if (granted)
	{
		strlcpy(hold->node, acq.node, sizeof(hold->node));
		hold->token = acq.czxid;
	}
	return granted;
}

/*
 * Count one more acquisition.  A transaction-level one is counted at the
 * current savepoint level; growing the level array is the only thing that
 * can fail here, and it fails before anything changes.
 */
static void
add_count(Hold *hold, bool xact)
{
	int			level;

	if (!xact)
	{
		hold->session_count++;
		return;
	}
	level = GetCurrentTransactionNestLevel();
	if (hold->nlevels > 0 && hold->levels[hold->nlevels - 1].level == level)
		hold->levels[hold->nlevels - 1].count++;
	else
	{
		if (hold->nlevels == hold->maxlevels)
		{
			hold->levels = repalloc(hold->levels,
									sizeof(XactLevel) * hold->maxlevels * 2);
			hold->maxlevels *= 2;
		}
		hold->levels[hold->nlevels].level = level;
		hold->levels[hold->nlevels].count = 1;
		hold->nlevels++;
	}
	if (hold->xact_count++ == 0)
		n_xact_holds++;
}

static void
report_lost(char mode, const char *name, bool node_deleted)
{
	if (node_deleted)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("zksync %s lock \"%s\" was lost: another client deleted its node",
						MODE_NAME(mode), name),
				 errdetail("The node was deleted while this backend held the lock; another client may have taken the lock."),
				 errhint("Release it with zksync_unlock_all() or by ending the transaction.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("zksync %s lock \"%s\" was lost with its ZooKeeper session",
					MODE_NAME(mode), name),
			 errdetail("The session expired, or could not be confirmed alive and was closed; another client may have taken the lock."),
			 errhint("Release it with zksync_unlock_all() or by ending the transaction.")));
}

static void
error_if_lost(Hold *hold)
{
	if (hold->state == HOLD_LOST)
		report_lost(hold->key.mode, hold->name, hold->node_deleted);
}

/*
 * A new hold would be one too many (SPEC point 18): the ensemble is shared
 * by every cluster, so one backend may not fill it, as advisory locks may
 * not fill the lock table.  Stacking is free; lost holds have no node.
 */
static void
check_max_holds(const char *name, int more)
{
	int			n = zk_session_nodes();

	if (n + more > zksync_max_holds)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many zksync locks held by this backend"),
				 errdetail("Taking \"%s\" would make %d nodes in ZooKeeper; zksync.max_holds is %d.",
						   name, n + more, zksync_max_holds),
				 errhint("Take one coarse lock for many items, use the array form, or raise zksync.max_holds.")));
}

/* A new hold of `dir` in `mode`, waiting; nothing counted yet. */
static Hold *
new_hold(const char *dir, char mode, const char *name)
{
	XactLevel  *levels = MemoryContextAlloc(TopMemoryContext,
											sizeof(XactLevel) * 4);
	HoldKey		key;
	Hold	   *hold;
	bool		found;

	init_holds();
	make_key(&key, dir, mode);
	hold = (Hold *) hash_search(holds, &key, HASH_ENTER, &found);
	memset(((char *) hold) + sizeof(HoldKey), 0, sizeof(Hold) - sizeof(HoldKey));
	strlcpy(hold->name, name, sizeof(hold->name));
	hold->state = HOLD_WAITING;
	hold->levels = levels;
	hold->maxlevels = 4;
	return hold;
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
	if (zksync_synchronous_release)
		zk_await_releases(ZKSYNC_RELEASE_WAIT_MS, nothrow);
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
	const ZkQueueDriver *drv = mode == 'w' ? &write_driver : &read_driver;
	const char *tag = zksync_lock_tag(mode);
	const char *what = mode == 'w' ? "write lock" : "read lock";
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
			ok = zk_queue_wait_node(&pns[first], drv, deadline, what,
									w[first].name);
			w[first].owned = ok;
			for (j = first + 1; ok && j < k; j++)
			{
				if (w[j].downgrade)
					zk_queue_join(&pns[j], w[j].dir, tag, data, datalen);
				else
					ok = zk_queue_wait(&pns[j], w[j].dir, tag, data, datalen,
									   drv, deadline, what, w[j].name);
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
	Want	   *fresh = palloc0(sizeof(Want) * n);
	int			k = 0;
	int			i;
	volatile bool granted = true;
	TimestampTz deadline;
	TimestampTz lock_deadline;

	zk_notice_session_end();
	for (i = 0; i < n; i++)
	{
		Hold	   *hold;
		Hold	   *other;

		w[i].name = names[i];
		w[i].dir = zksync_recipe_dir(ZKSYNC_LOCKS, names[i]);

		/* stacking: no network needed (SPEC point 15) */
		hold = find_hold(w[i].dir, m);
		if (hold && hold->state != HOLD_WAITING)
		{
			error_if_lost(hold);
			w[i].hold = hold;
			w[i].stacked = true;
			continue;
		}
		other = find_hold(w[i].dir, m == 'w' ? 'r' : 'w');
		if (other && other->state != HOLD_WAITING)
		{
			error_if_lost(other);
			if (m == 'w')
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("cannot upgrade zksync lock \"%s\" from read to write", names[i]),
						 errdetail("This backend holds the read lock; waiting for the write lock would wait for itself."),
						 errhint("Release the read lock first.")));
			w[i].downgrade = true;
		}
		k++;
	}

	if (k > 0)
	{
		ZkProtected *pns;

		for (i = 0; i < n; i++)
			if (!w[i].stacked)
			{
				check_max_holds(names[i], k);
				break;
			}
		zk_connect();

		deadline = zk_queue_deadline(try_only ? timeout_ms : -1, &lock_deadline);

		/* the new holds, waiting; the fresh ones in name order */
		k = 0;
		for (i = 0; i < n; i++)
			if (!w[i].stacked)
			{
				w[i].hold = new_hold(w[i].dir, m, names[i]);
				fresh[k++] = w[i];
			}
		pns = palloc0(sizeof(ZkProtected) * k);

		PG_TRY();
		{
			if (k == 1)
			{
				granted = acquire_node(fresh[0].hold, m, fresh[0].downgrade,
									   deadline);
			}
			else
				granted = acquire_nodes(fresh, pns, k, m, deadline);
		}
		PG_CATCH();
		{
			/* our nodes are gone; so are the holds that were to be */
			for (i = 0; i < n; i++)
			{
				Hold	   *gone = w[i].stacked ? NULL : find_hold(w[i].dir, m);

				if (gone)
					remove_hold(gone);
			}
			PG_RE_THROW();
		}
		PG_END_TRY();

		if (!granted)
		{
			for (i = 0; i < n; i++)
				if (!w[i].stacked)
					remove_hold(w[i].hold);
			zk_queue_check_lock_timeout(lock_deadline,
										m == 'w' ? "write lock" : "read lock",
										names[0]);
			return false;
		}
		for (i = 0; i < n; i++)
			if (!w[i].stacked)
			{
				w[i].hold->state = HOLD_HELD;
				w[i].hold->watch = zk_held_watch(w[i].hold->node);
			}
	}
	for (i = 0; i < n; i++)
		add_count(w[i].hold, xact);
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
			read = find_hold(hold->key.dir, 'r');
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
	}
	remove_hold(hold);
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
	Hold	   *hold = find_hold(dir, m);

	if (hold == NULL || hold->session_count == 0)
	{
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("you don't own a zksync %s lock on \"%s\"", MODE_NAME(m), name)));
		return false;
	}
	if (hold->state == HOLD_LOST)
	{
		/* the hold ends here, and the caller hears that it had been lost */
		hold->session_count--;
		if (hold->session_count == 0 && hold->xact_count == 0)
			remove_hold(hold);
		report_lost(m, name, hold->node_deleted);
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
			hold = find_hold(dir, m);
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
 * Needs no connection (SPEC point 15); with synchronous_release it returns
 * once ZooKeeper applied the deletes (point 13).
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
		zk_release_batch_end();		/* what was released goes all the same */
		PG_RE_THROW();
	}
	PG_END_TRY();
	finish_releases(false);
	/* the release may have been what told us the session had expired */
	zk_notice_session_end();
	return all;
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
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("zksync %s lock \"%s\" had been lost with its ZooKeeper session",
							MODE_NAME(hold->key.mode), hold->name)));
		hold->session_count = 0;
		if (hold->xact_count == 0)
		{
			if (hold->state == HOLD_LOST)
				remove_hold(hold);
			else
				drop_hold(hold, true);
		}
	}
	pfree(keys);
	finish_releases(nothrow);
	zk_notice_session_end();
}

/*
 * Take the counts of savepoint level `nest_level` and deeper off a hold's
 * level array (they are its last entries) and return their sum; the
 * caller adjusts xact_count.
 */
static int
pop_levels(Hold *hold, int nest_level)
{
	int			n = 0;

	while (hold->nlevels > 0 &&
		   hold->levels[hold->nlevels - 1].level >= nest_level)
		n += hold->levels[--hold->nlevels].count;
	return n;
}

/*
 * End the transaction-level holds taken at subtransaction nesting level
 * `nest_level` or deeper (1: the whole transaction).  Called from the
 * transaction callbacks: never throws, and waits for the releases at most
 * ZKSYNC_RELEASE_WAIT_MS.
 */
static void
zksync_release_xact_holds(int nest_level, bool nothrow)
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
		int			ended = pop_levels(hold, nest_level);

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
				remove_hold(hold);
		}
	}
	if (released)
		finish_releases(nothrow);
	else
		zk_release_batch_end();
}

/* RELEASE SAVEPOINT: the subtransaction's holds pass to its parent. */
static void
zksync_reassign_xact_holds(int nest_level)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;

	if (n_xact_holds == 0)
		return;
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		int			moved = pop_levels(hold, nest_level);

		if (moved == 0)
			continue;
		/* merge into the parent's level, which is now the last, if any */
		if (hold->nlevels > 0 &&
			hold->levels[hold->nlevels - 1].level == nest_level - 1)
			hold->levels[hold->nlevels - 1].count += moved;
		else
		{
			/* the array had room for the level(s) just taken off it */
			hold->levels[hold->nlevels].level = nest_level - 1;
			hold->levels[hold->nlevels].count = moved;
			hold->nlevels++;
		}
	}
}

static bool
zksync_have_xact_holds(void)
{
	return n_xact_holds > 0;
}

/*
 * The nodes the hold table keeps on the session (a lost hold counts until
 * it is dropped; it is rare and short-lived, and the count stays O(1)).
 */
static int
hold_nodes(void)
{
	return holds ? (int) hash_get_num_entries(holds) : 0;
}

/* A held hold is lost: never reported as held again. */
static void
mark_lost(Hold *hold, bool node_deleted)
{
	hold->state = HOLD_LOST;
	hold->node_deleted = node_deleted;
	hold->lost_lxid = MyProc ? MyProc->lxid : InvalidLocalTransactionId;
	zk_held_drop(hold->watch);
	hold->watch = NULL;
}

/*
 * The session expired or was closed: every node is gone.  Holds become
 * lost (never reported as held again); waits in progress are dropped.
 */
static void
hold_forget_session(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;

	if (holds == NULL)
		return;
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		if (hold->state == HOLD_WAITING)
			remove_hold(hold);
		else if (hold->state == HOLD_HELD)
			mark_lost(hold, false);
	}
}

/*
 * Some held nodes were found gone: each hold whose node another client
 * deleted is lost, exactly as after an expiry, and the backend hears of it
 * now.  Never throws (WARNINGs only).
 */
static void
lost_nodes(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;

	if (holds == NULL)
		return;
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
		if (hold->state == HOLD_HELD && zk_held_gone(hold->watch))
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("zksync %s lock \"%s\" is lost: another client deleted its node",
							MODE_NAME(hold->key.mode), hold->name),
					 errdetail("Node \"%s\" was deleted while this backend held the lock; another client may hold it now.",
							   hold->node),
					 errhint("A transaction that relied on the lock cannot commit. Release it with zksync_unlock_all() or by ending the transaction.")));
			mark_lost(hold, true);
		}
}

/*
 * The commit check looks at the nodes too, not only at the session: every
 * held node must be known present and ours (its watch set by a getData
 * that found it, and not fired since).  One whose getData is still out is
 * waited for, up to the session timeout; one that was deleted is lost; one
 * that cannot be confirmed in time closes the session, so that its holds
 * are lost rather than trusted.  May throw on interrupts.
 */
static void
verify_nodes(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;

	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		if (hold->state != HOLD_HELD ||
			zk_held_confirm(hold->watch, zksync_session_timeout))
			continue;
		if (!zk_held_gone(hold->watch))
		{
			hash_seq_term(&seq);
			zk_reset_session(); /* marks every hold lost, now */
			break;
		}
	}
	zk_notice_lost_nodes();
}

/*
 * Pre-commit: refuse to commit a transaction that relied on a lock that is
 * lost: any transaction hold, or a session hold held during it.  It asks
 * the server, with a sync (zk_sync_held): its answer proves the session
 * alive now, and comes after the news of any held node that another client
 * deleted before the COMMIT; then each node must be known present
 * (verify_nodes).  If the backend is cut off it cannot know whether its
 * session still lives, so it waits up to the session timeout for the
 * client to find out.  If nothing can be confirmed, the session is closed
 * and its locks count as lost.  A read-only transaction under session
 * locks only is not made to wait (below), but a hold already known lost
 * refuses it too.  Also run before PREPARE TRANSACTION.
 */
static void
zksync_check_lost_for_commit(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;
	Hold	   *bad = NULL;
	bool		relied = false;

	if (holds == NULL || hash_get_num_entries(holds) == 0)
		return;
	zk_notice_session_end();	/* an expiry the client knows of: lost */
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
		if (hold->state == HOLD_HELD)
			relied = true;
	/*
	 * Ask the server when the transaction holds a transaction lock, or
	 * wrote something under a session lock.  A read-only transaction that
	 * only ran under session locks makes nothing durable that they could
	 * have protected, and must not wait for a cut-off ensemble: an
	 * autocommit statement that stacks or unlocks a held session lock
	 * works at once during an outage (point 15).
	 */
	if (relied && (n_xact_holds > 0 ||
				   GetTopTransactionIdIfAny() != InvalidTransactionId))
	{
		if (!zk_sync_held(zksync_session_timeout))
			zk_reset_session();	/* marks every hold lost, now */
		else
			verify_nodes();
	}

	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		if (hold->state == HOLD_LOST && bad == NULL &&
			(hold->xact_count > 0 ||
			 (hold->lost_lxid != InvalidLocalTransactionId &&
			  MyProc && hold->lost_lxid == MyProc->lxid)))
			bad = hold;
	}
	if (bad && bad->node_deleted)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("cannot commit: zksync %s lock \"%s\" was lost during the transaction",
						MODE_NAME(bad->key.mode), bad->name),
				 errdetail("Another client deleted the lock's node while this backend held it; another client may have taken the lock."),
				 errhint("The transaction is rolled back. Release the lost lock with zksync_unlock_all() or take it again.")));
	if (bad)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("cannot commit: zksync %s lock \"%s\" was lost during the transaction",
						MODE_NAME(bad->key.mode), bad->name),
				 errdetail("The ZooKeeper session that held it expired or could not be confirmed alive; another client may have taken the lock."),
				 errhint("The transaction is rolled back. Release the lost lock with zksync_unlock_all() or take it again.")));
}

/*
 * A node created in a batch with releases (releases.c) comes back
 * without its stat, so its token (czxid) is read when first asked for.
 * A connection error is waited out on the same session (or thrown after
 * zksync.connect_timeout), never reported as "no token".
 */
static void
fill_tokens(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;
	bool		connected = false;

	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		ZkReq	   *e;

		if (hold->state != HOLD_HELD || hold->token != 0 || hold->node[0] == '\0')
			continue;
		if (!connected)
		{
			zk_connect();
			connected = true;
		}
		e = zk_call_retrying(ZKOP_EXISTS, hold->node, NULL, 0, 0, NULL);
		if (zk_req_rc(e) == ZOK && zk_req_ephemeral_owner(e) == zk_session_id())
			hold->token = zk_req_czxid(e);
		zk_req_free(e);
	}
}

/*
 * A pending release of a lock node under the current zksync.root, as a
 * row: the hold has ended, its delete is not applied yet.  False for any
 * other path (a barrier's, another root's).
 */
static bool
releasing_row(const char *path, ZkLockInfo *r)
{
	char	   *prefix = zksync_recipe_dir(ZKSYNC_LOCKS, "");
	size_t		plen = strlen(prefix);
	const char *name = path + plen;
	const char *slash;

	if (strncmp(path, prefix, plen) != 0 ||
		(slash = strchr(name, '/')) == NULL ||
		slash - name > ZKSYNC_NAME_MAX)
		return false;
	memset(r, 0, sizeof(*r));
	memcpy(r->name, name, slash - name);
	r->name[slash - name] = '\0';
	r->mode = zksync_node_is_reader(slash + 1) ? "read" : "write";
	r->state = "releasing";
	strlcpy(r->node, path, sizeof(r->node));
	return true;
}

/* Copy the hold table, and the releases still on their way, for zksync_locks(). */
int
zksync_lock_snapshot(ZkLockInfo **rows)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;
	int			n = 0;
	char	  **pending;
	int			npending,
				i;

	if (holds)
		fill_tokens();
	npending = zk_pending_releases(&pending);
	*rows = palloc0(sizeof(ZkLockInfo) *
					((holds ? hash_get_num_entries(holds) : 0) + npending + 1));
	if (holds)
	{
		hash_seq_init(&seq, holds);
		while ((hold = hash_seq_search(&seq)) != NULL)
		{
			ZkLockInfo *r = &(*rows)[n++];

			strlcpy(r->name, hold->name, sizeof(r->name));
			r->mode = MODE_NAME(hold->key.mode);
			r->session_count = hold->session_count;
			r->xact_count = hold->xact_count;
			r->state = hold->state == HOLD_HELD ? "held" :
				hold->state == HOLD_LOST ? "lost" : "waiting";
			strlcpy(r->node, hold->node, sizeof(r->node));
			r->token = hold->token;
			r->has_token = hold->token != 0 && hold->state == HOLD_HELD;
		}
	}
	for (i = 0; i < npending; i++)
		if (releasing_row(pending[i], &(*rows)[n]))
			n++;
	return n;
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
	zksync_release_xact_holds(level, true);
}

static const ZkScopeHooks lock_scope = {
	zksync_check_lost_for_commit,
	zksync_have_xact_holds,
	end_xact_level,
	zksync_reassign_xact_holds,
	end_session_holds
};

/*
 * From _PG_init: hear of the session's end and of transaction ends (the
 * connection layer and xact.c call no recipe by name).
 */
void
zksync_lock_init(void)
{
	zk_register_session_user(hold_nodes, hold_forget_session, lost_nodes);
	zksync_register_scope(&lock_scope);
	zksync_register_queue_kind(&lock_kind);
}
