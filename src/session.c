/*-------------------------------------------------------------------------
 * session.c
 *	  The backend's ZooKeeper session: connect, replace, liveness, expiry,
 *	  and what a failed call means.
 *
 * This file owns the client's handle (`zh`) and its lifecycle: it opens
 * one on demand (zk_connect), replaces it when zksync.hosts, zksync.auth
 * or zksync.session_timeout change while nothing is held on it, and
 * closes it at backend exit, so the server drops our ephemeral nodes at
 * once.  Recipes that keep state on the session register here
 * (zk_register_session_user), in the manner of RegisterXactCallback, and
 * tree.c registers the check that runs on every connected session
 * (zk_register_session_check); this layer calls no recipe by name.
 *
 * Known alive.  The client's own state says "connected" after the process
 * was stopped, until it has read from its socket again, although the server may
 * have expired the session meanwhile.  So we remember when the newest
 * request that the server answered was sent: the session lives at least a
 * session timeout after that (zk_session_known_alive), and grants and the
 * commit check rely on that, or ask the server (zk_confirm_session_alive).
 *
 * Session loss.  A lost connection (ZCONNECTIONLOSS) is not a lost session:
 * the client reconnects to another server with the same session, and the
 * callers retry.  An expired session is final: every ephemeral node is
 * gone.  zk_notice_session_end() notices it without waiting and tells the
 * recipes that registered, whose holds become "lost"; the next
 * zk_connect() opens a new session.  A session may also be closed for
 * cause (a release the server refused, out of memory in the release
 * queue), from places that may not touch the recipes' tables; the next
 * zk_notice_session_end() tells the recipes then.
 *
 * What can go wrong: trusting the client's "connected" after a pause (see
 * above); replacing a session that holds locks (a changed setting must
 * never drop them silently); telling the recipes of a loss from inside a
 * commit callback (hence lost_unnoticed).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "transport_int.h"
#include "shared.h"

/* Least time between routine DNS resolutions of zksync.hosts. */
#define ZK_RESOLVE_DELAY_MS	30000

/* ---- backend-only state ---- */
zhandle_t  *zh = NULL;
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
struct ACL_vector *node_acl = NULL;

/*
 * The session was closed for cause (a refused release, out of memory in a
 * release) in a place that may not touch the recipes' tables; the next
 * zk_notice_session_end() tells the recipes that their holds are lost.
 */
static bool lost_unnoticed = false;

/*
 * zk_connected_events() when last counted, and whether the current
 * handle's first connect is still to come (it is no reconnect)
 */
static uint64 connects_counted = 0;
static bool first_connect_due = false;

/* helds_gone_count() when the recipes last looked */
static uint64 helds_gone_seen = 0;

static void notice_lost_nodes(void);

/* the statement that last read the news (read_news_once) */
static TimestampTz news_read_for = 0;

/* settings the current handle was made with */
static char *conn_hosts = NULL;
static char *conn_auth = NULL;
static int	conn_timeout = 0;

/*
 * The recipes that keep state on the session register here
 * (zk_register_session_user): this layer asks them how many nodes they
 * keep on the session (anything a reconnect would lose; and the total
 * that zksync.max_holds bounds), and tells them when it has ended.
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
 * zksync.max_holds), as they count them.
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
tell_users_session_ended(void)
{
	int			i;

	for (i = 0; i < n_session_users; i++)
		session_users[i].forget();
}

/* Has the client given the session up (expired, or refused our auth)? */
bool
handle_is_dead(void)
{
	int			state;

	if (zh == NULL)
		return true;
	state = CLIENT_CALL(zoo_state(zh));
	return state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE;
}

/* Is the client connected to a server right now (as far as it knows)? */
bool
handle_is_connected(void)
{
	return zh != NULL && CLIENT_CALL(zoo_state(zh)) == ZOO_CONNECTED_STATE;
}

