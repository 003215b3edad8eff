/*-------------------------------------------------------------------------
 * transport.c
 *	  Requests to ZooKeeper, their completions, and the backend's wait.
 *
 * This file owns the thread boundary: a ZkReq (its fields are seen here
 * only), the completions that the client runs for it, the event
 * counter that every watch moves, and the backend's one wait loop.  The
 * other files of the connection layer (transport_int.h) build on it.
 *
 * Threads.  The single-threaded C client does its I/O in whichever thread
 * calls it: the backend while it waits (sleep_for polls the client's
 * socket beside its latch and an eventfd), our watchdog the rest of the
 * time (clientio.c).  The completions and watchers the client runs
 * ("Client thread side" below) may run on the watchdog's thread, so they
 * never call PostgreSQL: no palloc, no elog, no latch.  They copy results
 * into malloc'd memory under `shared_mu`, and write the eventfd if the
 * backend sleeps.  The watchdog takes no signals (session.c), so the
 * kernel always delivers PostgreSQL's signals to the backend thread.
 *
 * Request lifetime.  A ZkReq is malloc'd by the backend, linked into the
 * `live` list, and handed to the client as the completion's data.  Its
 * completion marks it done.  The backend frees it with
 * zk_req_free().  If the backend stops caring about a request that is
 * still in flight (an ERROR unwound the stack, a wait was cancelled), the
 * request is marked abandoned and its completion frees it when the
 * reply comes, so a late reply never writes into freed memory.
 * zk_req_free_all(), called at (sub)transaction abort, abandons every
 * request that an ERROR left behind.
 *
 * What can go wrong: a result read before zk_wait() said the request is
 * done (a race with the watchdog's thread); a PostgreSQL call slipped into
 * a completion (a crash or a deadlock on the allocator); a request freed
 * twice, or used after zk_req_free_all().
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "nls.h"
#include "layout.h"
#include "transport.h"
#include "releases.h"
#include "transport_int.h"

/*
 * One asynchronous request to ZooKeeper.  Its completion (on the backend's
 * thread or the watchdog's, clientio.c) fills in the result fields and
 * then sets `done`; until zk_wait() has reported the request done, the
 * backend must not read them.  Results are
 * malloc'd (the watchdog's thread may not palloc) and are freed with the
 * request by zk_req_free().
 */
struct ZkReq
{
	int			rc;				/* ZOK or a ZooKeeper error code */
	struct Stat stat;			/* create2 (czxid 0 if carrying releases),
								 * exists, get */
	char	   *path;			/* create2: the path created */
	char	   *data;			/* get: node data (NUL-terminated copy) */
	int			datalen;
	char	  **children;		/* get_children; a multi's created paths */
	int			nchildren;
	ZkAcl	   *acl;			/* get_acl: the node's ACL */
	int			nacl;
	ZkMulti    *multi;			/* the multi it was sent as, if any */

	/* guarded by shared_mu */
	ZkReqThen	then;			/* runs when answered (a hand-over) */
	void	   *then_ctx;
	bool		done;
	bool		abandoned;
	int64		sent_at_us;
	struct ZkReq *prev;
	struct ZkReq *next;
};

/* ---- shared with the watchdog thread, guarded by shared_mu ---- */
static ZkReq live = {.prev = &live,.next = &live};	/* list head */
static int	reqs_awaited = 0;	/* live, neither done nor abandoned */
static uint64 watch_events = 0;

/* session events that said "connected" (a connect or a reconnect) */
static uint64 connected_events = 0;

/*
 * When the newest request that the server answered was sent (mono_us; 0:
 * none on this handle).  The server saw the session alive after that
 * moment, and expires a session only after a whole timeout of silence, so
 * the session lives at least until then plus the session timeout, whatever
 * the client's own (possibly stale) state says.
 */
static int64 answered_sent_us = 0;

/* When the newest answer from the server arrived (mono_us; 0: none). */
static int64 answered_at_us = 0;

/*
 * The backend's sleep (note_wake_locked), guarded by shared_mu: asleep in
 * sleep_for, for one request (NULL: anything); news so far; a signal owed.
 */
