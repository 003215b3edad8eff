/*-------------------------------------------------------------------------
 * releases.c
 *	  The release queue: deletes of our nodes that must happen whatever
 *	  the backend does next, and hunts for creates abandoned mid-flight.
 *
 * Releases.  A release (zk_release_node) is queued before it is sent and
 * stays queued until the server has applied it or the session has ended:
 * one that fails on a connection error, or is made while disconnected, is
 * sent again by the watchdog once the client has reconnected, also while
 * the backend sits idle.  The caller may wait for it
 * (zksync.synchronous_release), at most a bound, and not while
 * disconnected or once the server has gone silent.
 *
 * Hold-back and batching.  A backend that locks again right after a
 * release holds the delete back for ZK_RELEASE_HOLD_US, so that it travels
 * with the next create in one multi (one fsync in the server for both);
 * the watchdog sends it when the time is up.  Releases made between
 * zk_release_batch_begin() and _end() go out together in one multi (a
 * transaction that held many locks ends in one round trip).
 *
 * Hunts.  A create whose outcome is unknown when its wait is interrupted
 * becomes a "hunt" (zk_abandon_create) that the client and the watchdog finish:
 * the node is deleted when the reply comes, or found by its GUID after a
 * sync and a listing once reconnected.  So an interrupted wait returns at
 * once, and nothing is left behind.
 *
 * What can go wrong: the server refuses a delete of ours (ZNOAUTH, a moved
 * session) or we run out of memory queueing one; the node would then stay
 * while the session lives, so the session is closed instead and the
 * recipes hear that their holds are lost (check_refused).  A release
 * freed while the client still holds it: only its completion frees it.
 * The queue lives in malloc'd memory under shared_mu; the client-thread
 * functions are grouped and marked below.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nls.h"
#include "layout.h"
#include "settings.h"
#include "releases.h"
#include "transport_int.h"

/*
 * Releases in flight: deletes of our nodes that the backend did not wait
 * for to the end.  One that fails on a connection error is sent again by
 * the watchdog once the client has reconnected, so a released lock never
 * stays behind while the session lives, even if the backend goes idle.
 * Guarded by shared_mu.
 */
typedef enum ZkReleaseState
{
	REL_HELD_BACK,				/* not sent yet (see ZK_RELEASE_HOLD_US) */
	REL_SENT,
	REL_RETRY					/* failed on a connection error */
} ZkReleaseState;

struct ZkRelease
{
	char	   *path;
	ZkReleaseState state;
	int64		sent_at_us;		/* or, while held back, when released */
	ZkReq	   *notify;			/* finished once the delete is applied, or
								 * must wait for a reconnect; then NULL */
	bool		awaited;		/* the backend waits for it (and pokes) */
	struct ZkRelease *next;
};
static ZkRelease *releases = NULL;

/*
 * A delete of ours that the server refused (ZNOAUTH, ZSESSIONMOVED, ...):
 * the node would stay while the session lives.  The backend hears of it
 * (check_refused), says so and closes the session, so the node goes with
 * it.  Only the first refusal is kept; one is enough to close.  Guarded by
 * shared_mu.
 */
static int	refused_rc = ZOK;
static char refused_path[ZKSYNC_PATH_MAX];

/*
 * Abandoned creates ("hunts").  A wait that ends by an ERROR may not know
 * whether its create reached the server: the reply is still in flight, or
 * was lost with the connection.  It leaves a hunt and returns at once; the
 * client and the watchdog finish the job without the backend:
 *
 *	 HUNT_CREATE	the create is in flight; its completion deletes the node
 *					it made, or, if its outcome is unknown, starts a search
 *	 HUNT_SEARCH	once connected, the watchdog sends a sync and a listing
 *					of the directory (the sync makes the listing include any
 *					create of ours the server applied); every child that
 *					carries our GUID is ours and is released
 *	 HUNT_LISTING	that listing is in flight
 *
 * If the session ends, the hunt is dropped: its nodes went with it.
 * Guarded by shared_mu.
 */
typedef enum ZkHuntState
{
	HUNT_CREATE,
	HUNT_SEARCH,
	HUNT_LISTING
} ZkHuntState;

