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
 * the server (SPEC point 12).  It runs whether or not the backend waits,
 * so a delete in flight while the backend sits idle is not stuck either.
 * Like the client's threads, it never calls PostgreSQL and takes no
 * signals.
 *
 * Releases and cleanup.  A release (zk_release_node) is queued before it
 * is sent and stays queued until the server has applied it or the session
 * has ended: one that fails on a connection error, or is made while
 * disconnected, is sent again by the watchdog once the client has
 * reconnected.  The caller may wait for it (zksync.synchronous_release),
 * at most a bound, and not while disconnected or once the server has gone
 * silent.  A create whose outcome is unknown when its wait is interrupted
 * becomes a "hunt" (zk_abandon_create) that the client's threads finish:
 * the node is deleted when the reply comes, or found by its GUID after a
 * sync and a listing once reconnected.  So an interrupted wait returns at
 * once, and nothing is left behind.
 *
 * Known alive.  The client's own state says "connected" after the process
 * was stopped, until its I/O thread has run again, although the server may
 * have expired the session meanwhile.  So we remember when the newest
 * request that the server answered was sent: the session lives at least a
 * session timeout after that (zk_session_known_alive), and grants and the
 * commit check rely on that, or ask the server (zk_confirm_session_alive).
 *
 * Session loss.  A lost connection (ZCONNECTIONLOSS) is not a lost session:
 * the client reconnects to another server with the same session, and the
 * callers retry.  An expired session is final: every ephemeral node is
 * gone.  zk_notice_session_end() notices it without waiting and tells the
 * recipes that registered (zk_register_session_user), whose holds become
 * "lost"; the next zk_connect() opens a new session.  At backend exit the
 * session is closed, so the server drops our ephemeral nodes at once.
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
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "zksync.h"

/* A request outstanding longer than this gets a poke (ZOOKEEPER-4537). */
#define ZK_OVERDUE_US		100000
/*
 * A release stops waiting when the server has answered nothing, not even
 * that poke, for this long (see server_silent_since).
 */
#define ZK_SILENT_US		300000
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
static int64 poke_sent_us = 0;

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
	ZkReq	   *notify;			/* finished once the delete is applied, or
								 * must wait for a reconnect; then NULL */
	struct ZkRelease *next;
} ZkRelease;
static ZkRelease *releases = NULL;

/*
 * A delete of ours that the server refused (ZNOAUTH, ZSESSIONMOVED, ...):
 * the node would stay while the session lives.  The backend hears of it
 * (zk_notice_session_end), says so and closes the session, so the node
 * goes with it.  Only the first refusal is kept; one is enough to close.
 */
static int	refused_rc = ZOK;
static char refused_path[ZKSYNC_PATH_MAX];

/*
 * Abandoned creates ("hunts").  A wait that ends by an ERROR may not know
 * whether its create reached the server: the reply is still in flight, or
 * was lost with the connection.  It leaves a hunt and returns at once; the
 * client's threads finish the job without the backend:
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
 */
typedef enum ZkHuntState
{
	HUNT_CREATE,
	HUNT_SEARCH,
	HUNT_LISTING
} ZkHuntState;

typedef struct ZkHunt
{
	char	   *dir;
	char	   *guid;
	ZkHuntState state;
	ZkReq	   *notify;			/* finished when the hunt is over; or NULL */
	struct ZkHunt *next;
} ZkHunt;
static ZkHunt *hunts = NULL;

/*
 * Held nodes.  Every node a recipe holds (a lock node, a lease, a double
 * barrier's participant) is watched from its grant on, so that a delete by
 * another client is noticed at once and the hold is lost, as after an
 * expiry (docs/design.md, "Held nodes are watched").  The watch is set by
 * a getData sent right after the grant and not waited for: its reply says
 * whether the node was still there and ours, and from then on the watch
 * fires when it goes.  Nothing slips between: a delete before the getData
 * makes it answer ZNONODE.  A getData sets no watch on a node that is
 * gone, so nothing is left behind in the client (an exists would leave a
 * creation watch).  A change of the node's data consumes the watch: it is
 * set again.  A getData that failed on a connection error is sent again by
 * the watchdog once connected; the client re-registers the watches it
 * holds after a reconnect, and the server fires them for nodes deleted
 * meanwhile.
 *
 * A ZkHeld is shared with the client's threads (it is the context of the
 * getData and of the watch), so it is freed only once both sides are done
 * with it: the backend has dropped it (zk_held_drop) and the client holds
 * no request or watch with it (`in_client` false), or the handle is
 * closed (the client's threads are joined then).  All of it is guarded by
 * shared_mu.
 */
