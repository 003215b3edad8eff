/*-------------------------------------------------------------------------
 * barrier.c
 *	  Barriers and double barriers (the seed's Barrier and DoubleBarrier).
 *
 * Barrier: {root}/barriers/{name}, a persistent node.  It outlives the
 * session that set it and anyone may remove it.  Set is a create (exactly
 * one of two racing setters gets true); wait watches the node and returns
 * once it is gone, so one unset wakes every waiter (that herd is the
 * point).  The node's data carries who set it and a GUID, so that a create
 * whose reply was lost can tell whether it was ours.
 *
 * Double barrier: ZooKeeper's recipe, under {root}/dbarriers/{name}/:
 *
 *	 _c_{guid}-__PART__{seq}	one ephemeral node per zksync participant;
 *								its data says how many participants were
 *								agreed on
 *	 ready						made by the participant that sees the count
 *								reached (ours is ephemeral)
 *	 anything else				another client's participant
 *
 * Every child but "ready" is a participant, as in the seed's Go library
 * (whose participants are named after an id its caller picks) and in
 * Apache Curator's DistributedDoubleBarrier (named after a UUID): so their
 * participants and ours enter and leave one barrier together.
 *
 *	 enter: create our node; watch "ready"; if it exists, or the count of
 *			participants has reached N, make "ready" and pass; else wait.
 *	 exit:	list the participants, sorted by name; none left: see below;
 *			only us: delete our node and "ready", done; we are the lowest:
 *			wait for the highest to go; else delete our node and wait for
 *			the lowest to go.  Look again after every wake-up.
 *
 * Both other libraries sort by name (byte order, which strcmp gives), and
 * everyone must agree on who is lowest, or two "lowest" participants would
 * wait for each other.  The last one out removes "ready": the Go library's
 * last participant fails if it finds "ready" already gone, so when we see
 * nobody left we give the last one a moment to do so, and remove "ready"
 * ourselves only if it stays (a last participant that disconnected).  Our
 * "ready" is ephemeral, so one left behind by a crash goes with its
 * session; the others' is persistent, and Curator's participants remove it
 * as they leave.
 *
 * A wait at a barrier, or to enter or leave a double barrier, goes through
 * the gates' watch (waits.h): it is published for zksync_waits() and
 * zksync_blocking() from its start and logged per log_lock_waits, and it
 * is in zksync_local_locks (a participant also while inside), like a
 * lock's wait.
 *
 * Participant nodes are ephemeral, so a backend that disconnects counts as
 * exited.  An enter that times out, or is interrupted, deletes its node
 * before returning (nodes.c's protected create finds it even if the
 * create's reply was lost).  An exit that times out or is interrupted also
 * deletes our node: the backend has left, it only did not see everyone
 * else leave.  The participant table is per backend and not transactional.
 * docs/recipes.md, "Barriers and double barriers", tells why.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "utils/timestamp.h"

#include "nls.h"
#include "session.h"
#include "releases.h"
#include "held.h"
#include "barrier.h"
#include "nodes.h"
#include "shared.h"
#include "waits.h"


typedef struct Participant
{
	char		dir[ZKSYNC_PATH_MAX];	/* key: {root}/dbarriers/{name} */
	char		node[ZKSYNC_PATH_MAX];
	int			participants;
	ZkHeld	   *watch;			/* our node's watch while inside */
	int			local;			/* its entry in zksync_local_locks */
} Participant;

static HTAB *entered = NULL;

/* the enter in progress, for its PG_CATCH */
static ZkProtected entering;
static int	entering_local = ZKLOCAL_NONE;

static TimestampTz
deadline_after(int timeout_ms)
{
	if (timeout_ms < 0)
		return 0;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
}

static char *
barrier_path(const char *name)
{
	return zksync_recipe_dir(ZKSYNC_BARRIERS, name);
}

/* ===================================================================
 * Barrier
 * ===================================================================
 */