static bool backend_asleep = false;
static const ZkReq *awaited_req = NULL;
static uint64 wake_seq = 0;
static bool wake_owed = false;

/* backend only: wake_seq when sleep_once last looked */
static uint64 wake_seq_seen = 0;

/*
 * Microseconds on a clock that keeps running while the process is stopped
 * and while the machine sleeps: a pause must count as time passed.
 */
int64
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ===================================================================
 * Client thread side.  Nothing here may call a PostgreSQL function.
 * ===================================================================
 */

/*
 * client thread (or backend), shared_mu held: news for the backend's wait:
 * `req` answered, or (NULL) anything else.  Wakes only a sleeping backend,
 * and only a wait that looks at it (docs/transport.md, "Wake-ups"); a busy
 * one sees wake_seq move before it next sleeps.
 */
void
note_wake_locked(const ZkReq *req)
{
	if (awaited_req != NULL && req != awaited_req)
		return;					/* the backend waits for one request only */
	wake_seq++;
	if (backend_asleep)
	{
		backend_asleep = false;
		wake_owed = true;
	}
}

/* client thread (or backend): let go of shared_mu, then signal if owed */
void
unlock_and_wake(void)
{
	bool		signal = wake_owed;

	wake_owed = false;
	pthread_mutex_unlock(&shared_mu);
	if (signal)
		signal_backend();
}

/* client thread: wake any wait of the backend (takes shared_mu) */
void
wake_backend(void)
{
	pthread_mutex_lock(&shared_mu);
	note_wake_locked(NULL);
	unlock_and_wake();
}