typedef enum ZkHeldState
{
	HELD_ARMING,				/* the getData is in flight */
	HELD_RETRY,					/* it failed on a connection error */
	HELD_ARMED,					/* present and ours, watched */
	HELD_GONE					/* deleted, or not ours */
} ZkHeldState;

struct ZkHeld
{
	char	   *path;
	int64		session;		/* the session that owns the node */
	ZkHeldState state;
	bool		in_client;		/* a getData or a watch refers to it */
	bool		dropped;		/* the backend let go of it */
	int64		sent_at_us;		/* when the getData was sent */
	struct ZkHeld *prev;
	struct ZkHeld *next;
};
static ZkHeld helds = {.prev = &helds,.next = &helds};	/* list head */
/* how many held nodes were found gone (the backend compares) */
static uint64 helds_gone = 0;
/* the backend waits for a held node's getData (zk_held_confirm) */
static bool held_awaited = false;
/* helds_gone when the recipes last looked (backend-only) */
static uint64 helds_gone_seen = 0;

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
/* The backend's wait: its latch, postmaster death and event_fd. */
static WaitEventSet *wait_set = NULL;

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
 * is why the lock and barrier directories get this ACL too; tree.c makes
 * sure that {root} and the directories under it are ours as well).
 */
static struct ACL auth_acl_entries[2];
static struct ACL_vector auth_acl = {2, auth_acl_entries};
static struct ACL_vector *node_acl = NULL;

/*
 * Releases made between zk_release_batch_begin() and _end() are sent
 * together at the end: several deletes in one multi, one write in the
 * server (a transaction that held many locks ends in one round trip).
 */
#define ZK_DELETE_BATCH 500
static bool batching = false;
static ZkRelease *batch[ZK_DELETE_BATCH];
static int	nbatch = 0;
/* the handle the client's threads resend a failed multi's deletes on */
static zhandle_t *zh_of_deletes = NULL;
static void send_batch(void);

/*
 * The session was closed for cause (a refused release, out of memory in a
 * release) in a place that may not touch the recipes' tables; the next
 * zk_notice_session_end() tells the recipes that their holds are lost.
 */
static bool lost_unnoticed = false;

/* settings the current handle was made with */
static char *conn_hosts = NULL;
static char *conn_auth = NULL;
static int	conn_timeout = 0;

/*
 * The recipes that keep state on the session register here
 * (zk_register_session_user), in the manner of RegisterXactCallback: this
 * layer asks them how many nodes they keep on the session (anything a
 * reconnect would lose; and the total that zksync.max_holds bounds), and
 * tells them when it has ended.  It calls no recipe by name.
 */
#define MAX_SESSION_USERS 8
static struct
{
	int			(*nodes) (void);
	void		(*forget) (void);
	void		(*lost_nodes) (void);
}			session_users[MAX_SESSION_USERS];
static int	n_session_users = 0;

/*
 * What runs at the end of zk_connect() on a connected session (the
 * tree's ACL check, tree.c); it keeps its own cache, so that it costs no
 * round trip after a session's first call.  May throw.
 */
static void (*session_check) (void) = NULL;

void
zk_register_session_check(void (*check) (void))
{
	session_check = check;
}

void
zk_register_session_user(int (*nodes) (void), void (*forget) (void),
						 void (*lost_nodes) (void))
{
	if (n_session_users == MAX_SESSION_USERS)
		elog(ERROR, "too many zksync session users");
	session_users[n_session_users].nodes = nodes;
	session_users[n_session_users].forget = forget;
	session_users[n_session_users].lost_nodes = lost_nodes;
	n_session_users++;
}

/*
 * How many nodes the recipes hold or wait with on this session (for
 * zksync.max_holds, SPEC point 18), as they count them.
 */
int
zk_session_nodes(void)
{
	int			i,
				n = 0;

	for (i = 0; i < n_session_users; i++)
		n += session_users[i].nodes();
	return n;
}

/* Does this session carry anything a reconnect would lose? */
static bool
session_in_use(void)
{
	return zk_session_nodes() > 0;
}

/* The session is gone: so is everything the recipes kept on it. */
static void
forget_session(void)
{
	int			i;

	for (i = 0; i < n_session_users; i++)
		session_users[i].forget();
}

/*
 * Microseconds on a clock that keeps running while the process is stopped
 * and while the machine sleeps: a pause must count as time passed.
 */
