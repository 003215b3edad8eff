/*-------------------------------------------------------------------------
 * held.c
 *	  Watches on the nodes this backend holds (zk_held_*).
 *
 * Every node a recipe holds (a lock node, a lease, a double barrier's
 * participant) is watched from its grant on, so that a delete by another
 * client is noticed at once and the hold is lost, as after an expiry
 * (docs/transport.md, "Held nodes are watched").  Where the listing sent
 * behind our create carries a watch on the directory's children
 * (zk_get_children_watched) and nothing in the directory has changed
 * since, that watch is the held node's: the grant costs no request at
 * all.  Otherwise, and as soon as that child watch fires, the watch is set
 * by a getData sent and not waited for: its reply says whether the node is
 * still there and ours, and from then on the watch fires when it goes.
 * Nothing slips between: a delete before the getData makes it answer
 * ZNONODE.  A getData sets no watch on a node that is
 * gone, so nothing is left behind in the client (an exists would leave a
 * creation watch).  A change of the node's data consumes the watch: it is
 * set again.  A getData that failed on a connection error is sent again by
 * the watchdog once connected; the client re-registers the watches it
 * holds after a reconnect, and the server fires them for nodes deleted
 * meanwhile.
 *
 * A ZkHeld is shared with the client (it is the context of the
 * getData and of the watch), so it is freed only once both sides are done
 * with it: the backend has dropped it (zk_held_drop) and the client holds
 * no request or watch with it (`in_client` false), or the handle is
 * closed (the watchdog is joined then).  All of it is guarded by
 * shared_mu.  What can go wrong: a ZkHeld freed while the client still
 * holds it as a watch's context (a write into freed memory when the watch
 * fires); a PostgreSQL call in the client-thread functions grouped below.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nls.h"
#include "session.h"
#include "held.h"
#include "transport_int.h"

typedef enum ZkHeldState
{
	HELD_LISTING,				/* a listing's child watch: the listing is out */
	HELD_LISTED,				/* the listing was answered: its watch is set */
	HELD_ARMING,				/* the getData is in flight */
	HELD_RETRY,					/* it failed on a connection error */
	HELD_ARMED,					/* present and ours, watched */
	HELD_GONE					/* deleted, or not ours */
} ZkHeldState;

struct ZkHeld
{
	char	   *path;			/* the node (NULL for a listing's, until
								 * taken) */
	char	   *dir;			/* a listing's: the directory listed */
	int64		session;		/* the session that owns the node */
	ZkHeldState state;
	bool		in_client;		/* a getData or a watch refers to it */
	bool		dropped;		/* no recipe holds it (a listing's: not yet) */
	bool		by_listing;		/* the watch in the client is the listing's */
	int64		sent_at_us;		/* when the getData was sent */
	struct ZkHeld *prev;
	struct ZkHeld *next;
};
static ZkHeld helds = {.prev = &helds,.next = &helds};	/* list head */

/*
 * The child watches of listings sent behind our creates that no recipe
 * has taken yet (HELD_LISTING, HELD_LISTED), oldest first; the first
 * HELD_LISTED one of a directory is taken by the next hold there.
 */
static ZkHeld listings = {.prev = &listings,.next = &listings};

static void list_append_locked(ZkHeld *head, ZkHeld *h);

/* how many held nodes were found gone (the backend compares) */
static uint64 helds_gone = 0;

/* the backend waits for a held node's getData (zk_held_confirm) */
static bool held_awaited = false;

/* ===================================================================
 * Client thread side.  Nothing here may call a PostgreSQL function.
 * ===================================================================
 */

/* shared_mu held: unlink and free a held node that both sides are done with */
static void
held_free_locked(ZkHeld *h)
{
	h->prev->next = h->next;
	h->next->prev = h->prev;
	free(h->path);
	free(h->dir);
	free(h);
}

/* shared_mu held: link `h` at the end of the list `head` */
static void
list_append_locked(ZkHeld *head, ZkHeld *h)
{
	h->next = head;
	h->prev = head->prev;
	head->prev->next = h;
	head->prev = h;
}

/* shared_mu held: the held node is gone (or not ours); tell the backend */
static void
held_gone_locked(ZkHeld *h)
{
	if (h->state != HELD_GONE && !h->dropped)
		helds_gone++;
	h->state = HELD_GONE;
}

static void held_watcher(zhandle_t *h, int type, int state, const char *path,
						 void *ctx);
static ZkHeld *take_listing_watch(const char *path);
static void held_get_done(int rc, const char *value, int value_len,
						  const struct Stat *stat, const void *data);

