/*-------------------------------------------------------------------------
 * nodes.h
 *	  Node operations that ride out connection loss (nodes.c): the retry
 *	  helper, protected (GUID) creates and their abandonment, parents.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_NODES_H
#define ZKSYNC_NODES_H

#include "layout.h"				/* ZKSYNC_NAME_MAX, ZKSYNC_PATH_MAX */

#include "transport.h"

/*
 * How long a release waits for ZooKeeper to apply its delete before it
 * goes on in the background (ms): long against a healthy round trip (the
 * ZOOKEEPER-4537 read goes out after 100 ms), short enough for COMMIT.
 */
#define ZKSYNC_RELEASE_WAIT_MS	1000
/*
 * How long the cleanup after an interrupted wait may hold interrupts
 * (ms): a cancel is answered within a second even while the ensemble is
 * unreachable; what is not done by then goes on in the background.
 */
#define ZKSYNC_ABANDON_WAIT_MS	500

/* A node created under a GUID, findable again if the reply is lost. */
typedef struct ZkProtected
{
	bool		active;			/* may exist in ZooKeeper and is ours */
	char		dir[ZKSYNC_PATH_MAX];
	char		guid[40];
	char		node[ZKSYNC_PATH_MAX];	/* full path, "" until known */
	int64		czxid;
	ZkReq	   *create;			/* the create in flight, if any */
} ZkProtected;

/* What zk_call_retrying() does */
typedef enum ZkOp
{
	ZKOP_EXISTS,
	ZKOP_EXISTS_WATCH,			/* and watch for the node to be made */
	ZKOP_GET,
	ZKOP_GET_WATCH,				/* and watch for the node to go */
	ZKOP_CHILDREN,
	ZKOP_CHILDREN_WATCH,		/* and watch for a change to them */
	ZKOP_SYNCED_CHILDREN,		/* a sync first: see every applied create */
	ZKOP_CREATE,
	ZKOP_DELETE
} ZkOp;

extern int	zk_ensure_parents(const char *dir);
extern void zk_reconnect_or_error(const char *doing, const char *path);
extern ZkReq *zk_call_retrying(ZkOp op, const char *path, const char *data,
							   int len, int flags, bool *resent);
extern ZkReq *zk_children_retrying(const char *dir);
extern void zk_protected_create(ZkProtected *pn, const char *dir,
								const char *suffix, const char *data,
								int datalen, ZkReq **children);
extern void zk_protected_create_many(ZkProtected *pns, int n, char **dirs,
									 const char *suffix, const char *data,
									 int datalen, ZkReq **children);
extern void zk_protected_abandon(ZkProtected *pn, int wait_ms);

#endif							/* ZKSYNC_NODES_H */