/* shared_mu held: take a request off the `live` list */
static void
unlink_req(ZkReq *req)
{
	req->prev->next = req->next;
	req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

/* Free a request and its results (unlinked, and done or never sent). */
static void
free_req(ZkReq *req)
{
	int			i;

	free(req->path);
	free(req->data);
	free_multi(req->multi);
	for (i = 0; i < req->nchildren; i++)
		free(req->children[i]);
	free(req->children);
	for (i = 0; i < req->nacl; i++)
	{
		free(req->acl[i].scheme);
		free(req->acl[i].id);
	}
	free(req->acl);
	free(req);
}

/* Did the server itself answer (as opposed to the client giving up)? */
bool
rc_is_answer(int rc)
{
	return rc == ZOK || rc == ZNONODE || rc == ZNODEEXISTS || rc == ZNOAUTH ||
		rc == ZBADVERSION || rc == ZNOTEMPTY || rc == ZNOCHILDRENFOREPHEMERALS ||
		rc == ZINVALIDACL;
}

/* client thread (or backend), shared_mu held: a request sent then was answered */
void
note_answer_locked(int rc, int64 sent_us)
{
	if (!rc_is_answer(rc))
		return;
	if (sent_us > answered_sent_us)
		answered_sent_us = sent_us;
	answered_at_us = mono_us();
}

/* client thread (or backend), shared_mu held: record the outcome */
void
req_finish_locked(ZkReq *req, int rc)
{
	if (!req->done && !req->abandoned)
		reqs_awaited--;
	req->rc = rc;
	req->done = true;
	note_answer_locked(rc, req->sent_at_us);
	note_wake_locked(req);
	if (req->then)
	{
		ZkReqThen	then = req->then;

		req->then = NULL;
		then(req, rc, req->then_ctx);
	}
	if (req->abandoned)
	{
		unlink_req(req);
		free_req(req);
	}
}

/* shared_mu held: tell a waiting backend (if any) and forget the request */
void
req_notify_locked(ZkReq **notify, int rc)
{
	if (*notify)
	{
		req_finish_locked(*notify, rc);
		*notify = NULL;
	}
}

/* shared_mu held: the path a request made (malloc'd; the request owns it) */
void
req_set_path_locked(ZkReq *req, char *path)
{
	req->path = path;
}

/* client thread: a delete or a sync is done (nothing to copy) */
static void
rc_done(int rc, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;

	pthread_mutex_lock(&shared_mu);
	req_finish_locked(req, rc);
	unlock_and_wake();
}

/* client thread: a sync is done; its value says nothing we need */
static void
sync_done(int rc, const char *value, const void *data)
{
	rc_done(rc, data);
}

/* client thread */
static void
stat_done(int rc, const struct Stat *stat, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;

	pthread_mutex_lock(&shared_mu);
	if (rc == ZOK && stat)
		req->stat = *stat;
	req_finish_locked(req, rc);
	unlock_and_wake();
}

/* client thread */
static void
create_done(int rc, const char *value, const struct Stat *stat,
			const void *data)
{
	ZkReq	   *req = (ZkReq *) data;
	char	   *copy = (rc == ZOK && value) ? strdup(value) : NULL;

	pthread_mutex_lock(&shared_mu);
	req->path = copy;
	if (rc == ZOK && value && !copy)
		rc = ZSYSTEMERROR;		/* out of memory */
	if (rc == ZOK && stat)
		req->stat = *stat;
	req_finish_locked(req, rc);
	unlock_and_wake();
}

/* client thread */
static void
data_done(int rc, const char *value, int value_len, const struct Stat *stat,
		  const void *data)
{
	ZkReq	   *req = (ZkReq *) data;
	char	   *copy = NULL;

	if (rc == ZOK)
	{
		int			len = (value && value_len > 0) ? value_len : 0;

		copy = malloc(len + 1);
		if (copy)
		{
			if (len > 0)
				memcpy(copy, value, len);
			copy[len] = '\0';
		}
		else
			rc = ZSYSTEMERROR;
		value_len = len;
	}
	pthread_mutex_lock(&shared_mu);
	req->data = copy;
	req->datalen = copy ? value_len : 0;
	if (rc == ZOK && stat)
		req->stat = *stat;
	req_finish_locked(req, rc);
	unlock_and_wake();
}

/* client thread */
static void
strings_done(int rc, const struct String_vector *strings, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;
	char	  **copy = NULL;
	int			n = 0;

	if (rc == ZOK && strings && strings->count > 0)
	{
		copy = calloc(strings->count, sizeof(char *));
		if (copy)
		{
			for (n = 0; n < strings->count; n++)
			{
				copy[n] = strdup(strings->data[n]);
				if (!copy[n])
					break;
			}
		}
		if (!copy || n < strings->count)
			rc = ZSYSTEMERROR;
	}
	pthread_mutex_lock(&shared_mu);
	req->children = copy;
	req->nchildren = n;
	req_finish_locked(req, rc);
	unlock_and_wake();
}

/*
 * client thread: an ACL was read.  Its entries are copied into malloc'd
 * memory (the client frees its own vector when we return).
 */
static void
acl_done(int rc, struct ACL_vector *acl, struct Stat *stat, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;
	ZkAcl	   *copy = NULL;
	int			n = 0,
				i;

	if (rc == ZOK && acl && acl->count > 0)
	{
		copy = calloc(acl->count, sizeof(ZkAcl));
		if (copy == NULL)
			rc = ZSYSTEMERROR;	/* out of memory */
		else
			n = acl->count;		/* a NULL string left by a failed strdup is
								 * freed with the request harmlessly */
		for (i = 0; i < n; i++)
		{
			const struct Id *id = &acl->data[i].id;

			copy[i].perms = acl->data[i].perms;
			copy[i].scheme = strdup(id->scheme ? id->scheme : "");
			copy[i].id = strdup(id->id ? id->id : "");
			if (copy[i].scheme == NULL || copy[i].id == NULL)
				rc = ZSYSTEMERROR;
		}
	}
	pthread_mutex_lock(&shared_mu);
	req->acl = copy;
	req->nacl = n;
	if (rc == ZOK && stat)
		req->stat = *stat;
	req_finish_locked(req, rc);
	unlock_and_wake();
}

/*
 * client thread: a multi of creates is done.  On success the created
 * paths go to the request's children (in the order asked), so the backend
 * reads them like a listing.  On failure nothing of the multi happened.
 */
static void
many_done(int rc, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;
	ZkMulti    *m = req->multi;
	char	  **copy = NULL;
	int			i,
				n = 0;

	if (rc == ZOK)
	{
		copy = calloc(m->n, sizeof(char *));
		for (n = 0; copy && n < m->n; n++)
			if ((copy[n] = strdup(m->bufs[n])) == NULL)
				break;
		if (copy == NULL || n < m->n)
			rc = ZSYSTEMERROR;
	}
	else
	{
		/* the op that failed says why (the others say "rolled back") */
		for (i = 0; i < m->n; i++)
			if (m->results[i].err != ZOK && m->results[i].err != ZRUNTIMEINCONSISTENCY)
			{
				rc = m->results[i].err;
				break;
			}
	}
	pthread_mutex_lock(&shared_mu);
	req->children = copy;
	req->nchildren = n;
	req_finish_locked(req, rc);
	unlock_and_wake();
}

/*
 * client thread: the session watcher and every node watch.  We keep no
 * per-watch state (a watch set by a wait that was cancelled may fire much
 * later); waiters count events and re-read ZooKeeper when the count moves.
 */
void
watcher(zhandle_t *h, int type, int state, const char *path, void *ctx)
{
	pthread_mutex_lock(&shared_mu);
	watch_events++;
	if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE)
		connected_events++;
	note_wake_locked(NULL);
	unlock_and_wake();
}