struct ZkHunt
{
	char	   *dir;
	char	   *guid;
	ZkHuntState state;
	ZkReq	   *notify;			/* finished when the hunt is over; or NULL */
	struct ZkHunt *next;
};
static ZkHunt *hunts = NULL;

/* ---- backend-only state ---- */

/* when this backend last released a node, 0 once a create followed */
static int64 last_release_us = 0;

/* did the last create follow a release within ZK_RELEASE_HOLD_US? */
static bool relocks_at_once = false;

/*
 * Releases made between zk_release_batch_begin() and _end() are sent
 * together at the end: several deletes in one multi, one write in the
 * server (a transaction that held many locks ends in one round trip).
 */
#define ZK_DELETE_BATCH 500
static bool batching = false;
static ZkRelease *batched_deletes[ZK_DELETE_BATCH];
static int	nbatched_deletes = 0;

/* the handle a failed multi's deletes are sent again on */
static zhandle_t *zh_of_deletes = NULL;

/* At most this many held-back releases ride along with one create. */
#define ZK_CARRY_MAX 8

static void send_batched_deletes(void);
static void stop_awaiting_releases(void);

/* ===================================================================
 * Client thread side.  Nothing here may call a PostgreSQL function.
 * ===================================================================
 */

/* shared_mu held: take a release off the list and free it */
static void
drop_release_locked(ZkRelease *rel)
{
	ZkRelease **pp;

	for (pp = &releases; *pp; pp = &(*pp)->next)
		if (*pp == rel)
		{
			*pp = rel->next;
			break;
		}
	free(rel->path);
	free(rel);
}

/* shared_mu held: keep the first refusal, for check_refused() */
static void
note_refusal_locked(int rc, const char *path)
{
	if (refused_rc != ZOK)
		return;
	refused_rc = rc;
	strncpy(refused_path, path, sizeof(refused_path) - 1);
	refused_path[sizeof(refused_path) - 1] = '\0';
}

/* client thread: a release is done, or must be sent again */
static void
release_done(int rc, const void *data)
{
	ZkRelease  *rel = (ZkRelease *) data;

	pthread_mutex_lock(&shared_mu);
	note_answer_locked(rc, rel->sent_at_us);
	if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT)
	{
		rel->state = REL_RETRY;
		req_notify_locked(&rel->notify, rc);
	}
	else
	{
		/* deleted, already gone, gone with the session, or refused */
		if (rc != ZOK && rc != ZNONODE && rc != ZSESSIONEXPIRED &&
			rc != ZCLOSING && rc != ZINVALIDSTATE)
			note_refusal_locked(rc, rel->path);
		req_notify_locked(&rel->notify, rc);
		drop_release_locked(rel);
	}
	note_wake_locked(NULL);
	unlock_and_wake();
}

/*
 * client thread or backend, shared_mu held: queue the delete of `path` for
 * the watchdog to send (it sends REL_RETRY releases once connected).
 * Returns NULL if out of memory.  The caller wakes the watchdog unless it
 * sends the delete itself at once (a wake-up per release costs the
 * watchdog a context switch on every lock cycle).
 */
static ZkRelease *
queue_release_locked(const char *path, ZkReq *notify)
{
	ZkRelease  *rel = malloc(sizeof(ZkRelease));

	if (rel == NULL)
		return NULL;
	rel->path = strdup(path);
	if (rel->path == NULL)
	{
		free(rel);
		return NULL;
	}
	rel->state = REL_RETRY;
	rel->sent_at_us = 0;
	rel->notify = notify;
	rel->awaited = false;
	rel->next = releases;
	releases = rel;
	return rel;
}

/*
 * client thread: a create that carried held-back releases is done.  On
 * failure nothing of the multi happened: releases go back to be sent
 * again (dropped if already gone), and the create reports ZNONODE, "not
 * made, make it again", unless the outcome is unknown (connection loss)
 * or the create itself failed.
 */
