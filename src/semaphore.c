/*-------------------------------------------------------------------------
 * semaphore.c
 *	  Counting semaphores: Apache Curator's InterProcessSemaphoreV2.
 *
 * At most max_leases leases of a name are held at once, across every
 * backend, cluster and client.  The layout and protocol are Curator's, so
 * a Java service using InterProcessSemaphoreV2 on {root}/semaphores/{name}
 * with the same count shares the semaphore both ways:
 *
 *	 {root}/semaphores/{name}/locks/_c_{guid}-lock-{seq}	a mutex
 *	 {root}/semaphores/{name}/leases/_c_{guid}-lease-{seq}	a lease
 *
 *	 acquire: take the mutex (a queue in which the first is granted: this
 *			  is what serves waiters in arrival order); create our lease
 *			  node; list the leases, watching them, until there are at most
 *			  max_leases (ours among them); release the mutex.
 *	 release: delete the lease node.
 *
 * A wait that ends without a lease (timeout, cancel, lock_timeout, a lost
 * session) removes both its nodes (queue.c and nodes.c do the work).
 *
 * Leases are per backend and counted one by one: each acquire takes one
 * more, and a backend may hold several.  They are session- or
 * transaction-level as locks are (ZkScopeHooks: they end at COMMIT,
 * ROLLBACK, ROLLBACK TO SAVEPOINT, DISCARD ALL), count toward
 * zksync.max_holds, show in zksync_locks() with mode "lease", and are lost
 * with the session: a lost lease refuses COMMIT.
 *
 * The count.  Curator does not check that its callers agree on
 * max_leases.  zksync records its count in the data of the semaphore's
 * node while anyone uses it (the node is a container, gone when unused),
 * and a zksync caller that states another count gets an ERROR naming both.
 * docs/recipes.md, "Semaphores", tells the whole recipe.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "releases.h"
#include "semaphore.h"
#include "nodes.h"
#include "queue.h"
#include "xact.h"
#include "shared.h"

typedef struct Lease
{
	char		name[ZKSYNC_NAME_MAX + 1];
	char		node[ZKSYNC_PATH_MAX];
	bool		xact;			/* transaction-level */
	int			level;			/* its savepoint level, if xact */
	bool		lost;			/* the session that held it ended, or */
	bool		node_deleted;	/* another client deleted its node */
	ZkHeld	   *watch;			/* the node's watch while held */
	LocalTransactionId lost_lxid;	/* the transaction running then */
	int			local;			/* its entry in zksync_local_locks */
} Lease;

/* This backend's leases, oldest first; TopMemoryContext */
static Lease *leases = NULL;
static int	nleases = 0;
static int	maxleases = 0;

/* The acquisition in progress, for its cleanup */
static ZkProtected mutex_pn;
static ZkProtected lease_pn;

/*
 * The semaphore's two queues, for the views and the deadlock scan: 0 the
 * leases (the first max_leases are granted; a lease beyond them waits for
 * the others to go), 1 the mutex (a queue in which the first is granted).
 */
static const char *
sem_mode(int q, const ZkContender *c)
{
	return q == 0 ? "lease" : "mutex";
}

static ZkQueueWhat
sem_what(int q, const ZkContender *c)
{
	return ZKQ_SEMAPHORE;
}

/* The count recorded in the semaphore node's data, or 0 if none (or junk) */
static int
count_in(const char *data, int len)
{
	return zksync_count_parse(data, len);
}

static bool
sem_granted(int q, const ZkContender *c, int n, int i, int capacity)
{
	if (q == 0)
		return capacity == 0 || i < capacity;
	return i == 0;
}

static bool
sem_blocks(int q, const ZkContender *c, int n, int i, int j, int capacity)
{
	return j < i;
}

static const ZkQueueKind semaphore_kind = {
	"semaphore", ZKSYNC_SEMAPHORES, 2, {"leases", "locks"}, count_in,
	sem_mode, sem_what, sem_granted, sem_blocks
};

/*
 * The mutex: the first contender holds it, the others wait in turn (the
 * queue's first-in-queue rule).  Holding it, we go on to wait for a lease:
 * one wait, in the views and the log too.
 */
static const ZkQueueDriver mutex_driver = {
	zk_queue_first_granted, false, &semaphore_kind, 1, true, ZKQ_SEMAPHORE
};

static char *
count_data(int max_leases, int *len)
{
	char	   *data = psprintf("{\"max_leases\":%d}", max_leases);

	*len = strlen(data);
	return data;
}

