/*-------------------------------------------------------------------------
 * connection.c
 *	  The backend's ZooKeeper session: connect, request transport, wait loop.
 *
 * This is the only file that shares data with the ZooKeeper client's
 * threads.  Everything else in zksync runs on the backend's own thread and
 * talks to ZooKeeper through the functions here.
 *
 * Threads.  We use the multi-threaded C client (libzookeeper_mt).  It runs
 * an I/O thread, which keeps the session alive with pings whatever the
 * backend is doing (a lock must stay held through a statement that runs for
 * many session timeouts, SPEC point 8), and a completion thread, which runs
 * our completion and watcher functions.  Those threads must never call a
 * PostgreSQL function: no palloc, no elog, no latch.  So the functions they
 * run (marked "client thread" below) only copy results into malloc'd memory
 * under `shared_mu` and then write to an eventfd.  The backend sleeps in
 * WaitLatchOrSocket() on that eventfd and its own latch, so a wait is woken
 * by a reply, by a watch, or by an interrupt, whichever comes first.  The
 * threads are created with every signal blocked, so the kernel always
 * delivers PostgreSQL's signals to the backend thread.
 *
 * Request lifetime.  A ZkReq is malloc'd by the backend, linked into the
 * `live` list, and handed to the client as the completion's data.  The
 * completion thread marks it done.  The backend frees it with zk_release().
 * If the backend stops caring about a request that is still in flight (an
 * ERROR unwound the stack, a wait was cancelled), the request is marked
 * abandoned and the completion thread frees it when the reply comes, so a
 * late reply never writes into freed memory.  zk_release_all(), called at
 * (sub)transaction abort, abandons every request that an ERROR left behind.
 *
 * Stuck requests.  ZooKeeper 3.6.0-3.8.0 servers (Debian 12 ships 3.8.0)
 * can leave a request unanswered until some other request from the same
 * session reaches the server (ZOOKEEPER-4537).  The client sends no ping
 * while a request is outstanding, so a lone session would stall for 2/3 of
 * the session timeout and then drop its connection.  Whenever a request has
 * been outstanding for more than ZK_OVERDUE_US, a watchdog thread of ours
 * sends one cheap read (exists on "/") on the same session, which unsticks
 * the server (SPEC point 12).  It runs whether or not the backend waits:
 * releases are not waited for (zk_release_node), so a delete can be in
 * flight while the backend sits idle.  Like the client's threads, it never
 * calls PostgreSQL and takes no signals.
 *
 * Session loss.  A lost connection (ZCONNECTIONLOSS) is not a lost session:
 * the client reconnects to another server with the same session, and the
 * callers retry.  An expired session is final: every ephemeral node is
 * gone.  zk_connect() notices it, tells the lock layer (whose holds become
 * "lost") and opens a new session.  At backend exit the session is closed,
 * so the server drops our ephemeral nodes at once.
 *
 * Logging.  The client would print to stderr, i.e. the server log.  Its
 * messages go through log_to_ring() (client thread) into a small ring that
 * the backend drains at DEBUG1, so they show up only when asked for.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

#include "zksync.h"

/* A request outstanding longer than this gets a poke (ZOOKEEPER-4537). */
#define ZK_OVERDUE_US		100000
/*
 * A release is held back this long, so that it reaches the server together
 * with this backend's next request (typically the next lock's create) and
 * both share one fsync in the server's group commit; if no request comes,
 * the watchdog sends it when the time is up.  Short against a write's
 * fsync, so others hardly wait longer for the lock.  Only a backend that
 * took its last lock within this time of the release before it is held
 * back at all (a loop); any other release is sent at once, so that a
 * waiter elsewhere does not wait for a lock nobody is about to take.
 */
#define ZK_RELEASE_HOLD_US	2000
/* Least time between routine DNS resolutions of zksync.hosts. */
#define ZK_RESOLVE_DELAY_MS	30000
/* How often the watchdog looks at outstanding requests. */
#define ZK_TICK_MS			50

/* ---- shared with the client's threads, guarded by shared_mu ---- */
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static ZkReq live = {.prev = &live,.next = &live};	/* list head */
static uint64 watch_events = 0;
static bool poke_in_flight = false;