/* Set the barrier; true if this call set it, false if it was already set. */
bool
zksync_barrier_set(const char *name)
{
	char	   *path = barrier_path(name);
	char		uuid[40];
	char		guid[64];
	char	   *data;
	int			len;
	int			attempts = 0;

	zk_connect();
	zksync_make_guid(uuid, sizeof(uuid));
	snprintf(guid, sizeof(guid), "\"guid\":\"%s\"", uuid);
	data = zksync_owner_data(guid, &len);

	for (;;)
	{
		bool		resent;
		ZkReq	   *c = zk_call_retrying(ZKOP_CREATE, path, data, len, 0, &resent);
		int			rc = zk_req_rc(c);

		zk_req_free(c);
		if (rc == ZOK)
			return true;
		if (rc == ZNODEEXISTS && !resent)
			return false;
		if (rc == ZNODEEXISTS)
		{
			/* after a lost reply: is the barrier there ours? */
			ZkReq	   *g = zk_call_retrying(ZKOP_GET, path, NULL, 0, 0, NULL);
			bool		ours;

			rc = zk_req_rc(g);
			ours = rc == ZOK && zk_req_data(g) && strstr(zk_req_data(g), guid) != NULL;
			zk_req_free(g);
			if (rc == ZOK)
				return ours;
			if (rc != ZNONODE)
				zk_report_error(rc, "get", path);
			continue;			/* gone meanwhile: set it again */
		}
		if (rc != ZNONODE || ++attempts > 10)
			zk_report_error(rc, "create", path);
		/* the barriers' directory is a container, gone while empty */
		rc = zk_ensure_parents(pnstrdup(path, strrchr(path, '/') - path));
		if (zk_is_connection_error(rc))
			zk_reconnect_or_error("create", path);
		else if (rc != ZOK)
			zk_report_error(rc, "create", path);
	}
}

/* Remove the barrier; true if this call removed it. */
bool
zksync_barrier_unset(const char *name)
{
	char	   *path = barrier_path(name);
	bool		resent;
	ZkReq	   *d;
	int			rc;

	zk_connect();
	d = zk_call_retrying(ZKOP_DELETE, path, NULL, 0, 0, &resent);
	rc = zk_req_rc(d);
	zk_req_free(d);
	if (rc == ZOK)
		return true;
	/* after a lost reply, the delete may have been ours */
	if (rc == ZNONODE)
		return resent;
	zk_report_error(rc, "delete", path);
}

/* What node_exists() leaves a watch for */
typedef enum NodeWatch
{
	NO_WATCH,
	WATCH_GONE,					/* the node going: a data watch, which is not
								 * left behind if the node is gone already */
	WATCH_MADE					/* the node being made: an exists watch */
} NodeWatch;

/*
 * exists, riding out connection loss; true if the node is there (and
 * *czxid its czxid, if czxid is not NULL)
 */
static bool
node_exists_czxid(const char *path, NodeWatch watch, int64 *czxid)
{
	ZkReq	   *e = zk_call_retrying(watch == WATCH_GONE ? ZKOP_GET_WATCH :
									 watch == WATCH_MADE ? ZKOP_EXISTS_WATCH :
									 ZKOP_EXISTS, path, NULL, 0, 0, NULL);
	int			rc = zk_req_rc(e);

	if (czxid)
		*czxid = rc == ZOK ? zk_req_czxid(e) : 0;
	zk_req_free(e);
	if (rc != ZOK && rc != ZNONODE)
		zk_report_error(rc, "exists", path);
	return rc == ZOK;
}

static bool
node_exists(const char *path, NodeWatch watch)
{
	return node_exists_czxid(path, watch, NULL);
}

bool
zksync_barrier_is_set(const char *name)
{
	zk_connect();
	return node_exists(barrier_path(name), NO_WATCH);
}

/*
 * The barrier's wait, once it is found set: published (waits.h), so that
 * the views and the log see it, and in zksync_local_locks.  True once the
 * barrier is gone, false at `deadline`.
 */