/* The count recorded in the semaphore's node, or 0 if none */
static int
recorded_count(const char *dir)
{
	ZkReq	   *g = zk_call_retrying(ZKOP_GET, dir, NULL, 0, 0, NULL);
	int			n = zk_req_rc(g) == ZOK ? count_in(zk_req_data(g), zk_req_datalen(g)) : 0;

	zk_req_free(g);
	return n;
}

/*
 * With our lease node made: list the leases until at most max_leases
 * exist.  True when ours counts; false at `deadline`.  `first` (may be
 * NULL) is a listing pipelined behind our create: in the usual case it
 * settles the question without another round trip.  Before waiting, the
 * leases are listed again with a watch.
 */
static bool
await_lease_grant(const char *leases_dir, int max_leases,
				  TimestampTz deadline, const char *name, ZkReq *first)
{
	const char *mine = strrchr(lease_pn.node, '/') + 1;
	ZkReq	   *g = first;

	for (;;)
	{
		uint64		seen = zk_events_seen();
		bool		watching = false;
		bool		present = false;
		int			count,
					i;

		if (g == NULL || zk_call(g) != ZOK)
		{
			zk_req_free(g);
			g = zk_call_retrying(ZKOP_CHILDREN_WATCH, leases_dir, NULL, 0, 0, NULL);
			watching = true;
		}
		if (zk_req_rc(g) != ZOK)
		{
			int			rc = zk_req_rc(g);

			zk_req_free(g);
			zk_report_error(rc, "get_children", leases_dir);
		}
		count = zk_req_nchildren(g);	/* Curator counts every child */
		for (i = 0; i < zk_req_nchildren(g); i++)
			present |= strcmp(zk_req_children(g)[i], mine) == 0;
		zk_req_free(g);
		g = NULL;
		if (!present)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the lease node of zksync semaphore \"%s\" disappeared while waiting",
							name),
					 errdetail("The ZooKeeper session expired, or another client deleted node \"%s\".",
							   lease_pn.node)));
		if (count <= max_leases)
			return true;
		if (!watching)
			continue;			/* list again, this time with a watch */
		zksync_wait_watch_begin(&semaphore_kind, 0, name, lease_pn.node, lease_pn.czxid);
		if (zksync_wait_watched(seen, NULL, deadline) == ZKW_TIMEOUT)
			return false;
		if (!zk_session_usable())
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("ZooKeeper session expired while waiting for zksync semaphore \"%s\"",
							name)));
	}
}

/* Remove what an acquisition had made; never throws. */
static void
abandon_acquisition(bool mutex_owned)
{
	zksync_wait_watch_end(false);
	zk_protected_abandon(&lease_pn, 0);
	if (mutex_pn.active)
		zk_protected_abandon(&mutex_pn, 0);
	else if (mutex_owned)
		zk_release_node(mutex_pn.node, 0, true);
}

/* An entry for one more lease: the only step that can fail, so it goes first */
static void
reserve_lease(void)
{
	if (nleases == maxleases)
	{
		int			newmax = maxleases ? maxleases * 2 : 8;

		leases = leases ?
			repalloc(leases, sizeof(Lease) * newmax) :
			MemoryContextAlloc(TopMemoryContext, sizeof(Lease) * newmax);
		maxleases = newmax;
	}
}

/* Record the lease just granted (its entry reserved) */
static void
add_lease(const char *name, bool xact, int local)
{
	Lease	   *l = &leases[nleases++];

	memset(l, 0, sizeof(*l));
	l->local = local;
	zksync_local_set(local, ZKLOCAL_HELD, lease_pn.czxid);
	strlcpy(l->name, name, sizeof(l->name));
	strlcpy(l->node, lease_pn.node, sizeof(l->node));
	l->xact = xact;
	l->level = xact ? GetCurrentTransactionNestLevel() : 0;
	l->watch = zk_held_watch(l->node);
}

/*
 * Every zksync caller of one semaphore must state the same count: ERROR
 * if the count recorded in its node is another.  Returns the recorded
 * count, 0 if none.
 */
static int
check_recorded_count(const char *dir, const char *name, int max_leases)
{
	int			recorded = recorded_count(dir);

	if (recorded > 0 && recorded != max_leases)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("zksync semaphore \"%s\" is in use with max_leases %d, not %d",
						name, recorded, max_leases),
				 errhint("Every zksync caller of one semaphore must state the same count.")));
	return recorded;
}

/*
 * Record the count before our lease exists, so that whoever reads the
 * leases (zksync_waits, the deadlock scan) knows which are granted.  Best
 * effort: not awaited; it goes ahead of our create on the session.
 */