/*
 * Releases in flight: deletes of our nodes that the backend did not wait
 * for (zk_release_node).  One that fails on a connection error is sent
 * again by the watchdog once the client has reconnected, so a released
 * lock never stays behind while the session lives, even if the backend
 * goes idle.
 */
typedef enum ZkReleaseState
{
	REL_HELD_BACK,				/* not sent yet (see ZK_RELEASE_HOLD_US) */
	REL_SENT,
	REL_RETRY					/* failed on a connection error */
} ZkReleaseState;

typedef struct ZkRelease
{
	char	   *path;
	ZkReleaseState state;
	int64		sent_at_us;		/* or, while held back, when released */
	struct ZkRelease *next;
} ZkRelease;
static ZkRelease *releases = NULL;

/* The watchdog thread (see "Stuck requests" above). */
static pthread_t watchdog_thread;
static bool watchdog_running = false;	/* backend-only */
static bool watchdog_stop = false;
static pthread_cond_t watchdog_cv = PTHREAD_COND_INITIALIZER;

#define LOG_RING_SIZE 32
#define LOG_LINE_MAX 300
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_ring[LOG_RING_SIZE][LOG_LINE_MAX];
static int	log_head = 0;		/* next slot to write */
static int	log_count = 0;
static int	log_dropped = 0;

/* Written once by the backend before any thread exists; read by threads. */
static int	event_fd = -1;

/* ---- backend-only state ---- */
static zhandle_t *zh = NULL;
/* when this backend last released a node, 0 once a create followed */
static int64 last_release_us = 0;
/* did the last create follow a release within ZK_RELEASE_HOLD_US? */
static bool relocks_at_once = false;
static bool exit_hook_set = false;
/*
 * The ACL of every node we create.  Without zksync.auth: open to all (so
 * Curator and kazoo clients can share the locks).  With it: everything for
 * our digest identity, read-only for the world, so no other client can
 * delete or change our nodes (deleting needs DELETE on the parent, which
 * is why the lock and barrier directories get this ACL too).
 */
static struct ACL auth_acl_entries[2];
static struct ACL_vector auth_acl = {2, auth_acl_entries};
static struct ACL_vector *node_acl = NULL;

/* settings the current handle was made with */
static char *conn_hosts = NULL;
static char *conn_auth = NULL;
static int	conn_timeout = 0;

/* Does this session carry anything a reconnect would lose? */
static bool
session_in_use(void)
{
	return zksync_holds_exist() || zksync_dbarriers_entered();
}

/* The session is gone: so are our locks and barrier participations. */
static void
forget_session(void)
{
	zksync_forget_session();
	zksync_dbarrier_forget_session();
}

static int64
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ===================================================================
 * Client thread side.  Nothing here may call a PostgreSQL function.
 * ===================================================================
 */

/* client thread: wake the backend's wait loop */
static void
wake_backend(void)
{
	uint64		one = 1;
	ssize_t		r;

	r = write(event_fd, &one, sizeof(one));
	(void) r;					/* a full counter still wakes the reader */
}

