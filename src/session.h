/*-------------------------------------------------------------------------
 * session.h
 *	  The backend's ZooKeeper session (session.c): connect, liveness,
 *	  expiry and the recipes that keep state on it, error mapping.
 *
 * Result codes are ZooKeeper's (transport.h).
 *-------------------------------------------------------------------------
 */
#ifndef SESSION_H
#define SESSION_H

extern void zk_connect(void);
extern int	zk_await_reconnect(bool nothrow);
extern void zk_reset_session(void);
extern void zk_read_news(void);
extern void zk_notice_session_end(void);
extern void zk_notice_lost_nodes(void);

extern bool zk_session_usable(void);
extern bool zk_is_connected(void);
extern bool zk_session_known_alive(void);
extern bool zk_confirm_session_alive(const char *node, int timeout_ms);
extern const char *zk_session_hosts(void);
extern const char *zk_session_auth(void);
extern int64 zk_session_id(void);
extern const char *zk_session_state_name(void);
extern int	zk_negotiated_timeout(void);
extern const char *zk_current_server(char *buf, int len);

/*
 * A recipe that keeps nodes on the session: how many it keeps (for
 * zksync.max_holds; anything a reconnect would lose), what to forget when
 * the session has ended, and what to look at when held nodes were found
 * gone (may be NULL).
 */
extern void zk_register_session_user(int (*nodes) (void),
									 void (*forget) (void),
									 void (*lost_nodes) (void));
extern int	zk_session_nodes(void);

/* What runs on every connected session at zk_connect(); may throw */
extern void zk_register_session_check(void (*check) (void));

extern bool zk_is_connection_error(int rc);
extern void zk_report_error(int rc, const char *what, const char *path)
			pg_attribute_noreturn();

#endif							/* SESSION_H */