static int64
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
	if (req->priv_free)
		req->priv_free(req->priv);
	else
		free(req->priv);
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
static bool
rc_is_answer(int rc)
{
	return rc == ZOK || rc == ZNONODE || rc == ZNODEEXISTS || rc == ZNOAUTH ||
		rc == ZBADVERSION || rc == ZNOTEMPTY || rc == ZNOCHILDRENFOREPHEMERALS ||
		rc == ZINVALIDACL;
}

/* client thread (or backend), shared_mu held: a request sent then was answered */
static void
note_answer_locked(int rc, int64 sent_us)
{
	if (!rc_is_answer(rc))
		return;
	if (sent_us > answered_sent_us)
		answered_sent_us = sent_us;
	answered_at_us = mono_us();
}

static void hunt_create_done_locked(ZkReq *req, int rc);
static void check_refused(void);

/* client thread (or backend), shared_mu held: record the outcome */
static void
finish_locked(ZkReq *req, int rc)
{
	req->rc = rc;
	req->done = true;
	note_answer_locked(rc, req->sent_at_us);
	if (req->hunt)
		hunt_create_done_locked(req, rc);
	if (req->abandoned)
	{
		unlink_req(req);
		free_req(req);
	}
}

/* shared_mu held: tell a waiting backend (if any) and forget the request */
static void
notify_locked(ZkReq **notify, int rc)
{
	if (*notify)
	{
		finish_locked(*notify, rc);
		*notify = NULL;
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
			n = acl->count;		/* a NULL string left by a failed strdup
								 * is freed with the request harmlessly */
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
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

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
		notify_locked(&rel->notify, rc);
	}
	else
	{
		/* deleted, already gone, gone with the session, or refused */
		if (rc != ZOK && rc != ZNONODE && rc != ZSESSIONEXPIRED &&
			rc != ZCLOSING && rc != ZINVALIDSTATE && refused_rc == ZOK)
		{
			refused_rc = rc;
			strncpy(refused_path, rel->path, sizeof(refused_path) - 1);
			refused_path[sizeof(refused_path) - 1] = '\0';
		}
		notify_locked(&rel->notify, rc);
		drop_release_locked(rel);
	}
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

/*
 * client thread or backend, shared_mu held: queue the delete of `path` for
 * the watchdog to send (it sends REL_RETRY releases once connected).
 * Returns NULL if out of memory.
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
	rel->next = releases;
	releases = rel;
	pthread_cond_signal(&watchdog_cv);
	return rel;
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
	notify_locked(&hunt->notify, rc);
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
hunt_create_done_locked(ZkReq *req, int rc)
{
	ZkHunt	   *hunt = req->hunt;

	req->hunt = NULL;
	if (rc == ZOK && req->path)
	{
		/* the release takes over telling the backend */
		if (queue_release_locked(req->path, hunt->notify))
			hunt->notify = NULL;
		else
		{
			hunt->state = HUNT_SEARCH;
			return;
		}
		drop_hunt_locked(hunt, ZOK);
	}
	else if (rc_is_answer(rc) || rc == ZSESSIONEXPIRED || rc == ZCLOSING)
		drop_hunt_locked(hunt, rc);	/* nothing was made, or gone already */
	else
	{
		hunt->state = HUNT_SEARCH;
		pthread_cond_signal(&watchdog_cv);
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
				hunt->notify = NULL;
			else if (refused_rc == ZOK)
			{
				/* out of memory: the session must go, with the node */
				refused_rc = ZSYSTEMERROR;
				strncpy(refused_path, path, sizeof(refused_path) - 1);
				refused_path[sizeof(refused_path) - 1] = '\0';
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
		if (refused_rc == ZOK)
		{
			refused_rc = rc;
			strncpy(refused_path, hunt->dir, sizeof(refused_path) - 1);
			refused_path[sizeof(refused_path) - 1] = '\0';
		}
		drop_hunt_locked(hunt, rc);
	}
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

/* shared_mu held: unlink and free a held node that both sides are done with */
static void
held_free_locked(ZkHeld *h)
{
	h->prev->next = h->next;
	h->next->prev = h->prev;
	free(h->path);
	free(h);
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

/* client thread (or watchdog): send a held node's getData, which sets its watch */
static void held_get_done(int rc, const char *value, int value_len,
						  const struct Stat *stat, const void *data);

static void
held_send(zhandle_t *handle, ZkHeld *h)
{
	if (zoo_awget(handle, h->path, held_watcher, h, held_get_done, h) != ZOK)
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
			pthread_cond_signal(&watchdog_cv);
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
	bool		again = false;

	if (type == ZOO_SESSION_EVENT)
		return;
	pthread_mutex_lock(&shared_mu);
	if (type == ZOO_CHANGED_EVENT && !h->dropped && h->state != HELD_GONE)
	{
		again = true;
		h->sent_at_us = mono_us();
		h->state = HELD_ARMING;
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
			pthread_cond_signal(&watchdog_cv);
		}
	}
	pthread_mutex_unlock(&shared_mu);
	if (again)
		held_send(handle, h);
	if (wake)
		wake_backend();
}

/* client thread: a poke's reply says only that the session is alive */
static void
poke_done(int rc, const struct Stat *stat, const void *data)
{
	pthread_mutex_lock(&shared_mu);
	poke_in_flight = false;
	note_answer_locked(rc, poke_sent_us);
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
		ZkHunt	   *search[4];
		ZkHunt	   *hunt;
		int			nsearch = 0;
		ZkHeld	   *arm[16];
		ZkHeld	   *held;
		int			narm = 0;
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
			for (held = helds.next; held != &helds && !poke; held = held->next)
				if (held->state == HELD_ARMING && held->in_client &&
					now - held->sent_at_us > ZK_OVERDUE_US)
					poke = true;
			if (poke)
			{
				poke_in_flight = true;
				poke_sent_us = now;
			}
		}
		for (rel = releases; connected && rel && nresend < 16; rel = rel->next)
			if (rel->state == REL_RETRY)
			{
				rel->state = REL_SENT;
				rel->sent_at_us = now;
				resend[nresend] = rel->path;
				resend_rel[nresend++] = rel;
			}
		for (held = helds.next; connected && held != &helds && narm < 16;
			 held = held->next)
			if (held->state == HELD_RETRY && !held->in_client && !held->dropped)
			{
				held->state = HELD_ARMING;
				held->in_client = true;
				held->sent_at_us = now;
				arm[narm++] = held;
			}
		for (hunt = hunts; connected && hunt && nsearch < 4; hunt = hunt->next)
			if (hunt->state == HUNT_SEARCH)
			{
				hunt->state = HUNT_LISTING;
				search[nsearch++] = hunt;
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
		/* a held node in the client's hands is not freed */
		for (i = 0; i < narm; i++)
			held_send(h, arm[i]);
		/* likewise a hunt: only hunt_list_done frees it */
		for (i = 0; i < nsearch; i++)
		{
			zoo_async(h, search[i]->dir, hunt_sync_done, NULL);
			if (zoo_aget_children(h, search[i]->dir, 0, hunt_list_done,
								  search[i]) != ZOK)
				hunt_list_done(ZCONNECTIONLOSS, NULL, search[i]);
		}

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
	/* the session is closed: the nodes still to be released are gone */
	pthread_mutex_lock(&shared_mu);
	while ((rel = releases) != NULL)
	{
		notify_locked(&rel->notify, ZCLOSING);
		drop_release_locked(rel);
	}
	while (hunts != NULL)
		drop_hunt_locked(hunts, ZCLOSING);
	/* the client's threads are gone: nothing refers to a held node now */
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
	}
	nbatch = 0;					/* those releases are gone too */
	poke_in_flight = false;
	answered_sent_us = 0;
	answered_at_us = 0;
	refused_rc = ZOK;
	pthread_mutex_unlock(&shared_mu);

	/*
	 * Every request still linked is done now (the client answered those in
	 * flight with ZCLOSING), but the backend may still hold some: a close
	 * for cause can come from deep inside an operation that has listings
	 * pipelined.  They stay until their owner releases them, or until the
	 * transaction ends (zk_release_all).
	 */
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

/* A new request, linked into `live`; NULL if out of memory.  Never throws. */
static ZkReq *
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
	pthread_mutex_unlock(&shared_mu);
	return req;
}

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

	/* an ERROR may have left a batch open: send it */
	zk_release_batch_end();

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
 * The wait loop's one step.  Sleep until a reply, a watch, a hand-off or an interrupt may have changed
 * something, or `deadline` (0: none) passes.  Returns false if the
 * deadline has passed.  Services interrupts (so may throw) unless
 * `nothrow`.
 */