static void
unlink_req(ZkReq *req)
{
	req->prev->next = req->next;
	req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

static void
free_req(ZkReq *req)
{
	int			i;

	free(req->path);
	free(req->data);
	free(req->priv);
	for (i = 0; i < req->nchildren; i++)
		free(req->children[i]);
	free(req->children);
	free(req);
}

/* client thread (or backend), shared_mu held: record the outcome */
static void
finish_locked(ZkReq *req, int rc)
{
	req->rc = rc;
	req->done = true;
	if (req->abandoned)
	{
		unlink_req(req);
		free_req(req);
	}
}

/* client thread */
static void
void_done(int rc, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;

	pthread_mutex_lock(&shared_mu);
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

/* client thread */
static void
stat_done(int rc, const struct Stat *stat, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;

	pthread_mutex_lock(&shared_mu);
	if (rc == ZOK && stat)
		req->stat = *stat;
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
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
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
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
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
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
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

/* client thread: a release is done, or must be sent again */
static void
release_done(int rc, const void *data)
{
	ZkRelease  *rel = (ZkRelease *) data;
	ZkRelease **pp;

	pthread_mutex_lock(&shared_mu);
	if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT)
		rel->state = REL_RETRY;
	else
	{
		/* done: deleted, already gone, or gone with the session */
		for (pp = &releases; *pp; pp = &(*pp)->next)
			if (*pp == rel)
			{
				*pp = rel->next;
				break;
			}
		free(rel->path);
		free(rel);
	}
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

/* client thread: the reply to a poke carries nothing we need */
static void
poke_done(int rc, const struct Stat *stat, const void *data)
{
	pthread_mutex_lock(&shared_mu);
	poke_in_flight = false;
	pthread_mutex_unlock(&shared_mu);
}

/*
 * watchdog thread: every ZK_TICK_MS, whatever the backend is doing, send
 * one cheap read if a request is overdue (ZOOKEEPER-4537), and send again
 * the releases that failed on a connection error; and send each held-back
 * release once its ZK_RELEASE_HOLD_US are up.  It calls only the
 * ZooKeeper client (which is thread-safe), never PostgreSQL, and never
 * while holding shared_mu.  It runs only while `zh` is open: close_handle()
 * stops and joins it first.
 */
static void *
watchdog_main(void *arg)
{
	zhandle_t  *h = (zhandle_t *) arg;

	pthread_mutex_lock(&shared_mu);
	while (!watchdog_stop)
	{
		struct timespec until;
		int64		now;
		bool		poke = false;
		int			nresend = 0;
		char	   *resend[16];
		ZkRelease  *resend_rel[16];
		ZkReq	   *req;
		ZkRelease  *rel;
		bool		connected;
		int			i;
		int64		sleep_us = ZK_TICK_MS * 1000L;

		/* wake in time for the earliest held-back release */
		now = mono_us();
		for (rel = releases; rel; rel = rel->next)
			if (rel->state == REL_HELD_BACK)
				sleep_us = Min(sleep_us, Max(rel->sent_at_us + ZK_RELEASE_HOLD_US - now, 100));
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += sleep_us * 1000L;
		while (until.tv_nsec >= 1000000000L)
		{
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&watchdog_cv, &shared_mu, &until);
		if (watchdog_stop)
			break;

		now = mono_us();
		for (rel = releases; rel && nresend < 16; rel = rel->next)
			if (rel->state == REL_HELD_BACK &&
				now - rel->sent_at_us >= ZK_RELEASE_HOLD_US)
			{
				rel->state = REL_SENT;
				rel->sent_at_us = now;
				resend[nresend] = rel->path;
				resend_rel[nresend++] = rel;
			}
		connected = zoo_state(h) == ZOO_CONNECTED_STATE;
		if (connected && !poke_in_flight)
		{
			for (req = live.next; req != &live && !poke; req = req->next)
				if (!req->done && now - req->sent_at_us > ZK_OVERDUE_US)
					poke = true;
			for (rel = releases; rel && !poke; rel = rel->next)
				if (rel->state == REL_SENT && now - rel->sent_at_us > ZK_OVERDUE_US)
					poke = true;
			if (poke)
				poke_in_flight = true;
		}
		for (rel = releases; connected && rel && nresend < 16; rel = rel->next)
			if (rel->state == REL_RETRY)
			{
				rel->state = REL_SENT;
				rel->sent_at_us = now;
				resend[nresend] = rel->path;
				resend_rel[nresend++] = rel;
			}
		pthread_mutex_unlock(&shared_mu);

		if (poke && zoo_aexists(h, "/", 0, poke_done, NULL) != ZOK)
		{
			pthread_mutex_lock(&shared_mu);
			poke_in_flight = false;
			pthread_mutex_unlock(&shared_mu);
		}
		/* rel->path stays valid: only release_done frees, after this send */
		for (i = 0; i < nresend; i++)
			if (zoo_adelete(h, resend[i], -1, release_done, resend_rel[i]) != ZOK)
				release_done(ZCONNECTIONLOSS, resend_rel[i]);

		pthread_mutex_lock(&shared_mu);
	}
	pthread_mutex_unlock(&shared_mu);
	return NULL;
}


/*
 * client thread: the session watcher and every node watch.  We keep no
 * per-watch state (a watch set by a wait that was cancelled may fire much
 * later); waiters count events and re-read ZooKeeper when the count moves.
 */
static void
watcher(zhandle_t *h, int type, int state, const char *path, void *ctx)
{
	pthread_mutex_lock(&shared_mu);
	watch_events++;
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

/* client thread: keep the client's log lines for the backend to report */
static void
log_to_ring(const char *message)
{
	pthread_mutex_lock(&log_mu);
	if (log_count == LOG_RING_SIZE)
		log_dropped++;
	else
	{
		strncpy(log_ring[log_head], message, LOG_LINE_MAX - 1);
		log_ring[log_head][LOG_LINE_MAX - 1] = '\0';
		log_head = (log_head + 1) % LOG_RING_SIZE;
		log_count++;
	}
	pthread_mutex_unlock(&log_mu);
}

/* ===================================================================
 * Backend side.
 * ===================================================================
 */

/* Report the client's buffered log lines at DEBUG1. */
static void
drain_client_log(void)
{
	char		lines[LOG_RING_SIZE][LOG_LINE_MAX];
	int			n,
				dropped,
				i,
				first;

	pthread_mutex_lock(&log_mu);
	n = log_count;
	dropped = log_dropped;
	first = (log_head - log_count + LOG_RING_SIZE) % LOG_RING_SIZE;
	for (i = 0; i < n; i++)
		memcpy(lines[i], log_ring[(first + i) % LOG_RING_SIZE], LOG_LINE_MAX);
	log_count = 0;
	log_dropped = 0;
	pthread_mutex_unlock(&log_mu);

	for (i = 0; i < n; i++)
	{
		size_t		len = strlen(lines[i]);

		while (len > 0 && (lines[i][len - 1] == '\n' || lines[i][len - 1] == '\r'))
			lines[i][--len] = '\0';
		elog(DEBUG1, "zookeeper client: %s", lines[i]);
	}
	if (dropped > 0)
		elog(DEBUG1, "zookeeper client: %d log lines dropped", dropped);
}

static void
close_handle(void)
{
	ZkRelease  *rel;

	if (zh == NULL)
		return;
	if (watchdog_running)
	{
		pthread_mutex_lock(&shared_mu);
		watchdog_stop = true;
		pthread_cond_signal(&watchdog_cv);
		pthread_mutex_unlock(&shared_mu);
		pthread_join(watchdog_thread, NULL);
		watchdog_running = false;
	}
	/* joins the client's threads: no callback runs after this */
	zookeeper_close(zh);
	zh = NULL;
	/* requests still linked were answered with ZCLOSING; nobody waits */
	zk_release_all();
	/* the session is closed: the nodes still to be released are gone */
	pthread_mutex_lock(&shared_mu);
	while ((rel = releases) != NULL)
	{
		releases = rel->next;
		free(rel->path);
		free(rel);
	}
	poke_in_flight = false;
	pthread_mutex_unlock(&shared_mu);
}

/* on_proc_exit: close the session so our ephemeral nodes go at once */
static void
close_at_exit(int code, Datum arg)
{
	close_handle();
}

/*
 * Send the held-back releases now, ahead of a request of ours: the server
 * applies a session's requests in order, and the release and the request
 * share one fsync.
 */
static void
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
		if (zoo_adelete(zh, send[i]->path, -1, release_done, send[i]) != ZOK)
			release_done(ZCONNECTIONLOSS, send[i]);
}

static ZkReq *
req_new_noflush(void)
{
	ZkReq	   *req = calloc(1, sizeof(ZkReq));


	if (req == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	req->sent_at_us = mono_us();
	pthread_mutex_lock(&shared_mu);
	req->next = &live;
	req->prev = live.prev;
	live.prev->next = req;
	live.prev = req;
	pthread_mutex_unlock(&shared_mu);
	return req;
}

static ZkReq *
req_new(void)
{
	flush_held_releases();
	return req_new_noflush();
}

/* The client refused the request outright: its completion will not run. */
static ZkReq *
req_sent(ZkReq *req, int rc)
{
	if (rc != ZOK)
	{
		pthread_mutex_lock(&shared_mu);
		finish_locked(req, rc);
		pthread_mutex_unlock(&shared_mu);
	}
	return req;
}

/*
 * Free a request, or abandon it to its completion if it is still in
 * flight.  NULL is allowed.
 */
void
zk_release(ZkReq *req)
{
	if (req == NULL)
		return;
	pthread_mutex_lock(&shared_mu);
	if (req->done)
	{
		unlink_req(req);
		free_req(req);
	}
	else
		req->abandoned = true;
	pthread_mutex_unlock(&shared_mu);
}

/*
 * Release every request.  For abort paths and session close only: no
 * request pointer held by the backend may be used afterwards.
 */
void
zk_release_all(void)
{
	ZkReq	   *req,
			   *next;

	pthread_mutex_lock(&shared_mu);
	for (req = live.next; req != &live; req = next)
	{
		next = req->next;
		if (req->done)
		{
			unlink_req(req);
			free_req(req);
		}
		else
			req->abandoned = true;
	}
	pthread_mutex_unlock(&shared_mu);
}

static bool
handle_is_dead(void)
{
	int			state;

	if (zh == NULL)
		return true;
	state = zoo_state(zh);
	return state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE;
}

static bool
handle_is_connected(void)
{
	return zh != NULL && zoo_state(zh) == ZOO_CONNECTED_STATE;
}

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
 * The wait loop.  Sleeps until `req` (if not NULL) is done, or the watch
 * counter moves past `events_seen` (if `req` is NULL), or `deadline` (0: none)
 * passes.  Session state changes count as watch events.
 *
 * Unless `nothrow`, interrupts are serviced, so this may throw (query
 * cancel, statement_timeout, termination).  With `nothrow` it never throws;
 * callers in abort and commit callbacks must pass a deadline then.
 */
ZkWaitResult
zk_wait(ZkReq *req, uint64 events_seen, TimestampTz deadline, bool nothrow)
{
	for (;;)
	{
		bool		ready;
		long		timeout_ms = -1;
		int			rc;

		pthread_mutex_lock(&shared_mu);
		ready = req ? req->done : (watch_events != events_seen);
		pthread_mutex_unlock(&shared_mu);
		if (ready)
			return req ? ZKW_DONE : ZKW_EVENT;
		/* a watch wait also ends when another backend hands us the lock */
		if (req == NULL && zksync_handoff_received())
			return ZKW_EVENT;
		if (req == NULL && handle_is_dead())
			return ZKW_EVENT;

		if (deadline != 0)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= deadline)
				return ZKW_TIMEOUT;
			timeout_ms = (long) ((deadline - now + 999) / 1000);
		}
		rc = WaitLatchOrSocket(MyLatch,
							   WL_LATCH_SET | WL_SOCKET_READABLE |
							   WL_EXIT_ON_PM_DEATH |
							   (timeout_ms >= 0 ? WL_TIMEOUT : 0),
							   event_fd, timeout_ms, PG_WAIT_EXTENSION);
		if (rc & WL_SOCKET_READABLE)
		{
			uint64		buf;
			ssize_t		r;

			r = read(event_fd, &buf, sizeof(buf));
			(void) r;
		}
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			if (!nothrow)
				CHECK_FOR_INTERRUPTS();
		}
		drain_client_log();
	}
}

static void
open_handle(void)
{
	sigset_t	all,
				old;

	if (event_fd < 0)
	{
		event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (event_fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("zksync could not create an eventfd: %m")));
	}
	if (!exit_hook_set)
	{
		on_proc_exit(close_at_exit, 0);
		exit_hook_set = true;
	}

	zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);

	/* The client's threads inherit this mask: they take no signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	zh = zookeeper_init2(zksync_hosts, watcher, zksync_session_timeout,
						 NULL, NULL, 0, log_to_ring);
	if (zh != NULL)
	{
		/*
		 * By default the client resolves every host name of the connect
		 * string each time its I/O thread polls, that is for every request
		 * and reply: some netlink round trips each, a good part of a lock
		 * cycle.  Resolve at most every ZK_RESOLVE_DELAY_MS instead (and
		 * always after a connection loss).
		 */
		zoo_set_servers_resolution_delay(zh, ZK_RESOLVE_DELAY_MS);
		watchdog_stop = false;
		watchdog_running =
			pthread_create(&watchdog_thread, NULL, watchdog_main, zh) == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (zh == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not start a ZooKeeper session for \"%s\": %m",
						zksync_hosts)));

	node_acl = &ZOO_OPEN_ACL_UNSAFE;
	if (zksync_auth && zksync_auth[0])
	{
		/* sent before any request of ours: the client orders them */
		zoo_add_auth(zh, "digest", zksync_auth, strlen(zksync_auth), NULL, NULL);
		auth_acl_entries[0].perms = ZOO_PERM_ALL;
		auth_acl_entries[0].id = ZOO_AUTH_IDS;
		auth_acl_entries[1].perms = ZOO_PERM_READ;
		auth_acl_entries[1].id = ZOO_ANYONE_ID_UNSAFE;
		node_acl = &auth_acl;
	}
	free(conn_hosts);
	conn_hosts = strdup(zksync_hosts);
	conn_timeout = zksync_session_timeout;
	free(conn_auth);
	conn_auth = strdup(zksync_auth ? zksync_auth : "");
}