static void
carry_done(int rc, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;
	ZkMulti    *m = req_multi(req);
	int			nrel = m->n - 1;	/* the create is the last op */
	char	   *copy = NULL;
	int			i;

	/* outcome unknown, or the session is gone: report as is */
	bool		unknown = (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT ||
						   rc == ZCLOSING || rc == ZINVALIDSTATE ||
						   rc == ZSESSIONEXPIRED);

	if (rc == ZOK)
		copy = strdup(m->bufs[nrel]);
	pthread_mutex_lock(&shared_mu);
	for (i = 0; i < nrel; i++)
	{
		ZkRelease  *rel = m->rels[i];

		if (rc != ZOK && !unknown && m->results[i].err != ZNONODE)
		{
			rel->state = REL_HELD_BACK;
			continue;
		}
		if (unknown)
		{
			rel->state = REL_RETRY;
			continue;
		}
		drop_release_locked(rel);
	}
	if (rc == ZOK && copy == NULL)
		rc = ZSYSTEMERROR;
	else if (rc != ZOK && !unknown)
	{
		int			own = m->results[nrel].err;

		rc = (own != ZOK && own != ZRUNTIMEINCONSISTENCY) ? own : ZNONODE;
	}
	req_set_path_locked(req, copy);
	req_finish_locked(req, rc);
	note_wake_locked(NULL);
	unlock_and_wake();
}

/*
 * client thread: a multi of deletes is done.  All applied: each release
 * is done.  Not applied because one failed (a node already gone, say):
 * each is sent again on its own, still awaited.  Outcome unknown: each
 * waits for the reconnect, as a single delete would.
 */
static void
deletes_done(int rc, const void *data)
{
	ZkMulti    *d = (ZkMulti *) data;
	int			i;

	for (i = 0; i < d->n; i++)
	{
		if (rc == ZOK || rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT ||
			rc == ZSESSIONEXPIRED || rc == ZCLOSING || rc == ZINVALIDSTATE)
			release_done(rc, d->rels[i]);
		else
			send_release(zh_of_deletes, d->rels[i]);
	}
	free_multi(d);
}

/*
 * client thread (or backend): send the delete of a release marked
 * REL_SENT.  rel->path stays valid: only release_done frees it, after
 * this send.
 */
void
send_release(zhandle_t *h, ZkRelease *rel)
{
	if (CLIENT_SEND(zoo_adelete(h, rel->path, -1, release_done, rel)) != ZOK)
		release_done(ZCONNECTIONLOSS, rel);
}

/* shared_mu held: the hunt is over */
static void
drop_hunt_locked(ZkHunt *hunt, int rc)
{
	ZkHunt	  **pp;

	for (pp = &hunts; *pp; pp = &(*pp)->next)
		if (*pp == hunt)
		{
			*pp = hunt->next;
			break;
		}
	req_notify_locked(&hunt->notify, rc);
	free(hunt->dir);
	free(hunt->guid);
	free(hunt);
}

/*
 * client thread, shared_mu held: an abandoned create is answered (see
 * "hunts" above).  The node it made is released; if the outcome is
 * unknown, the watchdog searches for it by its GUID once connected.
 */
static void
hunt_create_done_locked(ZkReq *req, int rc, void *ctx)
{
	ZkHunt	   *hunt = (ZkHunt *) ctx;

	if (rc == ZOK && zk_req_path(req))
	{
		/* the release takes over telling the backend */
		if (queue_release_locked(zk_req_path(req), hunt->notify))
			hunt->notify = NULL;
		else
		{
			hunt->state = HUNT_SEARCH;
			return;
		}
		kick_watchdog_locked();
		drop_hunt_locked(hunt, ZOK);
	}
	else if (rc_is_answer(rc) || rc == ZSESSIONEXPIRED || rc == ZCLOSING)
		drop_hunt_locked(hunt, rc); /* nothing was made, or gone already */
	else
	{
		hunt->state = HUNT_SEARCH;
		kick_watchdog_locked();
	}
}

/* client thread: a hunt's sync; its listing follows in order */
static void
hunt_sync_done(int rc, const char *value, const void *data)
{
}