static bool
sleep_once(TimestampTz deadline, bool nothrow)
{
	long		timeout_ms = -1;
	WaitEvent	event;

	if (deadline != 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (now >= deadline)
			return false;
		timeout_ms = (long) ((deadline - now + 999) / 1000);
	}
	if (WaitEventSetWait(wait_set, timeout_ms, &event, 1, PG_WAIT_EXTENSION) == 1)
	{
		if (event.events & WL_SOCKET_READABLE)
		{
			uint64		buf;
			ssize_t		r;

			r = read(event_fd, &buf, sizeof(buf));
			(void) r;
		}
		if (event.events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			if (!nothrow)
				CHECK_FOR_INTERRUPTS();
		}
	}
	drain_client_log();
	return true;
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
		if (!sleep_once(deadline, nothrow))
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

/*
 * Has the server been silent since `since_us` (mono_us), for longer than
 * ZK_SILENT_US?  Then the client may still think itself connected (it
 * notices a dead connection only after 2/3 of the session timeout), but a
 * release need not wait for an answer that is not coming: the watchdog's
 * ZOOKEEPER-4537 read went out after ZK_OVERDUE_US and was not answered
 * either.  A slow but live server answers that read at once (it needs no
 * fsync), so this does not cut short a release that is merely slow.
 */
static bool
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
static TimestampTz
silence_check_deadline(TimestampTz deadline)
{
	TimestampTz soon = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   ZK_SILENT_US / 2000);

	return (deadline != 0 && deadline < soon) ? deadline : soon;
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
	check_refused();
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
	if (wait_set == NULL)
	{
		/* one set for every wait of this backend: no epoll set per wait */
		WaitEventSet *set = CreateWaitEventSet(TopMemoryContext, 3);

		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		AddWaitEventToSet(set, WL_SOCKET_READABLE, event_fd, NULL, NULL);
		wait_set = set;
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
	pthread_mutex_lock(&shared_mu);
	answered_sent_us = 0;
	answered_at_us = 0;
	pthread_mutex_unlock(&shared_mu);
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
		if (zk_wait_event(seen, NULL, deadline, nothrow) == ZKW_TIMEOUT)
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
 * ERROR (class 08) if none can be had within zksync.connect_timeout; and
 * whatever the registered session check throws (42501 for a tree under
 * zksync.root that other clients may change).
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
	zk_notice_session_end();
	if (zh != NULL && !session_in_use() &&
		(strcmp(conn_hosts, zksync_hosts) != 0 ||
		 strcmp(conn_auth, zksync_auth ? zksync_auth : "") != 0 ||
		 conn_timeout != zksync_session_timeout))
		close_handle();

	if (zh == NULL)
		open_handle();

	rc = zk_await_reconnect(false);
	if (rc == ZOK)
	{
		if (session_check)
			session_check();
		return;
	}
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
 * Is the session known alive right now, without asking?  Only if the
 * client is connected and the server answered a request that was sent
 * less than a third of the session timeout ago: the server expires a
 * session only after a whole timeout of silence, so the session lives for
 * two thirds of a timeout more at least.  The client's own state is not
 * enough: after the process was stopped (SIGSTOP, a VM pause), it says
 * "connected" until the client's I/O thread has run again, although the
 * server may have expired the session long ago (SPEC point 14).
 */
bool
zk_session_known_alive(void)
{
	int			timeout;
	int64		answered;

	if (!handle_is_connected())
		return false;
	timeout = zoo_recv_timeout(zh);
	if (timeout <= 0)
		return false;
	pthread_mutex_lock(&shared_mu);
	answered = answered_sent_us;
	pthread_mutex_unlock(&shared_mu);
	return answered != 0 && mono_us() - answered < (int64) timeout * 1000 / 3;
}

/*
 * Is the session alive right now?  For grants (SPEC point 14) and the
 * commit check (point 9).  True at once if it is known alive; otherwise
 * ask the server: an exists on `node` (a node of ours, which must still be
 * ours) or on "/", riding out connection loss, for at most `timeout_ms`.
 * False if the session is gone, the node is not ours any more, or nothing
 * could be confirmed in time; the caller treats its locks as lost.  May
 * throw on interrupts.
 */
bool
zk_confirm_session_alive(const char *node, int timeout_ms)
{
	TimestampTz deadline;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	for (;;)
	{
		ZkReq	   *e;
		int			rc;
		bool		ours;

		if (zh == NULL || handle_is_dead())
			return false;
		if (zk_session_known_alive())
			return true;
		if (!handle_is_connected())
		{
			long		left = (long) ((deadline - GetCurrentTimestamp()) / 1000);

			if (left <= 0 || await_connected((int) left, false) != ZOK)
				return false;
			continue;
		}
		e = zk_exists(node ? node : "/", false);
		if (zk_wait(e, deadline, false) != ZKW_DONE)
		{
			zk_release(e);
			return false;
		}
		rc = e->rc;
		ours = node == NULL || e->stat.ephemeralOwner == zk_session_id();
		zk_release(e);
		if (rc == ZOK)
			return ours;
		if (!zk_is_connection_error(rc))
			return false;		/* our node is gone, or the session */
		/* the connection dropped: the client reconnects or learns of expiry */
	}
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
	return handle_is_connected();
}

/*
 * The zksync.auth the open session authenticated with ("" if none, or no
 * session): a changed setting applies to the next session only.
 */
const char *
zk_session_auth(void)
{
	return (zh != NULL && conn_auth) ? conn_auth : "";
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
		drop_release_locked(rel);
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

/*
 * The ops of one multi we send (creates or deletes), until the reply;
 * malloc'd, as the client's threads free it.
 */
typedef struct ZkMulti
{
	int			n;
	zoo_op_t   *ops;
	zoo_op_result_t *results;
	char	  **bufs;			/* creates: where each created path goes */
	ZkRelease **rels;			/* deletes: the releases they carry out */
} ZkMulti;

static void
free_multi(ZkMulti *m)
{
	int			i;

	if (m == NULL)
		return;
	for (i = 0; m->bufs && i < m->n; i++)
		free(m->bufs[i]);
	free(m->bufs);
	free(m->rels);
	free(m->ops);
	free(m->results);
	free(m);
}

/*
 * A multi of n ops; with `bufs`, a path buffer for each (creates), else a
 * release for each (deletes).  NULL if out of memory.  Never throws.
 */
static ZkMulti *
alloc_multi(int n, bool bufs)
{
	ZkMulti    *m = calloc(1, sizeof(ZkMulti));
	bool		ok;
	int			i;

	if (m == NULL)
		return NULL;
	m->n = n;
	m->ops = calloc(n, sizeof(zoo_op_t));
	m->results = calloc(n, sizeof(zoo_op_result_t));
	if (bufs)
		m->bufs = calloc(n, sizeof(char *));
	else
		m->rels = calloc(n, sizeof(ZkRelease *));
	ok = m->ops && m->results && (bufs ? m->bufs != NULL : m->rels != NULL);
	for (i = 0; ok && bufs && i < n; i++)
		ok = (m->bufs[i] = malloc(ZKSYNC_PATH_MAX)) != NULL;
	if (!ok)
	{
		free_multi(m);
		return NULL;
	}
	return m;
}

/*
 * client thread: a multi of creates is done.  On success the created
 * paths go to req->children (in the order asked), so the backend reads
 * them like a listing.  On failure nothing of the multi happened.
 */
static void
many_done(int rc, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;
	ZkMulti    *m = (ZkMulti *) req->priv;
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
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

/*
 * Create `n` nodes (ephemeral sequential, our ACL, the same data) in one
 * multi: all or none, one request and one transaction in the server.  The
 * created paths come back in req->children.
 */
ZkReq *
zk_create_many(int n, char **paths, const char *data, int len)
{
	ZkMulti    *m = alloc_multi(n, true);
	ZkReq	   *req;
	int			i,
				rc;

	flush_held_releases();
	req = m ? req_alloc() : NULL;
	if (req == NULL)
	{
		free_multi(m);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	for (i = 0; i < n; i++)
		zoo_create_op_init(&m->ops[i], paths[i], data, len, node_acl,
						   ZOO_EPHEMERAL_SEQUENTIAL, m->bufs[i], ZKSYNC_PATH_MAX);
	req->priv = m;
	req->priv_free = (void (*) (void *)) free_multi;
	rc = zoo_amulti(zh, n, m->ops, m->results, many_done, req);
	if (rc != ZOK)
	{
		pthread_mutex_lock(&shared_mu);
		finish_locked(req, rc);
		pthread_mutex_unlock(&shared_mu);
	}
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
		return req_sent(req, zoo_awget(zh, path, watcher, NULL, data_done, req));
	return req_sent(req, zoo_aget(zh, path, 0, data_done, req));
}

/* client thread */
static void
sync_done(int rc, const char *value, const void *data)
{
	ZkReq	   *req = (ZkReq *) data;

	pthread_mutex_lock(&shared_mu);
	finish_locked(req, rc);
	pthread_mutex_unlock(&shared_mu);
	wake_backend();
}

/*
 * Sync: the server we are connected to catches up with the leader before
 * it answers this session's next reads (sent behind this one).
 */
ZkReq *
zk_sync(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, zoo_async(zh, path, sync_done, req));
}

ZkReq *
zk_get_children(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, zoo_aget_children(zh, path, 0, strings_done, req));
}

/* The children of `path`, and a watch for the next change to them */
ZkReq *
zk_get_children_watch(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, zoo_awget_children(zh, path, watcher, NULL,
											strings_done, req));
}

/* Read the ACL of `path` (in req->acl, req->nacl) */
ZkReq *
zk_get_acl(const char *path)
{
	ZkReq	   *req = req_new();

	return req_sent(req, zoo_aget_acl(zh, path, acl_done, req));
}

/* Set the data of `path` (any version) */
ZkReq *
zk_set(const char *path, const char *data, int len)
{
	ZkReq	   *req = req_new();

	return req_sent(req, zoo_aset(zh, path, data, len, -1, stat_done, req));
}

/*
 * The session must go, from a place that may not touch the recipes' tables
 * (a release inside a commit callback): close it now, so the server drops
 * our nodes, and let zk_notice_session_end() tell the recipes later.
 * Never throws.
 */
static void
close_for_cause(void)
{
	close_handle();
	lost_unnoticed = true;
}

/* A delete of ours was refused: say so and close the session.  Never throws. */
static void
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
			 errdetail("ZooKeeper refused to delete it: %s.", zerror(rc)),
			 errhint("The session is closed so that its nodes go with it; every zksync lock this backend held is released and shows as lost.")));
	close_for_cause();
}

