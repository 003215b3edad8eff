/*-------------------------------------------------------------------------
 * transport.h
 *	  Requests to ZooKeeper and the wait for them (transport.c).
 *
 * A request is sent at once and answered later; the backend waits for it
 * with zk_wait() (or zk_call()), reads its result through the accessors
 * below, and frees it with zk_req_free().  Result codes and create flags
 * are ZooKeeper's (ZOK, ZNONODE, ..., ZOO_EPHEMERAL_SEQUENTIAL, ...), which
 * is why this header includes the client's.  The caller must have called
 * zk_connect() (session.h) before sending.
 *-------------------------------------------------------------------------
 */
#ifndef TRANSPORT_H
#define TRANSPORT_H

#include <zookeeper/zookeeper.h>

#include "datatype/timestamp.h"

/* One request to ZooKeeper; its fields belong to transport.c */
typedef struct ZkReq ZkReq;

/* One entry of a node's ACL, as zk_get_acl() reads it */
typedef struct ZkAcl
{
	int			perms;			/* ZOO_PERM_* bits */
	char	   *scheme;			/* "world", "digest", "ip", ... */
	char	   *id;				/* "anyone", "user:hash", ... */
} ZkAcl;

/* What ended a zk_wait() */
typedef enum ZkWaitResult
{
	ZKW_DONE,					/* the request completed */
	ZKW_EVENT,					/* a watch fired (or the session changed) */
	ZKW_TIMEOUT					/* the deadline passed */
} ZkWaitResult;

extern ZkReq *zk_create(const char *path, const char *data, int len, int flags);
extern ZkReq *zk_delete(const char *path);
extern ZkReq *zk_create_many(int n, char **paths, const char *data, int len);
extern ZkReq *zk_exists(const char *path, bool watch);
extern ZkReq *zk_get(const char *path, bool watch);
extern ZkReq *zk_sync(const char *path);
extern ZkReq *zk_get_children(const char *path);
extern ZkReq *zk_get_children_watch(const char *path);
extern ZkReq *zk_set(const char *path, const char *data, int len);
extern ZkReq *zk_get_acl(const char *path);

extern void zk_sends_begin(void);
extern void zk_sends_end(void);
extern ZkWaitResult zk_wait(ZkReq *req, TimestampTz deadline, bool nothrow);
extern int	zk_call(ZkReq *req);
extern uint64 zk_events_seen(void);
extern uint64 zk_connected_events(void);
extern ZkWaitResult zk_wait_event(uint64 events_seen, bool (*also) (void),
								  TimestampTz deadline, bool nothrow);

extern void zk_req_free(ZkReq *req);
extern void zk_req_free_all(void);

/*
 * A done request's results (only once zk_wait() said ZKW_DONE).  What is
 * not set reads as 0 or NULL; the strings belong to the request.
 */
extern int	zk_req_rc(const ZkReq *req);
extern const char *zk_req_path(const ZkReq *req);
extern const char *zk_req_data(const ZkReq *req);
extern int	zk_req_datalen(const ZkReq *req);
extern char **zk_req_children(const ZkReq *req);
extern int	zk_req_nchildren(const ZkReq *req);
extern int64 zk_req_czxid(const ZkReq *req);
extern int64 zk_req_ctime(const ZkReq *req);
extern int64 zk_req_ephemeral_owner(const ZkReq *req);
extern const ZkAcl *zk_req_acl(const ZkReq *req);
extern int	zk_req_nacl(const ZkReq *req);

#endif							/* TRANSPORT_H */