/* client thread: a hunt's listing: release every child with our GUID */
static void
hunt_list_done(int rc, const struct String_vector *strings, const void *data)
{
	ZkHunt	   *hunt = (ZkHunt *) data;
	int			i;

	pthread_mutex_lock(&shared_mu);
	note_answer_locked(rc, 0);
	if (rc == ZOK && strings)
	{
		for (i = 0; i < strings->count; i++)
		{
			char		path[ZKSYNC_PATH_MAX];
			const char *child = strings->data[i];
			size_t		glen = strlen(hunt->guid);
			int			len;

			/* ours: _c_{guid}-...; anything else, however named, is not */
			if (strncmp(child, "_c_", 3) != 0 ||
				strncmp(child + 3, hunt->guid, glen) != 0 ||
				child[3 + glen] != '-')
				continue;
			len = snprintf(path, sizeof(path), "%s/%s", hunt->dir, child);
			if (len < 0 || len >= (int) sizeof(path))
				continue;		/* too long to be one of ours */
			if (queue_release_locked(path, hunt->notify))
			{
				hunt->notify = NULL;
				kick_watchdog_locked();
			}
			else
			{
				/* out of memory: the session must go, with the node */
				note_refusal_locked(ZSYSTEMERROR, path);
			}
		}
		drop_hunt_locked(hunt, ZOK);
	}
	else if (rc == ZNONODE || rc == ZSESSIONEXPIRED || rc == ZCLOSING ||
			 rc == ZINVALIDSTATE)
		drop_hunt_locked(hunt, rc);
	else if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT)
		hunt->state = HUNT_SEARCH;
	else
	{
		/* cannot look: close the session, and the node goes with it */
		note_refusal_locked(rc, hunt->dir);
		drop_hunt_locked(hunt, rc);
	}
	note_wake_locked(NULL);
	unlock_and_wake();
}

/*
 * watchdog thread: send a hunt's sync and listing.  The hunt stays valid:
 * only hunt_list_done frees it.
 */
void
send_hunt(zhandle_t *h, ZkHunt *hunt)
{
	CLIENT_SEND(zoo_async(h, hunt->dir, hunt_sync_done, NULL));
	if (CLIENT_SEND(zoo_aget_children(h, hunt->dir, 0, hunt_list_done, hunt)) != ZOK)
		hunt_list_done(ZCONNECTIONLOSS, NULL, hunt);
}

/* ---- what the watchdog picks, shared_mu held ---- */

/*
 * How long the watchdog may sleep (at most `sleep_us`): until the first
 * held-back release is due; a tick while a release or a hunt waits to be
 * sent again; until a release that nobody waits for may be overdue (the
 * backend watches those it waits for).
 */
int64
next_release_due_us_locked(int64 now, int64 sleep_us)
{
	ZkRelease  *rel;
	ZkHunt	   *hunt;

	for (rel = releases; rel; rel = rel->next)
	{
		if (rel->state == REL_HELD_BACK)
			sleep_us = Min(sleep_us, Max(rel->sent_at_us + ZK_RELEASE_HOLD_US - now, 100));
		else if (rel->state == REL_RETRY)
			sleep_us = Min(sleep_us, ZK_TICK_MS * 1000L);
		else if (!rel->awaited ||
				 (rel->notify && req_abandoned_locked(rel->notify)))
			sleep_us = Min(sleep_us, ZK_OVERDUE_DUE_US(rel->sent_at_us, now));
		else
		{
			/*
			 * The backend waits for it and pokes itself; look anyway once it
			 * should have (a safety net, not woken for).
			 */
			sleep_us = Min(sleep_us, ZK_OVERDUE_DUE_US(rel->sent_at_us + ZK_SILENT_US, now));
		}
	}
	for (hunt = hunts; hunt; hunt = hunt->next)
		if (hunt->state == HUNT_SEARCH)
			sleep_us = Min(sleep_us, ZK_TICK_MS * 1000L);
	return sleep_us;
}

/*
 * Mark the held-back releases whose time is up as sent and add them to
 * out[n..max); returns the new n.
 */
int
pick_due_releases_locked(ZkRelease **out, int n, int max, int64 now)
{
	ZkRelease  *rel;

	for (rel = releases; rel && n < max; rel = rel->next)
		if (rel->state == REL_HELD_BACK &&
			now - rel->sent_at_us >= ZK_RELEASE_HOLD_US)
		{
			rel->state = REL_SENT;
			rel->sent_at_us = now;
			out[n++] = rel;
		}
	return n;
}