static bool
await_unset(const char *path, const char *name, TimestampTz deadline,
			volatile int *local)
{
	bool		watched = false;

	for (;;)
	{
		uint64		seen = zk_events_seen();
		int64		czxid;
		bool		gone;

		if (!node_exists_czxid(path, WATCH_GONE, &czxid))
			break;
		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
		{
			if (watched)
				zksync_wait_watch_end(false);
			return false;
		}
		if (!watched)
			*local = zksync_local_add(ZKLOCAL_BARRIER, name, "wait",
									  ZKLOCAL_WAITING);
		watched = true;
		zksync_gate_watch_begin(ZKG_BARRIER, name, path, czxid, 0);
		if (zksync_wait_watched(seen, NULL, deadline) == ZKW_TIMEOUT)
		{
			gone = !node_exists(path, NO_WATCH);
			zksync_wait_watch_end(gone);
			return gone;
		}
		if (!zk_session_usable())
			zk_connect();		/* the watch died with the session */
	}
	if (watched)
		zksync_wait_watch_end(true);
	return true;
}

/*
 * Wait until the barrier is not set: true at once if it is not, false if
 * `timeout_ms` (negative: no limit) runs out first.
 */
bool
zksync_barrier_wait(const char *name, int timeout_ms)
{
	char	   *path = barrier_path(name);
	TimestampTz deadline = deadline_after(timeout_ms);
	volatile int local = ZKLOCAL_NONE;
	bool		passed;

	zk_connect();
	PG_TRY();
	{
		passed = await_unset(path, name, deadline, &local);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		zksync_wait_watch_fail();
		zksync_local_remove(local);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();
	zksync_local_remove(local);
	if (passed)
		zksync_stat_count(ZKSTAT_ACQUIRED, 1);
	return passed;
}

/* ===================================================================
 * Double barrier
 * ===================================================================
 */

static void
init_entered(void)
{
	HASHCTL		ctl;

	if (entered)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = ZKSYNC_PATH_MAX;
	ctl.entrysize = sizeof(Participant);
	ctl.hcxt = TopMemoryContext;
	entered = hash_create("zksync double barriers", 16, &ctl,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* The participants agreed on by the first one in, or -1 if none is in. */
static int
agreed_participants(const char *dir, ZkReq *children)
{
	int			i;

	for (i = 0; i < zk_req_nchildren(children); i++)
	{
		char	   *path;
		ZkReq	   *g;
		int			n = -1;

		if (!zksync_dbarrier_is_participant(zk_req_children(children)[i]))
			continue;
		path = psprintf("%s/%s", dir, zk_req_children(children)[i]);
		g = zk_get(path, false);
		if (zk_call(g) == ZOK && zk_req_data(g))
		{
			int64		v;

			if (zksync_json_int(zk_req_data(g), zk_req_datalen(g),
								"participants", 1, PG_INT32_MAX, &v))
				n = (int) v;
		}
		zk_req_free(g);
		if (n > 0)
			return n;
	}
	return -1;
}

static int
count_participants(ZkReq *children)
{
	int			i,
				n = 0;

	for (i = 0; i < zk_req_nchildren(children); i++)
		if (zksync_dbarrier_is_participant(zk_req_children(children)[i]))
			n++;
	return n;
}

/* Create "ready" (someone else's is as good). */
static void
make_ready(const char *dir)
{
	char	   *path = psprintf("%s/%s", dir, ZKSYNC_READY_NODE);

	ZkReq	   *c = zk_call_retrying(ZKOP_CREATE, path, "", 0, ZOO_EPHEMERAL, NULL);
	int			rc = zk_req_rc(c);

	zk_req_free(c);
	if (rc != ZOK && rc != ZNODEEXISTS)
		zk_report_error(rc, "create", path);
}

/* ERROR if this backend is inside double barrier `name` (directory `dir`) */
static void
check_not_entered(const char *dir, const char *name)
{
	init_entered();
	if (hash_search(entered, dir, HASH_FIND, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this backend has already entered double barrier \"%s\"", name),
				 errhint("Call zksync_dbarrier_exit('%s') first.", name)));
}

/* ERROR if those inside agreed on another count of participants */
static void
check_agreed_count(const char *dir, const char *name, int participants)
{
	ZkReq	   *g = zk_children_retrying(dir);
	int			agreed = zk_req_rc(g) == ZOK ? agreed_participants(dir, g) : -1;

	zk_req_free(g);
	if (agreed > 0 && agreed != participants)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_plural("double barrier \"%s\" was entered with %d participant, not %d",
							   "double barrier \"%s\" was entered with %d participants, not %d",
							   agreed, name, agreed, participants)));
}