/*
 * Close the handle: stop the watchdog, close the session (the client
 * sends the close and answers what was in flight with ZCLOSING), and drop
 * what was queued on it (its nodes go with it).  Never throws.
 */
void
close_handle(void)
{
	if (zh == NULL)
		return;
	stop_watchdog();
	pthread_mutex_lock(&shared_mu);
	zookeeper_close(zh);		/* no callback runs after this */
	zh = NULL;
	forget_client_io_locked();
	forget_releases_locked();
	forget_held_in_client_locked();
	forget_poke_locked();
	forget_answers_locked();
	pthread_mutex_unlock(&shared_mu);

	/*
	 * Every request still linked is done now (the client answered those in
	 * flight with ZCLOSING), but the backend may still hold some: a close for
	 * cause can come from deep inside an operation that has listings
	 * pipelined.  They stay until their owner frees them, or until the
	 * transaction ends (zk_req_free_all).
	 */
}

/* on_proc_exit: close the session so our ephemeral nodes go at once */
static void
close_at_exit(int code, Datum arg)
{
	close_handle();
}

/*
 * Open a handle with the current settings, and the watchdog with it.
 * Throws if the client cannot make one.
 */
static void
open_handle(void)
{
	sigset_t	all,
				old;

	open_wait_set();
	connects_counted = zk_connected_events();
	first_connect_due = true;
	if (!exit_hook_set)
	{
		on_proc_exit(close_at_exit, 0);
		exit_hook_set = true;
	}

	zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);

	/* The watchdog's thread inherits this mask: it takes no signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	zh = zookeeper_init2(zksync_hosts, watcher, zksync_session_timeout,
						 NULL, NULL, 0, log_to_ring);
	if (zh != NULL)
	{
		/*
		 * By default the client resolves every host name of the connect
		 * string each time it is asked what it waits for, that is for every
		 * request and reply: some netlink round trips each, a good part of a
		 * lock cycle.  Resolve at most every ZK_RESOLVE_DELAY_MS instead (and
		 * always after a connection loss).
		 */
		zoo_set_servers_resolution_delay(zh, ZK_RESOLVE_DELAY_MS);
		if (!start_watchdog(zh))
		{
			/* nobody would keep the session alive between our waits */
			zookeeper_close(zh);
			zh = NULL;
		}
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
		CLIENT_CALL(zoo_add_auth(zh, "digest", zksync_auth, strlen(zksync_auth), NULL, NULL));
		auth_acl_entries[0].perms = ZOO_PERM_ALL;
		auth_acl_entries[0].id = ZOO_AUTH_IDS;
		auth_acl_entries[1].perms = ZOO_PERM_READ;
		auth_acl_entries[1].id = ZOO_ANYONE_ID_UNSAFE;
		node_acl = &auth_acl;
	}
	pthread_mutex_lock(&shared_mu);
	forget_answers_locked();
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
int
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
		zksync_stat_count(ZKSTAT_SESSIONS_EXPIRED, 1);
		close_handle();
		tell_users_session_ended();
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
	tell_users_session_ended();
}

/*
 * The session must go, from a place that may not touch the recipes' tables
 * (a release inside a commit callback): close it now, so the server drops
 * our nodes, and let zk_notice_session_end() tell the recipes later.
 * Never throws.
 */
void
close_for_cause(void)
{
	close_handle();
	lost_unnoticed = true;
}

/*
 * Count in zksync_stats the times the client got a session of ours
 * connected again after its first connect.  Never throws.
 */
static void
count_reconnects(void)
{
	uint64		n = zk_connected_events();
	uint64		more = n - connects_counted;

	if (more == 0)
		return;
	connects_counted = n;
	if (first_connect_due)
	{
		first_connect_due = false;
		more--;
	}
	zksync_stat_count(ZKSTAT_RECONNECTS, (int) more);
}