/* client thread (or watchdog, or backend): send a held node's getData, which sets its watch */
void
held_send(zhandle_t *handle, ZkHeld *h)
{
	if (CLIENT_SEND(zoo_awget(handle, h->path, held_watcher, h, held_get_done, h)) != ZOK)
		held_get_done(ZCONNECTIONLOSS, NULL, 0, NULL, h);
}

/*
 * client thread: a held node's getData is answered.  Present and ours: the
 * watch is set (the client keeps `h` as its context).  Gone, or made by
 * another session: lost.  A connection error: the watchdog sends it again
 * once connected.  The session's end is the session's business: the
 * recipes hear of it from zk_notice_session_end().
 */
static void
held_get_done(int rc, const char *value, int value_len,
			  const struct Stat *stat, const void *data)
{
	ZkHeld	   *h = (ZkHeld *) data;
	bool		wake = false;

	pthread_mutex_lock(&shared_mu);
	note_answer_locked(rc, h->sent_at_us);
	if (rc == ZOK && stat && stat->ephemeralOwner == h->session)
	{
		if (h->state != HELD_GONE)
			h->state = HELD_ARMED;
		wake = held_awaited;
	}
	else if (rc == ZOK)
	{
		/* the watch is set on a node that is not ours: stays in_client */
		held_gone_locked(h);
		wake = true;
	}
	else
	{
		h->in_client = false;	/* no watch was set */
		if (rc == ZNONODE)
		{
			held_gone_locked(h);
			wake = true;
		}
		else if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT)
		{
			if (h->state != HELD_GONE)
				h->state = HELD_RETRY;
			kick_watchdog_locked();
		}
		if (h->dropped)
			held_free_locked(h);
	}
	pthread_mutex_unlock(&shared_mu);
	if (wake)
		wake_backend();
}

/*
 * client thread: a held node's watch fired.  Deleted: lost (or, if the
 * backend dropped it first, our own release).  Its data changed: the watch
 * is used up, so set it again.  Session events also reach every watch;
 * they change nothing here.
 */
static void
held_watcher(zhandle_t *handle, int type, int state, const char *path,
			 void *ctx)
{
	ZkHeld	   *h = (ZkHeld *) ctx;
	bool		wake = false;
	bool		again;
	bool		listing;

	if (type == ZOO_SESSION_EVENT)
		return;
	pthread_mutex_lock(&shared_mu);

	/*
	 * A listing's watch: the directory changed (a contender came or went, or
	 * our node was deleted), so from now on watch the node itself, and its
	 * getData tells whether it is still there and ours; one that no hold took
	 * is simply done.  A node's watch: a change of its data used the watch
	 * up, so set it again.  Either way the watch is spent.
	 */
	listing = h->by_listing;
	h->by_listing = false;
	again = !h->dropped &&
		(listing ? h->state == HELD_ARMED :
		 type == ZOO_CHANGED_EVENT && h->state != HELD_GONE);
	if (again)
	{
		h->sent_at_us = mono_us();
		h->state = HELD_ARMING;
		wake_watchdog_locked(); /* it watches the getData */
	}
	else
	{
		h->in_client = false;
		if (h->dropped)
			held_free_locked(h);
		else if (type == ZOO_DELETED_EVENT)
		{
			held_gone_locked(h);
			wake = true;
		}
		else if (h->state != HELD_GONE)
		{
			/* the watch went some other way: set it again */
			h->state = HELD_RETRY;
			kick_watchdog_locked();
		}
	}
	pthread_mutex_unlock(&shared_mu);
	if (again)
		held_send(handle, h);
	if (wake)
		wake_backend();
}

/*
 * shared_mu held: how long the watchdog may sleep (at most `sleep_us`): a
 * tick while a getData waits to be sent again, else until the oldest one
 * in flight may be overdue.
 */
int64
next_held_due_us_locked(int64 now, int64 sleep_us)
{
	ZkHeld	   *held;

	for (held = helds.next; held != &helds; held = held->next)
	{
		if (held->state == HELD_RETRY && !held->dropped)
			sleep_us = Min(sleep_us, ZK_TICK_MS * 1000L);
		else if (held->state == HELD_ARMING && held->in_client)
			sleep_us = Min(sleep_us, ZK_OVERDUE_DUE_US(held->sent_at_us, now));
	}
	return sleep_us;
}