/* Is a release sent and unanswered for longer than ZK_OVERDUE_US? */
bool
releases_overdue_locked(int64 now)
{
	ZkRelease  *rel;

	for (rel = releases; rel; rel = rel->next)
		if (rel->state == REL_SENT && now - rel->sent_at_us > ZK_OVERDUE_US)
			return true;
	return false;
}

/*
 * Mark the releases that failed on a connection error as sent and add
 * them to out[n..max); returns the new n.  Only while connected.
 */
int
pick_retry_releases_locked(ZkRelease **out, int n, int max, int64 now)
{
	ZkRelease  *rel;

	for (rel = releases; rel && n < max; rel = rel->next)
		if (rel->state == REL_RETRY)
		{
			rel->state = REL_SENT;
			rel->sent_at_us = now;
			rel->awaited = false;
			out[n++] = rel;
		}
	return n;
}

/* Mark up to `max` hunts that must search as listing, into out; how many */
int
pick_hunts_locked(ZkHunt **out, int max)
{
	ZkHunt	   *hunt;
	int			n = 0;

	for (hunt = hunts; hunt && n < max; hunt = hunt->next)
		if (hunt->state == HUNT_SEARCH)
		{
			hunt->state = HUNT_LISTING;
			out[n++] = hunt;
		}
	return n;
}

/*
 * shared_mu held, the handle closed (no callback runs any more): the
 * session is closed, so the nodes still to be released are gone.
 */
void
forget_releases_locked(void)
{
	ZkRelease  *rel;

	while ((rel = releases) != NULL)
	{
		req_notify_locked(&rel->notify, ZCLOSING);
		drop_release_locked(rel);
	}
	while (hunts != NULL)
		drop_hunt_locked(hunts, ZCLOSING);
	nbatched_deletes = 0;		/* those releases are gone too */
	refused_rc = ZOK;
}

/* ===================================================================
 * Backend side.
 * ===================================================================
 */

/*
 * Send the held-back releases now, ahead of a request of ours: the server
 * applies a session's requests in order, and the release and the request
 * share one fsync.
 */
void
flush_held_releases(void)
{
	ZkRelease  *send[16];
	ZkRelease  *rel;
	int			n = 0,
				i;
	int64		now = mono_us();

	pthread_mutex_lock(&shared_mu);
	for (rel = releases; rel && n < 16; rel = rel->next)
		if (rel->state == REL_HELD_BACK)
		{
			rel->state = REL_SENT;
			rel->sent_at_us = now;
			send[n++] = rel;
		}
	pthread_mutex_unlock(&shared_mu);
	for (i = 0; i < n; i++)
		send_release(zh, send[i]);
}

/*
 * Send the create of `path` (for `req`) together with the held-back
 * releases, in one multi: one transaction, so one fsync for both.  Only a
 * recipe node (ephemeral sequential) carries releases along, and a create
 * notes whether it came right after a release (see ZK_RELEASE_HOLD_US).
 * Any held-back release left over goes out on its own first.  Returns
 * false if nothing was carried: the caller sends the create alone.
 */
bool
send_create_carrying_releases(ZkReq *req, const char *path, const char *data,
							  int len, int flags)
{
	ZkMulti    *m = NULL;
	char	   *created = NULL;
	ZkRelease  *rel;
	int			rc;

	if (flags == ZOO_EPHEMERAL_SEQUENTIAL)
	{
		if (last_release_us != 0)
			relocks_at_once = mono_us() - last_release_us < ZK_RELEASE_HOLD_US;
		last_release_us = 0;
		pthread_mutex_lock(&shared_mu);
		for (rel = releases; rel; rel = rel->next)
		{
			if (rel->state != REL_HELD_BACK)
				continue;
			if (m == NULL)
			{
				m = alloc_multi(ZK_CARRY_MAX + 1);
				created = m ? malloc(ZKSYNC_PATH_MAX) : NULL;
				if (created == NULL)
				{
					free_multi(m);
					m = NULL;
					break;
				}
			}
			if (m->n == ZK_CARRY_MAX)
				break;
			rel->state = REL_SENT;
			rel->sent_at_us = mono_us();
			multi_add_delete(m, rel, rel->path);
		}
		pthread_mutex_unlock(&shared_mu);
	}
	flush_held_releases();		/* any left over go on their own */
	if (m == NULL || m->n == 0)
	{
		free(created);
		free_multi(m);
		return false;
	}
	multi_add_create(m, created, path, data, len, flags);
	req_attach_multi(req, m);
	rc = CLIENT_SEND(zoo_amulti(zh, m->n, m->ops, m->results, carry_done, req));
	if (rc != ZOK)
		carry_done(rc, req);	/* ZINVALIDSTATE, or a marshalling error */
	return true;
}