/* shared_mu held: the backend stops caring about `req`, still in flight */
static void
abandon_locked(ZkReq *req)
{
	if (!req->done && !req->abandoned)
		reqs_awaited--;
	req->abandoned = true;
}

/* shared_mu held: has the backend stopped caring about `req` (see zk_req_free)? */
bool
req_abandoned_locked(const ZkReq *req)
{
	return req->abandoned;
}

/*
 * shared_mu held: how long the watchdog may sleep (at most `sleep_us`) to
 * see an abandoned request overdue (sleep_for watches the others).
 */
int64
next_abandoned_due_us_locked(int64 now, int64 sleep_us)
{
	ZkReq	   *req;

	for (req = live.next; req != &live; req = req->next)
		if (req->abandoned && !req->done)
			sleep_us = Min(sleep_us, ZK_OVERDUE_DUE_US(req->sent_at_us, now));
	return sleep_us;
}

/* shared_mu held: is a request of the backend's overdue (ZOOKEEPER-4537)? */
bool
req_overdue_locked(int64 now)
{
	ZkReq	   *req;

	for (req = live.next; req != &live; req = req->next)
		if (!req->done && now - req->sent_at_us > ZK_OVERDUE_US)
			return true;
	return false;
}

/* ===================================================================
 * Backend side.
 * ===================================================================
 */

/* The multi a request was sent as (NULL if none). */
ZkMulti *
req_multi(const ZkReq *req)
{
	return req->multi;
}

/* The request is sent as `m`, which is freed with it. */
void
req_attach_multi(ZkReq *req, ZkMulti *m)
{
	req->multi = m;
}

/*
 * Hand a request over to `then`, which runs under shared_mu once the
 * request is answered (at once if it already is), after which the
 * request is freed: the backend lets go of it here.
 */
void
req_hand_over_locked(ZkReq *req, ZkReqThen then, void *ctx)
{
	req->then = then;
	req->then_ctx = ctx;
	if (req->done)
	{
		req->then = NULL;
		then(req, req->rc, ctx);
		unlink_req(req);
		free_req(req);
	}
	else
		abandon_locked(req);	/* its completion frees it */
}

/* The newest request the server answered was sent then (mono_us; 0: none) */
int64
answered_sent_us_get(void)
{
	int64		answered;

	pthread_mutex_lock(&shared_mu);
	answered = answered_sent_us;
	pthread_mutex_unlock(&shared_mu);
	return answered;
}

/* shared_mu held: a new handle has had no answer yet */
void
forget_answers_locked(void)
{
	answered_sent_us = 0;
	answered_at_us = 0;
}

/*
 * Has the server been silent since `since_us` (mono_us), for longer than
 * ZK_SILENT_US?  Then the client may still think itself connected (it
 * notices a dead connection only after 2/3 of the session timeout), but a
 * release need not wait for an answer that is not coming: the watchdog's
 * ZOOKEEPER-4537 read went out after ZK_OVERDUE_US and was not answered
 * either.  A slow but live server answers that read at once (it needs no
 * fsync), so this does not cut short a release that is merely slow.
 */