/*
 * Has the session ended without the recipes knowing?  The client learnt
 * that it expired, or it was closed for cause.  Then say so, and let the
 * recipes mark what they held as lost.  Needs no connection and does not
 * wait; never throws (WARNINGs only).  Every entry point calls it first.
 */
void
zk_notice_session_end(void)
{
	check_refused();
	if (zh != NULL && handle_is_dead())
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("ZooKeeper session 0x%llx expired; every lock it held is lost",
						(unsigned long long) zoo_client_id(zh)->client_id)));
		close_handle();
		lost_unnoticed = true;
	}
	if (lost_unnoticed)
	{
		lost_unnoticed = false;
		forget_session();
	}
	zk_notice_lost_nodes();
}

/*
 * Some held nodes were found gone since the recipes last looked?  Then
 * tell them (each looks at its own with zk_held_gone()).  Needs no
 * connection and never throws (the recipes only warn).
 */
void
zk_notice_lost_nodes(void)
{
	uint64		gone;
	int			i;

	pthread_mutex_lock(&shared_mu);
	gone = helds_gone;
	pthread_mutex_unlock(&shared_mu);
	if (gone == helds_gone_seen)
		return;
	helds_gone_seen = gone;
	for (i = 0; i < n_session_users; i++)
		if (session_users[i].lost_nodes)
			session_users[i].lost_nodes();
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
	h->session = zoo_client_id(zh)->client_id;
	h->state = HELD_ARMING;
	h->in_client = true;
	h->sent_at_us = mono_us();
	pthread_mutex_lock(&shared_mu);
	h->next = &helds;
	h->prev = helds.prev;
	helds.prev->next = h;
	helds.prev = h;
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
			zk_release(r);
			return false;
		}
		rc = r->rc;
		zk_release(r);
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
			relocks_at_once && watchdog_running)
			rel->state = REL_HELD_BACK;
		else
		{
			rel->state = REL_SENT;
			send_now = true;
		}
		rel->sent_at_us = now;
	}
	pthread_mutex_unlock(&shared_mu);
	last_release_us = now;

	if (rel == NULL)
	{
		/* out of memory: the session goes, and the node with it */
		zk_release(notify);
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
		batch[nbatch++] = rel;
		if (nbatch == ZK_DELETE_BATCH)
			send_batch();
	}
	else if (send_now &&
			 zoo_adelete(zh, rel->path, -1, release_done, rel) != ZOK)
		release_done(ZCONNECTIONLOSS, rel);

	if (notify)
	{
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   wait_ms);

		/* until applied, the deadline, or the server falls silent */
		while (zk_wait(notify, silence_check_deadline(deadline), nothrow) != ZKW_DONE)
		{
			if (server_silent_since(now) || GetCurrentTimestamp() >= deadline)
				break;
		}
		zk_release(notify);
	}
	check_refused();
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
		else if (zoo_adelete(zh_of_deletes, d->rels[i]->path, -1,
							 release_done, d->rels[i]) != ZOK)
			release_done(ZCONNECTIONLOSS, d->rels[i]);
	}
	free_multi(d);
}