static void
record_count(const char *dir, int max_leases)
{
	int			len;
	char	   *count = count_data(max_leases, &len);

	zk_req_free(zk_set(dir, count, len));
}

/*
 * Curator's protocol: take the mutex, make our lease node, wait until it
 * counts among the first max_leases.  True with the lease (the mutex still
 * ours, *mutex_owned set); false at `deadline`.  May throw: the caller
 * removes what was made (abandon_acquisition).
 */
static bool
take_lease(const char *dir, const char *name, int max_leases, int recorded,
		   TimestampTz deadline, volatile bool *mutex_owned)
{
	char	   *locks_dir = psprintf("%s/locks", dir);
	char	   *leases_dir = psprintf("%s/leases", dir);
	char	   *data;
	int			datalen;
	ZkReq	   *listing;

	data = zksync_owner_data(NULL, &datalen);
	*mutex_owned = zk_queue_wait(&mutex_pn, locks_dir, ZKSYNC_TAG_MUTEX,
								 data, datalen, &mutex_driver, deadline,
								 name);
	if (!*mutex_owned)
		return false;
	if (recorded == 0)
		record_count(dir, max_leases);
	zk_protected_create(&lease_pn, leases_dir, ZKSYNC_TAG_LEASE,
						data, datalen, &listing);
	return await_lease_grant(leases_dir, max_leases, deadline, name, listing);
}

/*
 * The lease is ours: the wait is over, the next acquirer may take the
 * mutex, and the lease is recorded (its entry reserved).
 */
static void
keep_lease(const char *name, bool xact, int local)
{
	zksync_wait_watch_end(true);
	lease_pn.active = false;
	zk_release_node(mutex_pn.node, 0, true);
	add_lease(name, xact, local);
	zksync_stat_count(ZKSTAT_ACQUIRED, 1);
}

/*
 * Acquire one more lease of semaphore `name` (at most `max_leases` at
 * once), at session or transaction level, waiting up to `timeout_ms`
 * (negative: no limit).  True with the lease; false on timeout, with
 * nothing left behind.  lock_timeout applies too (SQLSTATE 55P03).
 */
bool
zksync_semaphore_acquire(const char *name, int max_leases, bool xact,
						 int timeout_ms)
{
	char	   *dir = zksync_recipe_dir(ZKSYNC_SEMAPHORES, name);
	TimestampTz deadline;
	TimestampTz lock_deadline;
	volatile bool mutex_owned = false;
	volatile bool granted = false;
	volatile int local = ZKLOCAL_NONE;
	int			recorded;

	zk_notice_session_end();
	/* the lease counts (its mutex node lasts only while we acquire) */
	zk_queue_check_max_holds(ZKQ_SEMAPHORE, name, 1);
	reserve_lease();
	zk_connect();
	recorded = check_recorded_count(dir, name, max_leases);
	deadline = zk_queue_deadline(timeout_ms, &lock_deadline);

	memset(&lease_pn, 0, sizeof(lease_pn));
	local = zksync_local_add(ZKLOCAL_SEMAPHORE, name, "lease", ZKLOCAL_WAITING);
	PG_TRY();
	{
		granted = take_lease(dir, name, max_leases, recorded, deadline,
							 &mutex_owned);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		zksync_wait_watch_fail();
		zksync_local_remove(local);
		abandon_acquisition(mutex_owned);
		zk_await_releases(ZKSYNC_ABANDON_WAIT_MS, true);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!granted)
	{
		zksync_local_remove(local);
		abandon_acquisition(mutex_owned);
		zk_await_releases(ZKSYNC_RELEASE_WAIT_MS, false);
		zk_queue_check_lock_timeout(lock_deadline, ZKQ_SEMAPHORE, name);
		return false;
	}
	keep_lease(name, xact, local);
	return true;
}

/* Forget lease i and release its node (the caller waits for it) */
static void
drop_lease(int i)
{
	zk_held_drop(leases[i].watch);
	if (!leases[i].lost)
	{
		zk_release_node(leases[i].node, 0, true);
		zksync_local_releasing(leases[i].local);
	}
	else
		zksync_local_remove(leases[i].local);
	memmove(&leases[i], &leases[i + 1], sizeof(Lease) * (nleases - i - 1));
	nleases--;
}

/*
 * With zksync.synchronous_release on, wait until ZooKeeper has applied the
 * releases just sent (at most ZKSYNC_RELEASE_WAIT_MS, not at all while
 * disconnected).  Without `nothrow`, an interrupt ends the wait with an
 * ERROR; the releases go on.
 */