/*
 * Wait up to `timeout_ms` for the current handle to be connected.  Returns
 * ZOK, ZSESSIONEXPIRED, or ZCONNECTIONLOSS (timed out).  Throws on
 * interrupts unless nothrow.
 */
static int
await_connected(int timeout_ms, bool nothrow)
{
	TimestampTz deadline;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	for (;;)
	{
		uint64		seen = zk_events_seen();

		if (handle_is_dead())
			return ZSESSIONEXPIRED;
		if (handle_is_connected())
			return ZOK;
		if (zk_wait(NULL, seen, deadline, nothrow) == ZKW_TIMEOUT)
			return handle_is_connected() ? ZOK : ZCONNECTIONLOSS;
	}
}

/*
 * Wait until the current handle is connected, for at most
 * zksync.connect_timeout.  Returns ZOK, ZSESSIONEXPIRED or
 * ZCONNECTIONLOSS (timed out).  Throws on interrupts unless nothrow.
 */
int
zk_await_reconnect(bool nothrow)
{
	return await_connected(zksync_connect_timeout, nothrow);
}

/*
 * Make sure there is a connected session, opening one if needed.
 * ERROR (class 08) if none can be had within zksync.connect_timeout.
 *
 * A session whose settings (zksync.hosts, zksync.session_timeout) changed
 * is replaced only while nothing is held on it: a change never silently
 * drops held locks.
 */