/*
 * With our node made: wait until "ready" exists, or until `participants`
 * are in (then make "ready").  True once passed; false at `deadline`.  A
 * wait is published (waits.h), for the views and the log; the caller ends
 * it.
 */
static bool
await_ready(const char *dir, const char *name, int participants,
			TimestampTz deadline)
{
	char	   *ready = psprintf("%s/%s", dir, ZKSYNC_READY_NODE);

	for (;;)
	{
		uint64		seen = zk_events_seen();
		ZkReq	   *g;
		bool		enough;

		if (node_exists(ready, WATCH_MADE))
			return true;
		g = zk_children_retrying(dir);
		enough = zk_req_rc(g) == ZOK && count_participants(g) >= participants;
		zk_req_free(g);
		if (enough)
		{
			make_ready(dir);
			return true;
		}
		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
			return false;
		zksync_gate_watch_begin(ZKG_DBARRIER_ENTER, name, entering.node,
								entering.czxid, participants);
		if (zksync_wait_watched(seen, NULL, deadline) == ZKW_TIMEOUT)
			continue;			/* look once more, then give up */
		if (!zk_session_usable())
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("ZooKeeper session expired while entering double barrier \"%s\"",
							name)));
	}
}

/* We are inside: remember our node, and watch it. */
static void
remember_entered(const char *dir, int participants)
{
	Participant *p;

	entering.active = false;
	p = (Participant *) hash_search(entered, dir, HASH_ENTER, NULL);
	strlcpy(p->node, entering.node, sizeof(p->node));
	p->participants = participants;
	p->watch = zk_held_watch(p->node);
	p->local = entering_local;
	entering_local = ZKLOCAL_NONE;
	zksync_local_set(p->local, ZKLOCAL_HELD, entering.czxid);
	zksync_stat_count(ZKSTAT_ACQUIRED, 1);
}

/*
 * Enter: true once `participants` have entered; false if `timeout_ms`
 * (negative: no limit) runs out first, having left again.
 */
bool
zksync_dbarrier_enter(const char *name, int participants, int timeout_ms)
{
	char	   *dir = zksync_recipe_dir(ZKSYNC_DBARRIERS, name);
	TimestampTz deadline = deadline_after(timeout_ms);
	char		extra[64];
	char	   *data;
	int			len;
	volatile bool passed = false;

	check_not_entered(dir, name);
	zk_connect();
	check_agreed_count(dir, name, participants);
	snprintf(extra, sizeof(extra), "\"participants\":%d", participants);
	data = zksync_owner_data(extra, &len);
	entering_local = zksync_local_add(ZKLOCAL_DBARRIER, name, "enter",
									  ZKLOCAL_WAITING);

	PG_TRY();
	{
		zk_protected_create(&entering, dir, ZKSYNC_TAG_PART, data, len, NULL);
		passed = await_ready(dir, name, participants, deadline);
		zksync_wait_watch_end(passed);
		if (!passed)
		{
			entering.active = false;
			zk_release_node(entering.node, ZKSYNC_RELEASE_WAIT_MS, false);
		}
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		zksync_wait_watch_fail();
		zksync_local_remove(entering_local);
		entering_local = ZKLOCAL_NONE;
		zk_protected_abandon(&entering, ZKSYNC_ABANDON_WAIT_MS);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!passed)
	{
		zksync_local_remove(entering_local);
		entering_local = ZKLOCAL_NONE;
		return false;
	}
	remember_entered(dir, participants);
	return true;
}

