/*-------------------------------------------------------------------------
 * transport_int.h
 *	  What the files of the connection layer share, and nobody else sees.
 *
 * The connection layer is transport.c, clientio.c, session.c, releases.c,
 * held.c and watchdog.c (docs/transport.md tells how they work together).
 * They share data with our watchdog thread, all of it guarded by
 * `shared_mu`; only these six files include this header.  What they offer
 * the rest of zksync is in transport.h, session.h, releases.h and held.h.
 *
 * Functions marked "client thread" below run inside the client (its
 * completions and watchers), on the backend's thread or the watchdog's, so
 * must never call PostgreSQL: no palloc, no elog, no latch.  They only
 * touch malloc'd memory under `shared_mu` and wake the backend through
 * wake_backend().  A function whose name ends in _locked must be called
 * with `shared_mu` held.
 *
 * Names.  One rule for all of zksync: `zk_` for what the ZooKeeper
 * transport and session layers and the node operations offer, `zksync_`
 * for what a recipe or the SQL layer offers, and static functions without
 * a public prefix.  Names shared only inside this layer (declared here)
 * carry no public prefix either, and are hidden from the symbol table of
 * the loaded library.
 *-------------------------------------------------------------------------
 */
#ifndef TRANSPORT_INT_H
#define TRANSPORT_INT_H

#include <pthread.h>

#include <zookeeper/zookeeper.h>

#include "storage/latch.h"
#include "utils/timestamp.h"

#include "transport.h"
#include "held.h"

#pragma GCC visibility push(hidden)

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
/*
 * How often the watchdog looks again while it has retries to send, or
 * while something it watches is overdue and poked.
 */
#define ZK_TICK_MS			50
/* How long the watchdog sleeps when nothing is due (a safety net only) */
#define ZK_IDLE_TICK_MS		1000
/*
 * After a wait of the backend (which reads the client's socket itself),
 * the watchdog keeps off the socket this long (at most a sixth of the
 * session's timeout): a backend that cycles locks reads its own answers,
 * and its watchdog looks about once a second, not once per answer.
 */
#define ZK_PUMP_LINGER_US	1000000

/*
 * When a watched request sent at `sent_us` next needs a look, as a sleep
 * from `now` (us): when it becomes overdue, or a tick on if it is.
 */
#define ZK_OVERDUE_DUE_US(sent_us, now) \
	((sent_us) + ZK_OVERDUE_US > (now) ? (sent_us) + ZK_OVERDUE_US - (now) : \
	 ZK_TICK_MS * 1000L)

/* ---- shared state ---- */

/*
 * Guards everything the watchdog touches, and every call into the client
 * (which is not thread-safe); recursive, since a completion runs inside a
 * call into the client.
 */
extern pthread_mutex_t shared_mu;

/*
 * A call into the client, under shared_mu; its value.  CLIENT_SEND for a
 * call that sends a request: its pieces go out together (clientio.c).
 */
#define CLIENT_CALL(call) \
	({ \
		int			client_rc_; \
		pthread_mutex_lock(&shared_mu); \
		client_rc_ = (call); \
		pthread_mutex_unlock(&shared_mu); \
		client_rc_; \
	})
#define CLIENT_SEND(call) \
	({ \
		int			client_rc_; \
		pthread_mutex_lock(&shared_mu); \
		client_sends_begin_locked(); \
		client_rc_ = (call); \
		client_sends_end_locked(); \
		pthread_mutex_unlock(&shared_mu); \
		client_rc_; \
	})

/* The client's handle (session.c; backend-only, NULL: no session). */
extern zhandle_t *zh;

/* The ACL of every node we create (session.c sets it with the handle). */
extern struct ACL_vector *node_acl;

/* ---- transport.c ---- */

extern int64 mono_us(void);

/* client thread: wake the backend's wait loop (takes shared_mu) */
extern void wake_backend(void);
extern void note_wake_locked(const struct ZkReq *req);
extern void unlock_and_wake(void);

/* client thread: the session watcher and every node watch */
extern void watcher(zhandle_t *h, int type, int state, const char *path,
					void *ctx);
extern bool rc_is_answer(int rc);
extern void note_answer_locked(int rc, int64 sent_us);
extern int64 answered_sent_us_get(void);
extern void forget_answers_locked(void);
extern bool server_silent_since(int64 since_us);
extern TimestampTz silence_check_deadline(TimestampTz deadline);

extern bool sleep_once(TimestampTz deadline, bool nothrow);

extern ZkReq *req_alloc(void);
extern void req_finish_locked(ZkReq *req, int rc);
extern void req_notify_locked(ZkReq **notify, int rc);
extern bool req_overdue_locked(int64 now);
extern bool req_abandoned_locked(const ZkReq *req);
extern int64 next_abandoned_due_us_locked(int64 now, int64 sleep_us);