static void
await_synchronous_releases(bool nothrow)
{
	if (zksync_synchronous_release)
		zk_await_releases(ZKSYNC_RELEASE_WAIT_MS, nothrow);
	zksync_local_released();
}

/*
 * Release one session lease of `name` (the newest).  False with a WARNING
 * if this backend holds none; a lost one is dropped and reported with an
 * ERROR.  Needs no connection; with zksync.synchronous_release on, it
 * returns once ZooKeeper applied the delete (as a lock's unlock does).
 */
bool
zksync_semaphore_release(const char *name)
{
	int			i;

	zk_notice_session_end();
	for (i = nleases - 1; i >= 0; i--)
		if (!leases[i].xact && strcmp(leases[i].name, name) == 0)
			break;
	if (i < 0)
	{
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("you don't own a lease of zksync semaphore \"%s\"", name)));
		return false;
	}
	if (leases[i].lost && leases[i].node_deleted)
	{
		drop_lease(i);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("a lease of zksync semaphore \"%s\" was lost", name),
				 errdetail("Another client deleted its node while this backend held the lease; another client may have taken the lease.")));
	}
	if (leases[i].lost)
	{
		drop_lease(i);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("a lease of zksync semaphore \"%s\" was lost", name),
				 errdetail("Its ZooKeeper session expired, or could not be confirmed alive and was closed; another client may have taken the lease.")));
	}
	drop_lease(i);
	await_synchronous_releases(false);
	return true;
}

/* ---- transaction scope (xact.c) and the session's end (session.c) ---- */

/*
 * COMMIT, PREPARE: refuse a transaction that relied on a lost lease, as
 * the lock's check does (locktable.c); the server confirms the leases held
 * first when the transaction relied on them (xact.c).
 */
static void
check_commit(void)
{
	ZkHeld	  **watches;
	int			nheld = 0;
	bool		xact = false;
	int			i;

	zk_notice_session_end();	/* an expiry or a deleted node already known */
	watches = palloc(sizeof(ZkHeld *) * (nleases + 1));
	for (i = 0; i < nleases; i++)
	{
		if (!leases[i].lost)
			watches[nheld++] = leases[i].watch;
		xact |= leases[i].xact;
	}
	if (zksync_commit_must_confirm(nheld > 0, xact))
		zksync_confirm_held_nodes(watches, nheld);
	pfree(watches);

	for (i = 0; i < nleases; i++)
		if (leases[i].lost && leases[i].node_deleted &&
			zksync_lost_during_xact(leases[i].xact, leases[i].lost_lxid))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("cannot commit: a lease of zksync semaphore \"%s\" was lost during the transaction",
							leases[i].name),
					 errdetail("Another client deleted the lease's node while this backend held it; another client may have taken the lease."),
					 errhint("The transaction is rolled back.")));
	for (i = 0; i < nleases; i++)
		if (leases[i].lost &&
			zksync_lost_during_xact(leases[i].xact, leases[i].lost_lxid))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("cannot commit: a lease of zksync semaphore \"%s\" was lost during the transaction",
							leases[i].name),
					 errdetail("The ZooKeeper session that held it expired or could not be confirmed alive; another client may have taken the lease."),
					 errhint("The transaction is rolled back.")));
}

static bool
has_xact_leases(void)
{
	int			i;

	for (i = 0; i < nleases; i++)
		if (leases[i].xact)
			return true;
	return false;
}

/* Transaction end (level 1) or ROLLBACK TO (deeper): never throws */
static void
end_xact_level(int level)
{
	int			i;
	bool		released = false;

	for (i = nleases - 1; i >= 0; i--)
		if (leases[i].xact && leases[i].level >= level)
		{
			released = true;
			drop_lease(i);
		}
	if (released)
		await_synchronous_releases(true);
}

/* RELEASE SAVEPOINT: the leases pass to the parent */
static void
pass_up(int level)
{
	int			i;

	for (i = 0; i < nleases; i++)
		if (leases[i].xact && leases[i].level >= level)
			leases[i].level = level - 1;
}

/* DISCARD ALL: every session lease ends; never throws */
static void
end_session_leases(void)
{
	int			i;
	bool		released = false;

	zk_notice_session_end();
	for (i = nleases - 1; i >= 0; i--)
		if (!leases[i].xact)
		{
			if (leases[i].lost)
				ereport(WARNING,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("a lease of zksync semaphore \"%s\" had been lost",
								leases[i].name),
						 errdetail("It was lost with its ZooKeeper session, or another client deleted its node.")));
			released = true;
			drop_lease(i);
		}
	if (released)
		await_synchronous_releases(true);
}