bool
server_silent_since(int64 since_us)
{
	int64		now = mono_us();
	bool		silent;

	if (since_us == 0 || now - since_us < ZK_SILENT_US)
		return false;
	pthread_mutex_lock(&shared_mu);
	silent = answered_at_us < since_us;
	pthread_mutex_unlock(&shared_mu);
	return silent;
}

/* The next moment to look whether the server has gone silent */
TimestampTz
silence_check_deadline(TimestampTz deadline)
{
	TimestampTz soon = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   ZK_SILENT_US / 2000);

	return (deadline != 0 && deadline < soon) ? deadline : soon;
}

/* A new request, linked into `live`; NULL if out of memory.  Never throws. */
ZkReq *
req_alloc(void)
{
	ZkReq	   *req = calloc(1, sizeof(ZkReq));

	if (req == NULL)
		return NULL;
	req->sent_at_us = mono_us();
	pthread_mutex_lock(&shared_mu);
	req->next = &live;
	req->prev = live.prev;
	live.prev->next = req;
	live.prev = req;
	reqs_awaited++;
	pthread_mutex_unlock(&shared_mu);
	return req;
}

/* A new request, without sending held-back releases first; ERROR if no memory */
static ZkReq *
req_new_noflush(void)
{
	ZkReq	   *req = req_alloc();

	if (req == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return req;
}

/* A new request, behind any held-back release; ERROR if no memory */
static ZkReq *
req_new(void)
{
	flush_held_releases();
	return req_new_noflush();
}

/* If the client refused the request outright, its completion will not run. */
static ZkReq *
req_sent(ZkReq *req, int rc)
{
	if (rc != ZOK)
	{
		pthread_mutex_lock(&shared_mu);
		req_finish_locked(req, rc);
		pthread_mutex_unlock(&shared_mu);
	}
	return req;
}

/*
 * shared_mu held: free a request that is done, or leave one still in
 * flight to its completion, which frees it when the reply comes.
 */
static void
free_or_abandon_locked(ZkReq *req)
{
	if (req->done)
	{
		unlink_req(req);
		free_req(req);
	}
	else
	{
		abandon_locked(req);
		wake_watchdog_locked(); /* nobody waits for it now: it watches */
	}
}

/*
 * Free a request, or abandon it to its completion if it is still in
 * flight.  NULL is allowed.
 */
void
zk_req_free(ZkReq *req)
{
	if (req == NULL)
		return;
	pthread_mutex_lock(&shared_mu);
	free_or_abandon_locked(req);
	pthread_mutex_unlock(&shared_mu);
}

/*
 * The requests sent until zk_sends_end() go out together, in as few TCP
 * segments as fit (a create and the listing behind it).  Nests.  A wait
 * sends what was held so far; an ERROR ends the batch (zk_req_free_all).
 */
void
zk_sends_begin(void)
{
	pthread_mutex_lock(&shared_mu);
	client_sends_begin_locked();
	pthread_mutex_unlock(&shared_mu);
}

void
zk_sends_end(void)
{
	pthread_mutex_lock(&shared_mu);
	client_sends_end_locked();
	pthread_mutex_unlock(&shared_mu);
}

/*
 * Free every request.  For abort paths and session close only: no request
 * pointer held by the backend may be used afterwards.
 */
void
zk_req_free_all(void)
{
	ZkReq	   *req,
			   *next;

	/* an ERROR may have left a batch of releases open: send it */
	zk_release_batch_end();

	pthread_mutex_lock(&shared_mu);
	client_sends_reset_locked();	/* an ERROR may have left sends corked */
	for (req = live.next; req != &live; req = next)
	{
		next = req->next;
		free_or_abandon_locked(req);
	}
	pthread_mutex_unlock(&shared_mu);
}

/* How many times a session of this backend got connected so far */
uint64
zk_connected_events(void)
{
	uint64		n;

	pthread_mutex_lock(&shared_mu);
	n = connected_events;
	pthread_mutex_unlock(&shared_mu);
	return n;
}

/* How many watch and session events have been seen so far */
uint64
zk_events_seen(void)
{
	uint64		n;

	pthread_mutex_lock(&shared_mu);
	n = watch_events;
	pthread_mutex_unlock(&shared_mu);
	return n;
}

/*
 * The wait loop's one step.  Sleep until a reply, a watch, a hand-off or
 * an interrupt may have changed something, or `deadline` (0: none)
 * passes; with `req` (not NULL), only its answer counts among the replies
 * and watches.  Returns false if the deadline has passed.  Services
 * interrupts (so may throw) unless `nothrow`.  News that came since the
 * last call returns at once, without sleeping.
 */
static bool
sleep_for(const ZkReq *req, TimestampTz deadline, bool nothrow)
{
	long		timeout_ms = -1;
	WaitEvent	events[4];
	WaitEventSet *set;
	int			n,
				i,
				fd = -1,
				interest = 0;
	int64		client_us = -1;
	uint64		epoch = 0;
	bool		capped;

	if (deadline != 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (now >= deadline)
			return false;
		timeout_ms = (long) ((deadline - now + 999) / 1000);
	}
	pthread_mutex_lock(&shared_mu);
	client_sends_flush_locked();	/* a wait keeps none of its requests back */
	/* what the client waits for; a timed-out connection may fail requests */
	if (zh != NULL)
		epoch = client_interest_locked(zh, &fd, &interest, &client_us);
	if (wake_seq != wake_seq_seen)
	{
		wake_seq_seen = wake_seq;
		pthread_mutex_unlock(&shared_mu);
		drain_client_log();
		return true;
	}

	/* what it waits for, the backend watches itself (ZOOKEEPER-4537) */
	capped = (reqs_awaited > 0 || releases_awaited_locked()) &&
		(timeout_ms < 0 || timeout_ms > ZK_OVERDUE_US / 1000);
	if (capped)
		timeout_ms = ZK_OVERDUE_US / 1000;
	if (client_us >= 0 && (timeout_ms < 0 || client_us / 1000 < timeout_ms))
		timeout_ms = (long) ((client_us + 999) / 1000);
	if (zh != NULL)
		backend_pump_begin_locked(zh);
	backend_asleep = true;
	awaited_req = req;
	pthread_mutex_unlock(&shared_mu);

	/* the client's socket too: the backend reads its own answers */
	set = backend_wait_set(fd, interest);
	n = WaitEventSetWait(set, timeout_ms, events, lengthof(events),
						 PG_WAIT_EXTENSION);

	pthread_mutex_lock(&shared_mu);
	backend_asleep = false;
	awaited_req = NULL;
	if (zh != NULL)
	{
		backend_pump_end_locked();
		client_process_locked(zh, epoch, backend_wait_events(events, n, fd));
	}
	wake_seq_seen = wake_seq;
	pthread_mutex_unlock(&shared_mu);
	if (n == 0 && capped && zh != NULL)
		poke_if_overdue(zh);
	for (i = 0; i < n; i++)
		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			if (!nothrow)
				CHECK_FOR_INTERRUPTS();
		}
	drain_client_log();
	return true;
}