/*
 * Wait until every release sent so far is applied, for at most `wait_ms`,
 * and only while connected: a release that waits for a reconnect goes on
 * in the background.  Throws on interrupts unless `nothrow` (the releases
 * go on).
 */
void
zk_await_releases(int wait_ms, bool nothrow)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   wait_ms);

	for (;;)
	{
		ZkRelease  *rel;
		bool		busy = false;
		int64		oldest = 0;

		if (!handle_is_connected())
			break;
		pthread_mutex_lock(&shared_mu);
		for (rel = releases; rel; rel = rel->next)
			if (rel->state == REL_SENT || rel->state == REL_HELD_BACK)
			{
				busy = true;
				if (oldest == 0 || rel->sent_at_us < oldest)
					oldest = rel->sent_at_us;
			}
		pthread_mutex_unlock(&shared_mu);
		if (!busy || server_silent_since(oldest) ||
			GetCurrentTimestamp() >= deadline)
			break;
		sleep_once(silence_check_deadline(deadline), nothrow);
	}
	stop_awaiting_releases();
	check_refused();
}

/*
 * The backend waits no longer for the releases in flight: they go on in
 * the background, watched by the watchdog.  Never throws.
 */
static void
stop_awaiting_releases(void)
{
	ZkRelease  *rel;
	bool		any = false;

	pthread_mutex_lock(&shared_mu);
	for (rel = releases; rel; rel = rel->next)
		if (rel->awaited)
		{
			rel->awaited = false;
			any = true;
		}
	if (any)
		wake_watchdog_locked();
	pthread_mutex_unlock(&shared_mu);
}

/* shared_mu held: is a release the backend waits for in flight? */
bool
releases_awaited_locked(void)
{
	ZkRelease  *rel;

	for (rel = releases; rel; rel = rel->next)
		if (rel->awaited && rel->state == REL_SENT)
			return true;
	return false;
}

/* A delete of ours was refused: say so and close the session.  Never throws. */
void
check_refused(void)
{
	int			rc;
	char		path[ZKSYNC_PATH_MAX];

	pthread_mutex_lock(&shared_mu);
	rc = refused_rc;
	strlcpy(path, refused_path, sizeof(path));
	pthread_mutex_unlock(&shared_mu);
	if (rc == ZOK || zh == NULL)
		return;
	ereport(WARNING,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("could not release ZooKeeper node \"%s\"", path),
			 errdetail("ZooKeeper refused to delete it: %s.  The session is closed so that its nodes go with it; every zksync lock this backend held is released and shows as lost.",
					   zerror(rc))));
	close_for_cause();
}

/*
 * Wait for the delete that `notify` stands for (sent at `sent_us`) until
 * it is applied, `wait_ms` pass, or the server falls silent; then free
 * `notify`.  Throws on interrupts unless `nothrow` (the delete goes on).
 */
static void
await_applied(ZkReq *notify, int64 sent_us, int wait_ms, bool nothrow)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   wait_ms);

	while (zk_wait(notify, silence_check_deadline(deadline), nothrow) != ZKW_DONE)
	{
		if (server_silent_since(sent_us) || GetCurrentTimestamp() >= deadline)
			break;
	}
	zk_req_free(notify);
}

/*
 * Release one of our nodes: delete it, and wait up to `wait_ms` (0: do not
 * wait) for ZooKeeper to apply the delete.
 *
 * The delete is queued before anything else happens, and stays queued
 * until the server has applied it or the session has ended: if it fails
 * on a connection error, or is sent while the client is disconnected, the
 * watchdog sends it again once the client has reconnected, also while the
 * backend sits idle.  So the node goes, whatever happens to the wait.
 * While disconnected there is no wait at all.
 *
 * With zksync.synchronous_release off and a backend that locks again
 * right after releasing, the delete is held back up to ZK_RELEASE_HOLD_US
 * to travel with the next create (see there), and callers pass no wait.
 *
 * Never throws, except that without `nothrow` an interrupt ends the wait
 * with an ERROR (the delete goes on).  So it may run in commit and abort
 * callbacks.
 */