/*
 * Nobody is left in the barrier and we were not the last one out: let the
 * last one remove "ready" (the Go library's fails if it finds it gone);
 * remove it ourselves if it is still there after ZKSYNC_RELEASE_WAIT_MS,
 * as after a last participant that disconnected.  Throws only as a wait
 * does (an interrupt, a lost connection).
 */
static void
await_ready_gone(const char *dir)
{
	char	   *ready = psprintf("%s/%s", dir, ZKSYNC_READY_NODE);
	TimestampTz deadline = deadline_after(ZKSYNC_RELEASE_WAIT_MS);

	for (;;)
	{
		uint64		seen = zk_events_seen();

		if (!node_exists(ready, WATCH_GONE))
			return;
		if (GetCurrentTimestamp() >= deadline)
			break;
		zk_wait_event(seen, NULL, deadline, false);
	}
	zk_release_node(ready, ZKSYNC_RELEASE_WAIT_MS, false);
}

/*
 * The participants of `dir`, sorted by name (byte order, as the other
 * libraries sort): *n of them, *me_in if `mine` is among them.
 */
static char **
list_participants(const char *dir, const char *mine, int *n, bool *me_in)
{
	ZkReq	   *g = zk_children_retrying(dir);
	char	  **parts;
	int			i;

	*n = 0;
	*me_in = false;
	parts = palloc(sizeof(char *) * (zk_req_nchildren(g) + 1));
	for (i = 0; zk_req_rc(g) == ZOK && i < zk_req_nchildren(g); i++)
		if (zksync_dbarrier_is_participant(zk_req_children(g)[i]))
		{
			parts[*n] = pstrdup(zk_req_children(g)[i]);
			*me_in |= strcmp(parts[*n], mine) == 0;
			(*n)++;
		}
	zk_req_free(g);
	zksync_sort_by_name(parts, *n);
	return parts;
}

/*
 * One look at the barrier while leaving (our node is `node`, named
 * `mine`).  Nobody left but us: remove our node and "ready", and return
 * NULL (done).  Else return the node to wait for: the highest if we are
 * the lowest (our node stays), else the lowest (our node goes first).
 */
static char *
leave_step(const char *dir, const char *node, const char *mine)
{
	int			n;
	bool		me_in;
	char	  **parts = list_participants(dir, mine, &n, &me_in);

	if (n == 0 || (n == 1 && me_in))
	{
		/* the last one out leaves nothing behind */
		zk_release_node(node, ZKSYNC_RELEASE_WAIT_MS, false);
		if (n == 0)
			await_ready_gone(dir);
		else
			zk_release_node(psprintf("%s/%s", dir, ZKSYNC_READY_NODE),
							ZKSYNC_RELEASE_WAIT_MS, false);
		return NULL;
	}
	if (me_in && strcmp(parts[0], mine) == 0)
		return zksync_child_path(dir, parts[n - 1]);
	if (me_in)
		zk_release_node(node, ZKSYNC_RELEASE_WAIT_MS, false);
	return zksync_child_path(dir, parts[0]);
}

/*
 * Leave, looking again after every wake-up, until everyone is out (true)
 * or `deadline` passes (false).
 */
static bool
await_all_out(const char *dir, const char *node, const char *name,
			  TimestampTz deadline)
{
	const char *mine = strrchr(node, '/') + 1;

	for (;;)
	{
		char	   *watch = leave_step(dir, node, mine);
		uint64		seen;

		if (watch == NULL)
			return true;
		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
			return false;
		seen = zk_events_seen();
		if (!node_exists(watch, WATCH_GONE))
			continue;
		zksync_gate_watch_begin(ZKG_DBARRIER_EXIT, name, node, 0, 0);
		zksync_wait_watched(seen, NULL, deadline);
		if (!zk_session_usable())
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("ZooKeeper session expired while leaving double barrier \"%s\"",
							name)));
	}
}