/* sleep_for() any news */
bool
sleep_once(TimestampTz deadline, bool nothrow)
{
	return sleep_for(NULL, deadline, nothrow);
}

/*
 * Wait until `req` is done, or `deadline` (0: none) passes.  Unless
 * `nothrow`, interrupts are serviced, so this may throw (query cancel,
 * statement_timeout, termination).  With `nothrow` it never throws;
 * callers in abort and commit callbacks must pass a deadline then.
 */
ZkWaitResult
zk_wait(ZkReq *req, TimestampTz deadline, bool nothrow)
{
	for (;;)
	{
		bool		ready;

		pthread_mutex_lock(&shared_mu);
		ready = req->done;
		pthread_mutex_unlock(&shared_mu);
		if (ready)
			return ZKW_DONE;
		if (!sleep_for(req, deadline, nothrow))
			return ZKW_TIMEOUT;
	}
}

/*
 * Wait until a watch fires or the session changes state (the event
 * counter moves past `events_seen`, see zk_events_seen), or `also` (may be
 * NULL) returns true, or `deadline` (0: none) passes.  Interrupts as for
 * zk_wait().  `also` is how a caller waits for news that does not come
 * from ZooKeeper, such as a hand-off: it is checked whenever the latch is
 * set.
 */
ZkWaitResult
zk_wait_event(uint64 events_seen, bool (*also) (void), TimestampTz deadline,
			  bool nothrow)
{
	for (;;)
	{
		bool		ready;

		pthread_mutex_lock(&shared_mu);
		ready = watch_events != events_seen;
		pthread_mutex_unlock(&shared_mu);
		if (ready || handle_is_dead() || (also && also()))
			return ZKW_EVENT;
		if (!sleep_once(deadline, nothrow))
			return ZKW_TIMEOUT;
	}
}