/* zksync_unlock_all() ends session leases too, as DISCARD ALL does */
void
zksync_semaphore_release_all(void)
{
	end_session_leases();
}

static int
lease_nodes(void)
{
	int			i,
				n = 0;

	for (i = 0; i < nleases; i++)
		n += !leases[i].lost;
	return n;
}

/* A lease is lost: never counted as held again */
static void
mark_lost(Lease *l, bool node_deleted)
{
	l->lost = true;
	l->node_deleted = node_deleted;
	zksync_local_set(l->local, ZKLOCAL_LOST, 0);
	zksync_stat_count(ZKSTAT_LOST, 1);
	l->lost_lxid = zksync_current_lxid();
	zk_held_drop(l->watch);
	l->watch = NULL;
}

/* The session ended: every lease is gone with it */
static void
lease_forget_session(void)
{
	int			i;

	for (i = 0; i < nleases; i++)
		if (!leases[i].lost)
			mark_lost(&leases[i], false);
}

/*
 * Some held nodes were found gone: a lease whose node another client
 * deleted is lost, as after an expiry.  Never throws (WARNINGs only).
 */
static void
lost_nodes(void)
{
	int			i;

	for (i = 0; i < nleases; i++)
		if (!leases[i].lost && zk_held_gone(leases[i].watch))
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("a lease of zksync semaphore \"%s\" is lost",
							leases[i].name),
					 errdetail("Another client deleted node \"%s\" while this backend held the lease; another client may hold it now.",
							   leases[i].node),
					 errhint("A transaction that relied on the lease cannot commit. Release it with zksync_semaphore_release() or by ending the transaction.")));
			mark_lost(&leases[i], true);
		}
}

static const ZkScopeHooks semaphore_scope = {
	check_commit,
	has_xact_leases,
	end_xact_level,
	pass_up,
	end_session_leases
};

/* From _PG_init */
void
zksync_semaphore_init(void)
{
	zk_register_session_user(lease_nodes, lease_forget_session, lost_nodes);
	zksync_register_scope(&semaphore_scope);
	zksync_register_queue_kind(&semaphore_kind);
}

/* ---- introspection ---- */

/* This backend's leases, as zksync_locks() rows (mode "lease") */
int
zksync_semaphore_snapshot(ZkLockInfo **rows)
{
	int			i,
				n = 0;

	*rows = palloc0(sizeof(ZkLockInfo) * (nleases + 1));
	for (i = 0; i < nleases; i++)
	{
		ZkLockInfo *r = &(*rows)[n++];

		strlcpy(r->name, leases[i].name, sizeof(r->name));
		r->mode = "lease";
		r->session_count = leases[i].xact ? 0 : 1;
		r->xact_count = leases[i].xact ? 1 : 0;
		r->state = leases[i].lost ? "lost" : "held";
		strlcpy(r->node, leases[i].node, sizeof(r->node));
	}
	return n;
}

/*
 * Every client's leases and waiters of `name`: the lease nodes in
 * sequence order (the first max_leases are granted, those after them
 * wait, as Curator counts) and the mutex queue's contenders (the first
 * holds the mutex; the others wait to make a lease), each queue granted
 * by the rule of semaphore_kind, as in zksync_waits().  Rows as
 * zksync_semaphore_leases() returns them.
 */
int
zksync_semaphore_contenders(const char *name, ZkHolderInfo **rows)
{
	ZkWaitRow  *q[2];
	int			nq[2],
				n = 0,
				s,
				i;

	for (s = 0; s < 2; s++)
		nq[s] = zksync_read_queue(ZKSYNC_SEMAPHORES, s, name, &q[s]);
	*rows = palloc0(sizeof(ZkHolderInfo) * (nq[0] + nq[1] + 1));
	for (s = 0; s < 2; s++)
		for (i = 0; i < nq[s]; i++)
		{
			ZkWaitRow  *w = &q[s][i];
			const ZkContender *c = &w->contenders[w->index];
			ZkHolderInfo *r = &(*rows)[n++];

			r->node = psprintf("%s/%s", semaphore_kind.queues[s], c->name);
			r->sequence = c->seq;
			r->granted = w->granted;
			r->present = true;
			r->owner = zksync_owner_text(w->data, w->datalen);
		}
	return n;
}