/* Send the batched releases: one delete alone, several in one multi. */
static void
send_batch(void)
{
	ZkMulti    *d = nbatch > 1 ? alloc_multi(nbatch, false) : NULL;
	int			i;

	if (d == NULL)
	{
		/* one, or out of memory: each on its own */
		for (i = 0; i < nbatch; i++)
			if (zoo_adelete(zh, batch[i]->path, -1, release_done, batch[i]) != ZOK)
				release_done(ZCONNECTIONLOSS, batch[i]);
		nbatch = 0;
		return;
	}
	for (i = 0; i < nbatch; i++)
	{
		d->rels[i] = batch[i];
		zoo_delete_op_init(&d->ops[i], batch[i]->path, -1);
	}
	nbatch = 0;
	zh_of_deletes = zh;
	if (zoo_amulti(zh, d->n, d->ops, d->results, deletes_done, d) != ZOK)
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
	if (nbatch > 0 && zh != NULL)
		send_batch();
	nbatch = 0;
}

/*
 * Give up a protected create whose outcome we do not know (the create is
 * in flight, `create` not NULL; or its reply was lost, `create` NULL): the
 * client's threads delete the node if one was made (see "hunts" above).
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
		zk_release(create);
		return;					/* whatever was made is gone */
	}
	hunt = calloc(1, sizeof(ZkHunt));
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
		zk_release(create);
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
	{
		create->hunt = hunt;
		if (create->done)
		{
			hunt_create_done_locked(create, create->rc);
			unlink_req(create);
			free_req(create);
		}
		else
			create->abandoned = true;	/* its completion frees it */
	}
	pthread_cond_signal(&watchdog_cv);
	pthread_mutex_unlock(&shared_mu);

	if (notify)
	{
		zk_wait(notify,
				TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms),
				true);
		zk_release(notify);
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