/* Wait (interruptibly, no deadline) for a request; return its rc. */
int
zk_call(ZkReq *req)
{
	zk_wait(req, 0, false);
	return req->rc;
}

/* ---- a done request's results ---- */

int
zk_req_rc(const ZkReq *req)
{
	return req->rc;
}

const char *
zk_req_path(const ZkReq *req)
{
	return req->path;
}

const char *
zk_req_data(const ZkReq *req)
{
	return req->data;
}

int
zk_req_datalen(const ZkReq *req)
{
	return req->datalen;
}

char	  **
zk_req_children(const ZkReq *req)
{
	return req->children;
}

int
zk_req_nchildren(const ZkReq *req)
{
	return req->nchildren;
}

int64
zk_req_czxid(const ZkReq *req)
{
	return req->stat.czxid;
}

/* When the node was made (Unix ms) */
int64
zk_req_ctime(const ZkReq *req)
{
	return req->stat.ctime;
}

int64
zk_req_ephemeral_owner(const ZkReq *req)
{
	return req->stat.ephemeralOwner;
}

/* The ACL read by zk_get_acl(): its entries (zk_req_nacl() of them) */
const ZkAcl *
zk_req_acl(const ZkReq *req)
{
	return req->acl;
}

int
zk_req_nacl(const ZkReq *req)
{
	return req->nacl;
}

/* ---- multis ---- */

/* Free a multi and the path buffers of its creates.  NULL is allowed. */
void
free_multi(ZkMulti *m)
{
	int			i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++)
		free(m->bufs[i]);
	free(m->bufs);
	free(m->rels);
	free(m->ops);
	free(m->results);
	free(m);
}

/* Room for a multi of up to `max` ops.  NULL if out of memory; never throws. */
ZkMulti *
alloc_multi(int max)
{
	ZkMulti    *m = calloc(1, sizeof(ZkMulti));

	if (m == NULL)
		return NULL;
	m->max = max;
	m->ops = calloc(max, sizeof(zoo_op_t));
	m->results = calloc(max, sizeof(zoo_op_result_t));
	m->bufs = calloc(max, sizeof(char *));
	m->rels = calloc(max, sizeof(ZkRelease *));
	if (m->ops == NULL || m->results == NULL || m->bufs == NULL ||
		m->rels == NULL)
	{
		free_multi(m);
		return NULL;
	}
	return m;
}

/*
 * Add a create (our ACL).  Its path goes to `buf`, a malloc'd buffer of
 * ZKSYNC_PATH_MAX bytes that the multi takes over (NULL: make one).  False
 * if out of memory.  Never throws.
 */
bool
multi_add_create(ZkMulti *m, char *buf, const char *path, const char *data,
				 int len, int flags)
{
	if (buf == NULL && (buf = malloc(ZKSYNC_PATH_MAX)) == NULL)
		return false;
	m->bufs[m->n] = buf;
	zoo_create_op_init(&m->ops[m->n], path, data, len, node_acl, flags,
					   buf, ZKSYNC_PATH_MAX);
	m->n++;
	return true;
}

/* Add the delete of `path` that carries out release `rel`.  Never throws. */
void
multi_add_delete(ZkMulti *m, ZkRelease *rel, const char *path)
{
	m->rels[m->n] = rel;
	zoo_delete_op_init(&m->ops[m->n], path, -1);
	m->n++;
}

/* ---- request constructors; the caller must have called zk_connect() ---- */