/*
 * Read what has come from ZooKeeper and nobody has read yet (a held node's
 * watch, an expiry), without waiting: the backend reads its own answers
 * while it waits, and the watchdog keeps off the socket for a moment
 * after (clientio.c).  For the commit check, which reads whoever else
 * might be about to.
 */
void
zk_read_news(void)
{
	client_pump_nowait(zh, true);
	news_read_for = GetCurrentStatementStartTimestamp();
}

/*
 * Read the news once per statement: every entry point and every
 * statement's start look first, and one look is enough until the
 * statement waits again (which reads what comes).
 */
static void
read_news_once(void)
{
	if (zh != NULL && news_read_for != GetCurrentStatementStartTimestamp())
	{
		client_pump_nowait(zh, false);
		news_read_for = GetCurrentStatementStartTimestamp();
	}
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
	read_news_once();
	count_reconnects();
	check_refused();
	if (zh != NULL && handle_is_dead())
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("ZooKeeper session 0x%llx expired",
						(unsigned long long) zk_session_id()),
				 errdetail("Every zksync lock it held is lost.")));
		zksync_stat_count(ZKSTAT_SESSIONS_EXPIRED, 1);
		close_handle();
		lost_unnoticed = true;
	}
	if (lost_unnoticed)
	{
		lost_unnoticed = false;
		tell_users_session_ended();
	}
	notice_lost_nodes();
}

/*
 * Some held nodes were found gone since the recipes last looked?  Then
 * tell them (each looks at its own with zk_held_gone()).  Needs no
 * connection and never throws (the recipes only warn).
 */
void
zk_notice_lost_nodes(void)
{
	read_news_once();
	notice_lost_nodes();
}

static void
notice_lost_nodes(void)
{
	uint64		gone = helds_gone_count();
	int			i;

	if (gone == helds_gone_seen)
		return;
	helds_gone_seen = gone;
	for (i = 0; i < n_session_users; i++)
		if (session_users[i].lost_nodes)
			session_users[i].lost_nodes();
}

/*
 * Is the session known alive right now, without asking?  Only if the
 * client is connected and the server answered a request that was sent
 * less than a third of the session timeout ago: the server expires a
 * session only after a whole timeout of silence, so the session lives for
 * two thirds of a timeout more at least.  The client's own state is not
 * enough: after the process was stopped (SIGSTOP, a VM pause), it says
 * "connected" until the client has read from its socket again, although the
 * server may have expired the session long ago (docs/transport.md, "Known
 * alive").
 */
bool
zk_session_known_alive(void)
{
	int			timeout;
	int64		answered;

	if (!handle_is_connected())
		return false;
	timeout = zk_negotiated_timeout();
	if (timeout <= 0)
		return false;
	answered = answered_sent_us_get();
	return answered != 0 && mono_us() - answered < (int64) timeout * 1000 / 3;
}

/*
 * Is the session alive right now?  For grants and the commit check, which
 * must not trust a stale "connected".  True at once if it is known alive;
 * otherwise ask the server: an exists on `node` (a node of ours, which
 * must still be ours) or on "/", riding out connection loss, for at most
 * `timeout_ms`.  False if the session is gone, the node is not ours any
 * more, or nothing could be confirmed in time; the caller treats its
 * locks as lost.  May throw on interrupts.
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
			zk_req_free(e);
			return false;
		}
		rc = zk_req_rc(e);
		ours = node == NULL || zk_req_ephemeral_owner(e) == zk_session_id();
		zk_req_free(e);
		if (rc == ZOK)
			return ours;
		if (!zk_is_connection_error(rc))
			return false;		/* our node is gone, or the session */
		/* the connection dropped: the client reconnects or learns of expiry */
	}
}

/* Is there a session that may still be used (open, not expired)? */
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

/* The session's id (0 if no session). */
int64
zk_session_id(void)
{
	int64		id;

	if (zh == NULL)
		return 0;
	pthread_mutex_lock(&shared_mu);
	id = zoo_client_id(zh)->client_id;
	pthread_mutex_unlock(&shared_mu);
	return id;
}