/* Wait (interruptibly, no deadline) for a request; return its rc. */
int
zk_call(ZkReq *req)
{
	zk_wait(req, 0, false);
	return req->rc;
}

/* Errors after which the same session may still be reachable. */
bool
zk_is_connection_error(int rc)
{
	return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT ||
		rc == ZCLOSING || rc == ZINVALIDSTATE;
}

/*
 * ERROR for a ZooKeeper call that failed: the primary message says what
 * could not be done (one message per operation, so that each can be
 * translated and grepped), ZooKeeper's own text goes in the detail, and
 * what it means for the backend's locks in the hint.  `what` is the
 * client call: create, delete, exists, get, get_children.
 */
void
zk_report_error(int rc, const char *what, const char *path)
{
	int			code = ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
	const char *hint = NULL;

	if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZCLOSING ||
		rc == ZINVALIDSTATE)
	{
		code = ERRCODE_CONNECTION_FAILURE;
		hint = "Check that the ensemble in zksync.hosts is running and reachable.";
	}
	else if (rc == ZSESSIONEXPIRED)
	{
		code = ERRCODE_CONNECTION_FAILURE;
		hint = "The ZooKeeper session expired: every zksync lock this backend held is lost. The next call opens a new session.";
	}
	else if (rc == ZNOAUTH || rc == ZAUTHFAILED)
	{
		code = ERRCODE_INSUFFICIENT_PRIVILEGE;
		hint = "Check zksync.auth and the ACLs under zksync.root.";
	}

	if (strcmp(what, "create") == 0)
		ereport(ERROR,
				(errcode(code),
				 errmsg("could not create ZooKeeper node \"%s\"", path),
				 errdetail("ZooKeeper: %s.", zerror(rc)),
				 hint ? errhint("%s", hint) : 0));
	else if (strcmp(what, "delete") == 0)
		ereport(ERROR,
				(errcode(code),
				 errmsg("could not delete ZooKeeper node \"%s\"", path),
				 errdetail("ZooKeeper: %s.", zerror(rc)),
				 hint ? errhint("%s", hint) : 0));
	else if (strcmp(what, "get_children") == 0)
		ereport(ERROR,
				(errcode(code),
				 errmsg("could not list the children of ZooKeeper node \"%s\"", path),
				 errdetail("ZooKeeper: %s.", zerror(rc)),
				 hint ? errhint("%s", hint) : 0));
	else
		ereport(ERROR,
				(errcode(code),
				 errmsg("could not read ZooKeeper node \"%s\"", path),
				 errdetail("ZooKeeper: %s.", zerror(rc)),
				 hint ? errhint("%s", hint) : 0));
}