void
zk_release_node(const char *path, int wait_ms, bool nothrow)
{
	ZkRelease  *rel;
	ZkReq	   *notify = NULL;
	bool		send_now = false;
	int64		now = mono_us();

	if (zh == NULL || handle_is_dead())
		return;					/* the node is gone with the session */
	if (wait_ms > 0 && handle_is_connected())
		notify = req_alloc();	/* NULL if out of memory: then no wait */

	pthread_mutex_lock(&shared_mu);
	rel = queue_release_locked(path, notify);
	if (rel && handle_is_connected())
	{
		if (notify == NULL && !zksync_synchronous_release &&
			relocks_at_once && watchdog_is_running())
			rel->state = REL_HELD_BACK;
		else
		{
			rel->state = REL_SENT;
			send_now = true;
		}
		rel->sent_at_us = now;
	}
	if (rel)
	{
		rel->awaited = send_now &&
			(notify != NULL || zksync_synchronous_release);
		if (!send_now)
			kick_watchdog_locked(); /* held back, or for a reconnect */
		else if (!rel->awaited)
			wake_watchdog_locked(); /* nobody waits for it: it watches */
	}
	pthread_mutex_unlock(&shared_mu);
	last_release_us = now;

	if (rel == NULL)
	{
		/* out of memory: the session goes, and the node with it */
		zk_req_free(notify);
		ereport(WARNING,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while releasing ZooKeeper node \"%s\"", path),
				 errdetail("The session is closed so that its nodes go with it; every zksync lock this backend held is lost.")));
		close_for_cause();
		return;
	}
	/* rel stays valid until its completion: nobody else sends a REL_SENT */
	if (send_now && batching && notify == NULL)
	{
		batched_deletes[nbatched_deletes++] = rel;
		if (nbatched_deletes == ZK_DELETE_BATCH)
			send_batched_deletes();
	}
	else if (send_now)
		send_release(zh, rel);

	if (notify)
		await_applied(notify, now, wait_ms, nothrow);
	check_refused();
}

/* Send the batched releases: one delete alone, several in one multi. */
static void
send_batched_deletes(void)
{
	ZkMulti    *d = nbatched_deletes > 1 ? alloc_multi(nbatched_deletes) : NULL;
	int			i;

	if (d == NULL)
	{
		/* one, or out of memory: each on its own */
		for (i = 0; i < nbatched_deletes; i++)
			send_release(zh, batched_deletes[i]);
		nbatched_deletes = 0;
		return;
	}
	for (i = 0; i < nbatched_deletes; i++)
		multi_add_delete(d, batched_deletes[i], batched_deletes[i]->path);
	nbatched_deletes = 0;
	zh_of_deletes = zh;
	if (CLIENT_SEND(zoo_amulti(zh, d->n, d->ops, d->results, deletes_done, d)) != ZOK)
		deletes_done(ZCONNECTIONLOSS, d);
}

/*
 * Send the releases made from now on together (see "batching"), until
 * zk_release_batch_end().  Never throws.
 */
void
zk_release_batch_begin(void)
{
	batching = true;
}

/* Send what was batched.  Never throws. */
void
zk_release_batch_end(void)
{
	batching = false;
	if (nbatched_deletes > 0 && zh != NULL)
		send_batched_deletes();
	nbatched_deletes = 0;
}

/* A hunt for the nodes under `dir` named with `guid`; NULL if out of memory */
static ZkHunt *
new_hunt(const char *dir, const char *guid)
{
	ZkHunt	   *hunt = calloc(1, sizeof(ZkHunt));

	if (hunt)
	{
		hunt->dir = strdup(dir);
		hunt->guid = strdup(guid);
	}
	if (hunt == NULL || hunt->dir == NULL || hunt->guid == NULL)
	{
		if (hunt)
		{
			free(hunt->dir);
			free(hunt->guid);
			free(hunt);
		}
		return NULL;
	}
	return hunt;
}