/* shared_mu held: is a held node's getData unanswered for too long? */
bool
held_overdue_locked(int64 now)
{
	ZkHeld	   *held;

	for (held = helds.next; held != &helds; held = held->next)
		if (held->state == HELD_ARMING && held->in_client &&
			now - held->sent_at_us > ZK_OVERDUE_US)
			return true;
	return false;
}

/*
 * shared_mu held, while connected: mark up to `max` held nodes whose
 * getData failed on a connection error as being armed again, into out;
 * returns how many.  A held node in the client's hands is not freed, so
 * they stay valid until sent.
 */
int
pick_held_to_arm_locked(ZkHeld **out, int max, int64 now)
{
	ZkHeld	   *held;
	int			n = 0;

	for (held = helds.next; held != &helds && n < max; held = held->next)
		if (held->state == HELD_RETRY && !held->in_client && !held->dropped)
		{
			held->state = HELD_ARMING;
			held->in_client = true;
			held->sent_at_us = now;
			out[n++] = held;
		}
	return n;
}

/*
 * shared_mu held, the handle closed: the client runs nothing more, so
 * nothing refers to a held node now.
 */
void
forget_held_in_client_locked(void)
{
	ZkHeld	   *held,
			   *next;

	for (held = helds.next; held != &helds; held = next)
	{
		next = held->next;
		held->in_client = false;
		if (held->dropped)
			held_free_locked(held);
	}
	for (held = listings.next; held != &listings; held = next)
	{
		next = held->next;
		held_free_locked(held); /* none is taken: all are dropped */
	}
}

/* ===================================================================
 * Backend side.
 * ===================================================================
 */

/* How many held nodes were found gone so far (the recipes compare) */
uint64
helds_gone_count(void)
{
	uint64		gone;

	pthread_mutex_lock(&shared_mu);
	gone = helds_gone;
	pthread_mutex_unlock(&shared_mu);
	return gone;
}

/*
 * client thread, shared_mu held: the listing that carries a child watch
 * is answered.  Answered: its watch is set.  Failed: no watch was set, and
 * no hold has taken it, so it goes.
 */
static void
listing_answered_locked(ZkReq *req, int rc, void *ctx)
{
	ZkHeld	   *h = (ZkHeld *) ctx;

	if (rc == ZOK)
		h->state = HELD_LISTED;
	else
	{
		h->in_client = false;
		held_free_locked(h);
	}
}

/*
 * The children of `dir`, listed behind our create of a node there, with a
 * watch on them that the node's hold can take (zk_held_watch) if no child
 * of `dir` changes before the grant: the listing includes our node, so
 * from its answer on, a delete of our node fires that watch.  Without a
 * session's id or memory for the watch, a plain listing.
 */
ZkReq *
zk_get_children_watched(const char *dir)
{
	ZkHeld	   *h;

	if (zh == NULL || zk_session_id() == 0)
		return zk_get_children(dir);
	h = calloc(1, sizeof(ZkHeld));
	if (h != NULL && (h->dir = strdup(dir)) == NULL)
	{
		free(h);
		h = NULL;
	}
	if (h == NULL)
		return zk_get_children(dir);
	h->session = zk_session_id();
	h->state = HELD_LISTING;
	h->in_client = true;
	h->dropped = true;
	h->by_listing = true;
	pthread_mutex_lock(&shared_mu);
	list_append_locked(&listings, h);
	pthread_mutex_unlock(&shared_mu);
	return get_children_then(dir, held_watcher, h, listing_answered_locked, h);
}

/*
 * The child watch of a listing of the directory of `path` (our node, just
 * granted) that nothing has fired since its answer, taken for `path`'s
 * hold: armed at once.  NULL if there is none.  Any such watch will do:
 * it was set after our create (the create's own change would have fired
 * it otherwise, and the client runs that event before the create's
 * answer, which the caller has seen).
 */
static ZkHeld *
take_listing_watch(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t		dirlen = slash ? (size_t) (slash - path) : 0;
	int64		session = zk_session_id();
	char	   *copy;
	ZkHeld	   *h;

	if (slash == NULL)
		return NULL;
	copy = strdup(path);
	if (copy == NULL)
		return NULL;
	pthread_mutex_lock(&shared_mu);
	/* a listing's watch that fired or failed is freed at once: not here */
	for (h = listings.next; h != &listings; h = h->next)
		if (h->state == HELD_LISTED && h->session == session &&
			strncmp(h->dir, path, dirlen) == 0 && h->dir[dirlen] == '\0')
			break;
	if (h != &listings)
	{
		h->prev->next = h->next;
		h->next->prev = h->prev;
		list_append_locked(&helds, h);
		h->path = copy;
		h->dropped = false;
		h->state = HELD_ARMED;
		copy = NULL;
	}
	else
		h = NULL;
	pthread_mutex_unlock(&shared_mu);
	free(copy);
	return h;
}