/*
 * Exit: true once every participant has exited or disconnected; false if
 * `timeout_ms` (negative: no limit) runs out first.  Either way this
 * backend has left the barrier when it returns.
 */
bool
zksync_dbarrier_exit(const char *name, int timeout_ms)
{
	char	   *dir = zksync_recipe_dir(ZKSYNC_DBARRIERS, name);
	TimestampTz deadline = deadline_after(timeout_ms);
	Participant *p;
	char		node[ZKSYNC_PATH_MAX];
	int			local;
	volatile bool done = false;

	init_entered();
	p = (Participant *) hash_search(entered, dir, HASH_FIND, NULL);
	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this backend has not entered double barrier \"%s\"", name)));
	strlcpy(node, p->node, sizeof(node));
	local = p->local;
	zk_connect();
	/* leaving: our own delete of the node is not a loss */
	zk_held_drop(p->watch);
	p->watch = NULL;
	zksync_local_set_mode(local, "exit", ZKLOCAL_WAITING);

	PG_TRY();
	{
		done = await_all_out(dir, node, name, deadline);
		zksync_wait_watch_end(done);
		if (!done)
			zk_release_node(node, ZKSYNC_RELEASE_WAIT_MS, false);
	}
	PG_CATCH();
	{
		/* interrupted: we have left all the same */
		HOLD_INTERRUPTS();
		zksync_wait_watch_fail();
		zk_release_node(node, ZKSYNC_ABANDON_WAIT_MS, true);
		zksync_local_remove(local);
		hash_search(entered, dir, HASH_REMOVE, NULL);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();

	zksync_local_remove(local);
	hash_search(entered, dir, HASH_REMOVE, NULL);
	return done;
}

/* The participant nodes we keep on the session */
static int
dbarrier_nodes(void)
{
	return entered ? hash_get_num_entries(entered) : 0;
}

/* The session ended: our participant nodes are gone with it. */
static void
dbarrier_forget_session(void)
{
	HASH_SEQ_STATUS seq;
	Participant *p;

	if (entered == NULL)
		return;
	hash_seq_init(&seq, entered);
	while ((p = hash_seq_search(&seq)) != NULL)
	{
		zk_held_drop(p->watch);
		zksync_local_remove(p->local);
		hash_search(entered, p->dir, HASH_REMOVE, NULL);
	}
}

/*
 * Some held nodes were found gone: a participant node of ours that another
 * client deleted means this backend is no longer counted in that barrier.
 * Say so; zksync_dbarrier_exit() then only waits for the others.  Never
 * throws (WARNINGs only).
 */
static void
dbarrier_lost_nodes(void)
{
	HASH_SEQ_STATUS seq;
	Participant *p;

	if (entered == NULL)
		return;
	hash_seq_init(&seq, entered);
	while ((p = hash_seq_search(&seq)) != NULL)
		if (zk_held_gone(p->watch))
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("this backend's place in double barrier \"%s\" is lost",
							strrchr(p->dir, '/') + 1),
					 errdetail("Another client deleted node \"%s\" while this backend was inside the barrier; the others no longer count it.",
							   p->node)));
			zk_held_drop(p->watch);
			p->watch = NULL;
			zksync_local_set(p->local, ZKLOCAL_LOST, 0);
			zksync_stat_count(ZKSTAT_LOST, 1);
		}
}

/* From _PG_init: hear of the session's end (session.c calls no recipe). */
void
zksync_barrier_init(void)
{
	zk_register_session_user(dbarrier_nodes, dbarrier_forget_session,
							 dbarrier_lost_nodes);
}