void
zk_connect(void)
{
	int			rc;

	drain_client_log();
	if (zh != NULL && handle_is_dead())
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("ZooKeeper session 0x%llx expired; every lock it held is lost",
						(unsigned long long) zoo_client_id(zh)->client_id)));
		close_handle();
		forget_session();
	}
	if (zh != NULL && !session_in_use() &&
		(strcmp(conn_hosts, zksync_hosts) != 0 ||
		 strcmp(conn_auth, zksync_auth ? zksync_auth : "") != 0 ||
		 conn_timeout != zksync_session_timeout))
		close_handle();

	if (zh == NULL)
		open_handle();

	rc = zk_await_reconnect(false);
	if (rc == ZOK)
		return;
	if (rc == ZSESSIONEXPIRED)
	{
		/* brand-new session refused, or an old one expired while waiting */
		close_handle();
		forget_session();
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("ZooKeeper session expired while connecting to \"%s\"",
						conn_hosts ? conn_hosts : zksync_hosts)));
	}
	/* not reachable in time; keep a session that holds locks, it may recover */
	if (!session_in_use())
		close_handle();
	ereport(ERROR,
			(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
			 errmsg("could not connect to ZooKeeper at \"%s\" within %d ms",
					zksync_hosts, zksync_connect_timeout),
			 errhint("Check zksync.hosts and that the ensemble is running.")));
}