/*
 * Watch `path`, a node of this session that a recipe holds from now on,
 * until zk_held_drop().  Sends the getData that sets the watch and does
 * not wait for it.  NULL without a session (the recipes hear of its end),
 * or when out of memory: then the session is closed, so that the hold is
 * lost rather than unwatched.  Never throws (WARNING only).
 */
ZkHeld *
zk_held_watch(const char *path)
{
	ZkHeld	   *h;

	if (zh == NULL || handle_is_dead())
		return NULL;
	h = take_listing_watch(path);
	if (h != NULL)
		return h;
	h = calloc(1, sizeof(ZkHeld));
	if (h != NULL && (h->path = strdup(path)) == NULL)
	{
		free(h);
		h = NULL;
	}
	if (h == NULL)
	{
		ereport(WARNING,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while watching ZooKeeper node \"%s\"", path),
				 errdetail("The session is closed so that its nodes go with it; every zksync lock this backend held is lost.")));
		close_for_cause();
		return NULL;
	}
	h->session = zk_session_id();
	h->state = HELD_ARMING;
	h->in_client = true;
	h->sent_at_us = mono_us();
	pthread_mutex_lock(&shared_mu);
	list_append_locked(&helds, h);
	wake_watchdog_locked();		/* it watches the getData */
	pthread_mutex_unlock(&shared_mu);
	held_send(zh, h);
	return h;
}

/*
 * Stop caring about a held node: before our own delete of it, or when its
 * hold ends otherwise.  NULL is allowed.  Never throws.
 */
void
zk_held_drop(ZkHeld *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&shared_mu);
	if (h->in_client)
		h->dropped = true;
	else
		held_free_locked(h);
	pthread_mutex_unlock(&shared_mu);
}

/* Was the held node deleted, or found not ours?  NULL: no. */
bool
zk_held_gone(const ZkHeld *h)
{
	bool		gone;

	if (h == NULL)
		return false;
	pthread_mutex_lock(&shared_mu);
	gone = h->state == HELD_GONE;
	pthread_mutex_unlock(&shared_mu);
	return gone;
}

/*
 * For the commit check: bring what the client knows of our held nodes up
 * to date.  A sync makes our server catch up with the leader, and the
 * server sends a watch event before the answer to any later request, so
 * once the sync is answered every delete of a held node that any client
 * had completed before now has reached zk_held_gone(); and the answer
 * proves the session alive.  Rides out connection loss.  False if the
 * session is gone or nothing could be confirmed within `timeout_ms` (the
 * caller then treats its holds as lost).  May throw on interrupts.
 */
bool
zk_sync_held(int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);

	for (;;)
	{
		ZkReq	   *r;
		int			rc;

		if (zh == NULL || handle_is_dead())
			return false;
		if (!handle_is_connected())
		{
			long		left = (long) ((deadline - GetCurrentTimestamp()) / 1000);

			if (left <= 0 || await_connected((int) left, false) != ZOK)
				return false;
			continue;
		}
		r = zk_sync("/");
		if (zk_wait(r, deadline, false) != ZKW_DONE)
		{
			zk_req_free(r);
			return false;
		}
		rc = zk_req_rc(r);
		zk_req_free(r);
		if (rc == ZOK)
			return true;
		if (!zk_is_connection_error(rc))
			return false;
	}
}

/*
 * For the commit check: is the held node present, ours and watched?
 * Waits, at most `timeout_ms`, for its getData's answer if that is still
 * outstanding.  False if it is gone, if there is no session, or if nothing
 * could be learnt in time (the caller then treats the hold as lost).  May
 * throw on interrupts.
 */
bool
zk_held_confirm(const ZkHeld *h, int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);
	bool		armed = false;

	for (;;)
	{
		ZkHeldState state;

		if (h == NULL || zh == NULL || handle_is_dead())
			break;
		pthread_mutex_lock(&shared_mu);
		state = h->state;
		held_awaited = state == HELD_ARMING || state == HELD_RETRY;
		pthread_mutex_unlock(&shared_mu);
		if (state == HELD_ARMED)
			armed = true;
		if (state == HELD_ARMED || state == HELD_GONE ||
			!sleep_once(deadline, false))
			break;
	}
	pthread_mutex_lock(&shared_mu);
	held_awaited = false;
	pthread_mutex_unlock(&shared_mu);
	return armed;
}