/* The session timeout the server granted, in ms (0 if no session). */
int
zk_negotiated_timeout(void)
{
	return zh ? CLIENT_CALL(zoo_recv_timeout(zh)) : 0;
}

/* The client's state, in words, for the views. */
const char *
zk_session_state_name(void)
{
	int			state;

	if (zh == NULL)
		return "closed";
	state = CLIENT_CALL(zoo_state(zh));
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

/* The server we are connected to, into buf (NULL if none). */
const char *
zk_current_server(char *buf, int len)
{
	const char *server;

	if (!handle_is_connected())
		return NULL;
	pthread_mutex_lock(&shared_mu);
	server = zoo_get_current_server(zh);
	if (server != NULL)
		strlcpy(buf, server, len);
	pthread_mutex_unlock(&shared_mu);
	return server ? buf : NULL;
}

/* Errors after which the same session may still be reachable. */
bool
zk_is_connection_error(int rc)
{
	return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT ||
		rc == ZCLOSING || rc == ZINVALIDSTATE;
}

/*
 * Inside an ereport for a ZooKeeper call that failed with `rc`: what it
 * means, with ZooKeeper's own text, in the detail.
 */
static int
errdetail_for_rc(int rc)
{
	if (rc == ZSESSIONEXPIRED)
		return errdetail("The ZooKeeper session expired: every zksync lock this backend held is lost, and the next call opens a new session.");
	return errdetail("ZooKeeper: %s.", zerror(rc));
}

/* Inside an ereport for a ZooKeeper call that failed with `rc`: what to check */
static int
errhint_for_rc(int rc)
{
	if (zk_is_connection_error(rc))
		return errhint("Check that the ensemble in zksync.hosts is running and reachable.");
	if (rc == ZNOAUTH || rc == ZAUTHFAILED)
		return errhint("Check zksync.auth and the ACLs under zksync.root.");
	return 0;
}

/* The SQLSTATE for a ZooKeeper call that failed with `rc` */
static int
errcode_for_rc(int rc)
{
	if (zk_is_connection_error(rc) || rc == ZSESSIONEXPIRED)
		return ERRCODE_CONNECTION_FAILURE;
	if (rc == ZNOAUTH || rc == ZAUTHFAILED)
		return ERRCODE_INSUFFICIENT_PRIVILEGE;
	return ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
}

/*
 * ERROR for a ZooKeeper call that failed: the primary message says what
 * could not be done (one message per operation, so that each can be
 * translated and grepped), what it means (with ZooKeeper's own text) goes
 * in the detail, and what to check in the hint.  `what` is the client
 * call: create, delete, exists, get, get_children.
 */
void
zk_report_error(int rc, const char *what, const char *path)
{
	if (strcmp(what, "create") == 0)
		ereport(ERROR,
				(errcode(errcode_for_rc(rc)),
				 errmsg("could not create ZooKeeper node \"%s\"", path),
				 errdetail_for_rc(rc),
				 errhint_for_rc(rc)));
	else if (strcmp(what, "delete") == 0)
		ereport(ERROR,
				(errcode(errcode_for_rc(rc)),
				 errmsg("could not delete ZooKeeper node \"%s\"", path),
				 errdetail_for_rc(rc),
				 errhint_for_rc(rc)));
	else if (strcmp(what, "get_children") == 0)
		ereport(ERROR,
				(errcode(errcode_for_rc(rc)),
				 errmsg("could not list the children of ZooKeeper node \"%s\"", path),
				 errdetail_for_rc(rc),
				 errhint_for_rc(rc)));
	else
		ereport(ERROR,
				(errcode(errcode_for_rc(rc)),
				 errmsg("could not read ZooKeeper node \"%s\"", path),
				 errdetail_for_rc(rc),
				 errhint_for_rc(rc)));
}