/*
 * End the session now (its ephemeral nodes go with it) and mark every hold
 * lost.  For when we cannot tell whether a node of ours is left behind.
 */
void
zk_reset_session(void)
{
	close_handle();
	forget_session();
}

/*
 * Is the session alive right now?  For the commit check (SPEC point 9).
 *
 * While the client is connected it has heard from the server within the
 * last 2/3 of the session timeout (else it drops the connection), and the
 * server expires a session only after a full timeout of silence: so a
 * connected session is alive.  While disconnected we cannot know: wait
 * for the client to reconnect (alive) or learn of the expiry, for at most
 * the session timeout.  Returns false if the session is gone or could not
 * be confirmed; the caller treats its locks as lost.  May throw on
 * interrupts.
 */
bool
zk_confirm_session_alive(void)
{
	int			timeout;

	if (zh == NULL || handle_is_dead())
		return false;
	timeout = zoo_recv_timeout(zh);
	return await_connected(timeout > 0 ? timeout : zksync_session_timeout,
						   false) == ZOK;
}

bool
zk_session_usable(void)
{
	return zh != NULL && !handle_is_dead();
}

/* Is the session connected to a server right now? */
bool
zk_is_connected(void)
{
	return zh != NULL && zoo_state(zh) == ZOO_CONNECTED_STATE;
}