/*
 * Give up a protected create whose outcome we do not know (the create is
 * in flight, `create` not NULL; or its reply was lost, `create` NULL): the
 * client (and the watchdog) delete the node if one was made (see "hunts" above).
 * Waits up to `wait_ms`, only while connected, for that to be done, so
 * that in the usual case nothing is left when the caller's ERROR reaches
 * the client; otherwise it goes on in the background.  Takes over
 * `create`.  Never throws; call it with interrupts held.
 */
void
zk_abandon_create(ZkReq *create, const char *dir, const char *guid,
				  int wait_ms)
{
	ZkHunt	   *hunt;
	ZkReq	   *notify = NULL;

	if (zh == NULL || handle_is_dead())
	{
		zk_req_free(create);
		return;					/* whatever was made is gone */
	}
	hunt = new_hunt(dir, guid);
	if (hunt == NULL)
	{
		zk_req_free(create);
		ereport(WARNING,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while abandoning a create under \"%s\"", dir),
				 errdetail("The session is closed so that its nodes go with it; every zksync lock this backend held is lost.")));
		close_for_cause();
		return;
	}
	if (wait_ms > 0 && handle_is_connected())
		notify = req_alloc();

	pthread_mutex_lock(&shared_mu);
	hunt->notify = notify;
	hunt->state = create ? HUNT_CREATE : HUNT_SEARCH;
	hunt->next = hunts;
	hunts = hunt;
	if (create)
		req_hand_over_locked(create, hunt_create_done_locked, hunt);
	kick_watchdog_locked();
	pthread_mutex_unlock(&shared_mu);

	if (notify)
	{
		zk_wait(notify,
				TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms),
				true);
		zk_req_free(notify);
	}
}

/*
 * Copy our nodes on their way out into *out as palloc'd path prefixes
 * (NULL-ended), at most `max`: releases not yet applied (a node's full
 * path) and, if `with_hunts`, hunts ("{dir}/_c_{guid}-", the start of any
 * node a create whose outcome is unknown made).  Returns how many were
 * copied; *complete says whether that is all of them.  (Copied with malloc
 * under the mutex: a palloc there could throw with the mutex held.)
 */
static int
copy_leaving(char ***out, int max, bool with_hunts, bool *complete)
{
	ZkRelease  *rel;
	ZkHunt	   *hunt;
	char	  **copy = NULL;
	int			n = 0,
				all = 0,
				i;

	pthread_mutex_lock(&shared_mu);
	for (rel = releases; rel; rel = rel->next)
		all++;
	for (hunt = with_hunts ? hunts : NULL; hunt; hunt = hunt->next)
		all++;
	if (Min(all, max) > 0)
		copy = malloc(sizeof(char *) * Min(all, max));
	for (rel = releases; copy && rel && n < max; rel = rel->next)
		if ((copy[n] = strdup(rel->path)) != NULL)
			n++;
	for (hunt = with_hunts ? hunts : NULL; copy && hunt && n < max; hunt = hunt->next)
	{
		size_t		len = strlen(hunt->dir) + strlen(hunt->guid) + 6;	/* /_c_ - \0 */

		if ((copy[n] = malloc(len)) != NULL)
			zksync_protected_prefix(copy[n++], len, hunt->dir, hunt->guid, "");
	}
	pthread_mutex_unlock(&shared_mu);

	*out = palloc0(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
	{
		(*out)[i] = pstrdup(copy[i]);
		free(copy[i]);
	}
	free(copy);
	*complete = n == all;
	return n;
}

/*
 * The nodes whose release is not yet applied, as palloc'd full paths;
 * returns how many.
 */
int
zk_pending_releases(char ***paths)
{
	bool		complete;

	return copy_leaving(paths, PG_INT32_MAX, false, &complete);
}

/*
 * Our nodes on their way out (releases not yet applied, hunts), as
 * palloc'd path prefixes (NULL-ended): returns how many, or -1 if there
 * are more than `max` (or no memory to copy them all; then *prefixes
 * holds those copied).  A deadlock scan must not take a node of these for
 * a wait of ours: they only look held or queued until the server has
 * applied their delete.
 */
int
zk_leaving_nodes(char ***prefixes, int max)
{
	bool		complete;
	int			n = copy_leaving(prefixes, max, true, &complete);

	return complete ? n : -1;
}