/*
 * Create `path`.  A recipe node (ephemeral sequential) may carry the
 * held-back releases along in one multi (releases.c).
 */
ZkReq *
zk_create(const char *path, const char *data, int len, int flags)
{
	ZkReq	   *req = req_new_noflush();

	if (send_create_carrying_releases(req, path, data, len, flags))
		return req;
	return req_sent(req, CLIENT_SEND(zoo_acreate2(zh, path, data, len, node_acl, flags,
												  create_done, req)));
}

/*
 * Create `n` nodes (ephemeral sequential, our ACL, the same data) in one
 * multi: all or none, one request and one transaction in the server.  The
 * created paths come back as the request's children.
 */
ZkReq *
zk_create_many(int n, char **paths, const char *data, int len)
{
	ZkMulti    *m = alloc_multi(n);
	ZkReq	   *req;
	int			i,
				rc;

	for (i = 0; m && i < n; i++)
		if (!multi_add_create(m, NULL, paths[i], data, len,
							  ZOO_EPHEMERAL_SEQUENTIAL))
		{
			free_multi(m);
			m = NULL;
		}
	flush_held_releases();
	req = m ? req_alloc() : NULL;
	if (req == NULL)
	{
		free_multi(m);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	req->multi = m;
	rc = CLIENT_SEND(zoo_amulti(zh, n, m->ops, m->results, many_done, req));
	return req_sent(req, rc);
}

ZkReq *
zk_delete(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, CLIENT_SEND(zoo_adelete(zh, path, -1, rc_done, req)));
}

ZkReq *
zk_exists(const char *path, bool watch)
{
	ZkReq	   *req = req_new();

	if (watch)
		return req_sent(req, CLIENT_SEND(zoo_awexists(zh, path, watcher, NULL,
													  stat_done, req)));
	return req_sent(req, CLIENT_SEND(zoo_aexists(zh, path, 0, stat_done, req)));
}

/*
 * Read a node; with `watch`, also watch it.  A data watch is how we wait
 * for a node to go: unlike an exists watch, it is not set when the node is
 * already gone (ZNONODE), so it never lingers on a path that will not come
 * back (Curator makes the same choice).
 */
ZkReq *
zk_get(const char *path, bool watch)
{
	ZkReq	   *req = req_new();

	if (watch)
		return req_sent(req, CLIENT_SEND(zoo_awget(zh, path, watcher, NULL, data_done, req)));
	return req_sent(req, CLIENT_SEND(zoo_aget(zh, path, 0, data_done, req)));
}

/*
 * Sync: the server we are connected to catches up with the leader before
 * it answers this session's next reads (sent behind this one).
 */
ZkReq *
zk_sync(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, CLIENT_SEND(zoo_async(zh, path, sync_done, req)));
}

ZkReq *
zk_get_children(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, CLIENT_SEND(zoo_aget_children(zh, path, 0, strings_done, req)));
}

/*
 * zk_get_children_watch() with watcher `fn` and `ctx`; `then` runs when the
 * listing is answered (req_finish_locked), even if abandoned.
 */
ZkReq *
get_children_then(const char *path, watcher_fn fn, void *ctx,
				  ZkReqThen then, void *then_ctx)
{
	ZkReq	   *req = req_new();

	req->then = then;
	req->then_ctx = then_ctx;
	return req_sent(req, CLIENT_SEND(zoo_awget_children(zh, path, fn, ctx, strings_done,
														req)));
}

/* The children of `path`, and a watch for the next change to them */
ZkReq *
zk_get_children_watch(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, CLIENT_SEND(zoo_awget_children(zh, path, watcher, NULL,
														strings_done, req)));
}

/* Read the ACL of `path` (zk_req_acl()) */
ZkReq *
zk_get_acl(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, CLIENT_SEND(zoo_aget_acl(zh, path, acl_done, req)));
}

/* Set the data of `path` (any version) */
ZkReq *
zk_set(const char *path, const char *data, int len)
{
	ZkReq	   *req = req_new();

	return req_sent(req, CLIENT_SEND(zoo_aset(zh, path, data, len, -1, stat_done, req)));
}