/* The connect string of the open session ("" if none). */
const char *
zk_session_hosts(void)
{
	return (zh != NULL && conn_hosts) ? conn_hosts : "";
}

int64
zk_session_id(void)
{
	if (zh == NULL)
		return 0;
	return zoo_client_id(zh)->client_id;
}

/* The session timeout the server granted, in ms (0 if no session). */
int
zk_negotiated_timeout(void)
{
	return zh ? zoo_recv_timeout(zh) : 0;
}

const char *
zk_session_state_name(void)
{
	int			state;

	if (zh == NULL)
		return "closed";
	state = zoo_state(zh);
	if (state == ZOO_CONNECTED_STATE)
		return "connected";
	if (state == ZOO_EXPIRED_SESSION_STATE)
		return "expired";
	if (state == ZOO_AUTH_FAILED_STATE)
		return "auth_failed";
	if (state == ZOO_READONLY_STATE)
		return "read_only";
	return "connecting";
}

const char *
zk_current_server(char *buf, int len)
{
	const char *server;

	if (!handle_is_connected())
		return NULL;
	server = zoo_get_current_server(zh);
	if (server == NULL)
		return NULL;
	strlcpy(buf, server, len);
	return buf;
}

/* ---- request constructors; the caller must have called zk_connect() ---- */

/*
 * A recipe node's create batched with held-back releases in one multi
 * (see ZK_RELEASE_HOLD_US): one transaction, so one fsync for both.
 */
#define ZK_BATCH_MAX 8
typedef struct ZkBatch
{
	int			nrel;
	ZkRelease  *rels[ZK_BATCH_MAX];
	zoo_op_t	ops[ZK_BATCH_MAX + 1];
	zoo_op_result_t results[ZK_BATCH_MAX + 1];
	char		created[ZKSYNC_PATH_MAX];
} ZkBatch;

/*
 * client thread: a batched create is done.  On failure nothing of the
 * multi happened: releases go back to be sent again (dropped if already
 * gone), and the create reports ZNONODE, "not made, make it again", unless
 * the outcome is unknown (connection loss) or the create itself failed.
 */
static void
batch_done(int rc, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;
	ZkBatch    *b = (ZkBatch *) req->priv;
	char	   *copy = NULL;
	int			i;
	/* outcome unknown, or the session is gone: report as is */
	bool		unknown = (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT ||
						   rc == ZCLOSING || rc == ZINVALIDSTATE ||
						   rc == ZSESSIONEXPIRED);

	if (rc == ZOK)
		copy = strdup(b->created);
	pthread_mutex_lock(&shared_mu);
	for (i = 0; i < b->nrel; i++)
	{
		ZkRelease  *rel = b->rels[i];
		ZkRelease **pp;

		if (rc != ZOK && !unknown && b->results[i].err != ZNONODE)
		{
			rel->state = REL_HELD_BACK;
			continue;
		}
		if (unknown)
		{
			rel->state = REL_RETRY;
			continue;
		}
		for (pp = &releases; *pp; pp = &(*pp)->next)
			if (*pp == rel)
			{
				*pp = rel->next;
				break;
			}
		free(rel->path);
		free(rel);
	}
	if (rc == ZOK && copy == NULL)
		rc = ZSYSTEMERROR;
	else if (rc != ZOK && !unknown)
	{
		int			own = b->results[b->nrel].err;

		rc = (own != ZOK && own != ZRUNTIMEINCONSISTENCY) ? own : ZNONODE;
	}
	req->path = copy;
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

ZkReq *
zk_create(const char *path, const char *data, int len, int flags)
{
	ZkReq	   *req = req_new_noflush();
	ZkBatch    *b = NULL;
	ZkRelease  *rel;
	int			i;

	/* only recipe nodes (ephemeral sequential) carry releases along */
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
			if (b == NULL)
			{
				b = calloc(1, sizeof(ZkBatch));
				if (b == NULL)
					break;
			}
			if (b->nrel == ZK_BATCH_MAX)
				break;
			rel->state = REL_SENT;
			rel->sent_at_us = mono_us();
			b->rels[b->nrel++] = rel;
		}
		pthread_mutex_unlock(&shared_mu);
	}
	flush_held_releases();		/* any left over go on their own */
	if (b == NULL || b->nrel == 0)
	{
		free(b);
		return req_sent(req, zoo_acreate2(zh, path, data, len, node_acl, flags,
										  create_done, req));
	}
	for (i = 0; i < b->nrel; i++)
		zoo_delete_op_init(&b->ops[i], b->rels[i]->path, -1);
	zoo_create_op_init(&b->ops[b->nrel], path, data, len, node_acl, flags,
					   b->created, sizeof(b->created));
	req->priv = b;
	i = zoo_amulti(zh, b->nrel + 1, b->ops, b->results, batch_done, req);
	if (i != ZOK)
		batch_done(i, req);		/* ZINVALIDSTATE, or a marshalling error */
	return req;
}