/* What runs, under shared_mu, when a request handed over is answered */
typedef void (*ZkReqThen) (ZkReq *req, int rc, void *ctx);
extern void req_hand_over_locked(ZkReq *req, ZkReqThen then, void *ctx);
extern ZkReq *get_children_then(const char *path, watcher_fn fn, void *ctx,
								ZkReqThen then, void *then_ctx);

/*
 * One ZooKeeper multi we send (creates, deletes, or deletes and a create),
 * kept until the reply; malloc'd, as its completion frees it.
 */
typedef struct ZkRelease ZkRelease;
typedef struct ZkMulti
{
	int			n;				/* ops filled in */
	int			max;			/* ops room was made for */
	zoo_op_t   *ops;
	zoo_op_result_t *results;
	char	  **bufs;			/* a create's op: where its path goes */
	ZkRelease **rels;			/* a delete's op: the release it carries out */
} ZkMulti;

extern ZkMulti *alloc_multi(int max);
extern void free_multi(ZkMulti *m);
extern bool multi_add_create(ZkMulti *m, char *buf, const char *path,
							 const char *data, int len, int flags);
extern void multi_add_delete(ZkMulti *m, ZkRelease *rel, const char *path);
extern void req_attach_multi(ZkReq *req, ZkMulti *m);
extern ZkMulti *req_multi(const ZkReq *req);
extern void req_set_path_locked(ZkReq *req, char *path);

/* ---- clientio.c ---- */

extern uint64 client_interest_locked(zhandle_t *h, int *fd, int *interest,
									 int64 *wait_us);
extern void client_process_locked(zhandle_t *h, uint64 epoch, int events);
extern void client_pump_nowait(zhandle_t *h, bool always);
extern void client_sends_begin_locked(void);
extern void client_sends_end_locked(void);
extern void client_sends_flush_locked(void);
extern void client_sends_reset_locked(void);
extern bool watchdog_keeps_off_locked(int64 now, int64 *until_us);
extern int	watchdog_poll(int fd, int interest, int wake_fd, int64 wait_us);
extern bool backend_pumps_locked(void);
extern void backend_pump_begin_locked(zhandle_t *h);
extern void backend_pump_end_locked(void);
extern void open_wait_set(void);
extern void signal_eventfd(int fd);
extern void signal_backend(void);
extern WaitEventSet *backend_wait_set(int fd, int interest);
extern int	backend_wait_events(const WaitEvent *events, int n, int fd);
extern void forget_client_io_locked(void);

/* ---- session.c ---- */

extern bool handle_is_dead(void);
extern bool handle_is_connected(void);
extern int	await_connected(int timeout_ms, bool nothrow);
extern void close_handle(void);
extern void close_for_cause(void);

/* ---- releases.c ---- */

extern void flush_held_releases(void);
extern bool send_create_carrying_releases(ZkReq *req, const char *path,
										  const char *data, int len,
										  int flags);
extern void check_refused(void);
extern void forget_releases_locked(void);
extern int64 next_release_due_us_locked(int64 now, int64 sleep_us);
extern int	pick_due_releases_locked(ZkRelease **out, int n, int max,
									 int64 now);
extern bool releases_overdue_locked(int64 now);
extern bool releases_awaited_locked(void);
extern int	pick_retry_releases_locked(ZkRelease **out, int n, int max,
									   int64 now);
extern void send_release(zhandle_t *h, ZkRelease *rel);

typedef struct ZkHunt ZkHunt;
extern int	pick_hunts_locked(ZkHunt **out, int max);
extern void send_hunt(zhandle_t *h, ZkHunt *hunt);

/* ---- held.c ---- */

extern void forget_held_in_client_locked(void);
extern bool held_overdue_locked(int64 now);
extern int64 next_held_due_us_locked(int64 now, int64 sleep_us);
extern int	pick_held_to_arm_locked(ZkHeld **out, int max, int64 now);
extern void held_send(zhandle_t *handle, ZkHeld *h);
extern uint64 helds_gone_count(void);

/* ---- watchdog.c ---- */

extern bool start_watchdog(zhandle_t *h);
extern void stop_watchdog(void);
extern bool watchdog_is_running(void);
extern void forget_poke_locked(void);
extern void wake_watchdog_locked(void);
extern void kick_watchdog_locked(void);
extern void poke_if_overdue(zhandle_t *h);

/* any thread: keep the client's log lines for the backend */
extern void log_to_ring(const char *message);
extern void drain_client_log(void);

#pragma GCC visibility pop

#endif							/* TRANSPORT_INT_H */