ZkReq *
zk_delete(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, zoo_adelete(zh, path, -1, void_done, req));
}

ZkReq *
zk_exists(const char *path, bool watch)
{
	ZkReq	   *req = req_new();

	if (watch)
		return req_sent(req, zoo_awexists(zh, path, watcher, NULL,
										  stat_done, req));
	return req_sent(req, zoo_aexists(zh, path, 0, stat_done, req));
}

ZkReq *
zk_get(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, zoo_aget(zh, path, 0, data_done, req));
}

ZkReq *
zk_get_children(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, zoo_aget_children(zh, path, 0, strings_done, req));
}

/*
 * Delete one of our nodes without waiting for the reply.  In a backend
 * that relocks at once, the delete is held back up to ZK_RELEASE_HOLD_US
 * (see there); it is sent ahead of this backend's next request; the server applies a session's requests in
 * order, so everything this backend does later sees the node gone, and
 * other clients see it within a few milliseconds.  If the
 * delete fails on a connection error, the watchdog sends it again after
 * the reconnect; if the session ends, the node goes with it.  Never throws
 * except on out-of-memory, so it may run in commit and abort callbacks.
 */
void
zk_release_node(const char *path)
{
	ZkRelease  *rel;

	if (zh == NULL || handle_is_dead())
		return;					/* the node is gone with the session */
	rel = malloc(sizeof(ZkRelease));
	if (rel)
		rel->path = strdup(path);
	if (rel == NULL || rel->path == NULL)
	{
		free(rel);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	rel->state = REL_HELD_BACK;
	rel->sent_at_us = mono_us();
	last_release_us = rel->sent_at_us;
	pthread_mutex_lock(&shared_mu);
	rel->next = releases;
	releases = rel;
	pthread_cond_signal(&watchdog_cv);	/* to send it in time */
	pthread_mutex_unlock(&shared_mu);
	if (!watchdog_running || !relocks_at_once)
		flush_held_releases();
}

/* Wait (interruptibly, no deadline) for a request; return its rc. */
int
zk_call(ZkReq *req)
{
	zk_wait(req, 0, 0, false);
	return req->rc;
}

/* Errors after which the same session may still be reachable. */
bool
zk_is_connection_error(int rc)
{
	return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT ||
		rc == ZCLOSING || rc == ZINVALIDSTATE;
}

void
zk_report_error(int rc, const char *what, const char *path)
{
	int			code = ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;

	if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZCLOSING)
		code = ERRCODE_CONNECTION_FAILURE;
	else if (rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE)
		code = ERRCODE_CONNECTION_FAILURE;
	else if (rc == ZNOAUTH || rc == ZAUTHFAILED)
		code = ERRCODE_INSUFFICIENT_PRIVILEGE;
	ereport(ERROR,
			(errcode(code),
			 errmsg("ZooKeeper %s of \"%s\" failed: %s", what, path, zerror(rc))));
}
