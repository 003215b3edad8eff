/*-------------------------------------------------------------------------
 * zksync.h
 *	  What crosses files in zksync.
 *
 * The files and what each owns, from the top down (a file calls only the
 * ones below it; the lower layers offer registration instead of calling a
 * recipe by name):
 *
 *	 zksync.c		_PG_init and every SQL-callable function: check the
 *					arguments, make one call down, form the result rows
 *	 lock.c			the read-write lock recipe: its grant rule, the hold
 *					table, multi-locks, downgrade, lost holds, the commit check
 *	 barrier.c		barriers and double barriers
 *	 queue.c		the contender queue every waiting recipe shares: create,
 *					list, ask the recipe's grant rule, watch one node, wait,
 *					hand-off, remove on any failed wait
 *	 handoff.c		passing a released write lock to a waiting backend of
 *					this cluster through shared memory
 *	 xact.c			transaction/subtransaction callbacks and DISCARD ALL, for
 *					the recipes that register (ZkScopeHooks)
 *	 waits.c		every wait in view (zksync_waits, zksync_blocking,
 *					the holders and leases views), the wait in progress and
 *					log_lock_waits, for the queues the recipes register
 *					(ZkQueueKind)
 *	 deadlock.c		deadlock detection through ZooKeeper: wait records,
 *					the wait graph, its cycles (docs/waits.md)
 *	 marks.c		deadlock marks and their verification
 *	 tree.c			under zksync.auth: {root} and its fixed directories
 *					made persistent with our ACL, their ACLs checked once
 *					per session (42501 if other clients may change them)
 *	 nodes.c		node operations that ride out connection loss: the retry
 *					helper, protected (GUID) creates, abandonment, parents
 *	 releases.c		deletes of our nodes that survive connection loss
 *					(hold-back, batching), hunts for abandoned creates
 *	 held.c			watches on the nodes this backend holds
 *	 session.c		the session: connect, replace, known alive, expiry and
 *					the recipes registered for it, error mapping
 *	 transport.c	requests, their completions, the wait loop
 *	 watchdog.c		the watchdog thread (ZOOKEEPER-4537 pokes, queued
 *					sends) and the client's log ring
 *					(these five are the only files that share memory with
 *					the client's threads: transport_int.h, docs/transport.md)
 *	 layout.c		where nodes live and how they are named (the grammar),
 *					owner data, reading what other clients wrote
 *	 settings.c		every GUC and its check hook
 *	 names.c		validation of names, hosts and root
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_H
#define ZKSYNC_H

#include "postgres.h"

#include <zookeeper/zookeeper.h>

#include "utils/timestamp.h"

/*
 * Our messages are looked up in zksync's own catalog (nls.mk), bound in
 * _PG_init, as PostgreSQL's own modules do.
 */
#undef TEXTDOMAIN
#define TEXTDOMAIN PG_TEXTDOMAIN("zksync")
#undef _
#define _(x) dgettext(TEXTDOMAIN, x)

#include "layout.h"
#include "names.h"
#include "settings.h"

/* Longest zksync.hosts for which backends hand locks to each other. */
#define ZKSYNC_HOSTS_KEY	256

/* zksync.local_handoff is handoff.c's */
extern bool zksync_local_handoff;

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

/* ---------------------------------------------------------------------
 * the connection layer: transport.c, session.c, releases.c, held.c,
 * watchdog.c (docs/transport.md)
 * ---------------------------------------------------------------------
 */
#include "transport.h"
#include "session.h"
#include "releases.h"
#include "held.h"

/* ---------------------------------------------------------------------
 * nodes.c
 * ---------------------------------------------------------------------
 */

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

extern int	zk_ensure_parents(const char *dir);
extern void zk_reconnect_or_error(const char *doing, const char *path);
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

/* ---------------------------------------------------------------------
 * tree.c: the tree under zksync.root is ours under zksync.auth
 * ---------------------------------------------------------------------
 */
extern void zksync_tree_init(void);

/* ---------------------------------------------------------------------
 * waits.c, deadlock.c: every wait in view, and deadlocks through ZooKeeper
 * ---------------------------------------------------------------------
 */
#include "waits.h"

/* ---------------------------------------------------------------------
 * queue.c: the contender queue every waiting recipe shares
 * ---------------------------------------------------------------------
 */

/* A recipe's grant rule, for the queue */
typedef struct ZkQueueDriver
{
	/*
	 * Is contender `mine` of `c` (n of them, in sequence order) granted?  If
	 * not, set *watch to the index of the one contender to wait for.
	 */
	bool		(*granted) (const ZkContender *c, int n, int mine, int *watch);
	/* may a write node we wait for be handed to us by its holder? */
	bool		handoff;
	/* the queue, for the views and the deadlock scan (waits.c) */
	const ZkQueueKind *kind;
	int			queue;
	/* a grant here is a step of the recipe's wait, which goes on */
	bool		step;
} ZkQueueDriver;

extern bool zk_queue_wait(ZkProtected *pn, const char *dir, const char *tag,
						  const char *data, int datalen,
						  const ZkQueueDriver *drv, TimestampTz deadline,
						  const char *what, const char *name);
extern bool zk_queue_wait_node(ZkProtected *pn, const ZkQueueDriver *drv,
							   TimestampTz deadline, const char *what,
							   const char *name);
extern void zk_queue_join(ZkProtected *pn, const char *dir, const char *tag,
						  const char *data, int datalen);
extern bool zk_queue_granted(const ZkQueueDriver *drv, ZkProtected *pn,
							 ZkReq *listing);
extern TimestampTz zk_queue_deadline(int timeout_ms, TimestampTz *lock_deadline);
extern void zk_queue_check_lock_timeout(TimestampTz lock_deadline,
										const char *what, const char *name);

/* ---------------------------------------------------------------------
 * lock.c
 * ---------------------------------------------------------------------
 */
typedef enum ZkLockMode
{
	ZKLOCK_WRITE,
	ZKLOCK_READ
} ZkLockMode;

extern bool zksync_lock_acquire_many(const char **names, int n, ZkLockMode mode,
									 bool xact, bool try_only, int timeout_ms);
extern bool zksync_lock_release_many(const char **names, int n, ZkLockMode mode);
extern void zksync_release_session_holds(bool nothrow);
extern void zksync_lock_init(void);

/* Row of zksync_locks() */
typedef struct ZkLockInfo
{
	char		name[ZKSYNC_NAME_MAX + 1];
	const char *mode;
	int			session_count;
	int			xact_count;
	const char *state;
	char		node[ZKSYNC_PATH_MAX];
	int64		token;
	bool		has_token;
} ZkLockInfo;
extern int	zksync_lock_snapshot(ZkLockInfo **rows);
extern bool zksync_rwlock_granted(const ZkContender *c, int n, int i);

/* ---------------------------------------------------------------------
 * semaphore.c
 * ---------------------------------------------------------------------
 */

/* A row of zksync_semaphore_leases() */
typedef struct ZkHolderInfo
{
	char	   *node;			/* leases/... or locks/... */
	int64		sequence;
	bool		granted;
	bool		present;		/* still there when its owner was read */
	char	   *owner;
} ZkHolderInfo;

extern void zksync_semaphore_init(void);
extern bool zksync_semaphore_acquire(const char *name, int max_leases,
									 bool xact, int timeout_ms);
extern bool zksync_semaphore_release(const char *name);
extern void zksync_semaphore_release_all(void);
extern int	zksync_semaphore_snapshot(ZkLockInfo **rows);
extern int	zksync_semaphore_contenders(const char *name, ZkHolderInfo **rows);

/* ---------------------------------------------------------------------
 * barrier.c
 * ---------------------------------------------------------------------
 */
extern bool zksync_barrier_set(const char *name);
extern bool zksync_barrier_unset(const char *name);
extern bool zksync_barrier_is_set(const char *name);
extern bool zksync_barrier_wait(const char *name, int timeout_ms);
extern bool zksync_dbarrier_enter(const char *name, int participants,
								  int timeout_ms);
extern bool zksync_dbarrier_exit(const char *name, int timeout_ms);
extern void zksync_barrier_init(void);

/* ---------------------------------------------------------------------
 * xact.c
 * ---------------------------------------------------------------------
 */
/* What a recipe's holds need from transaction scope */
typedef struct ZkScopeHooks
{
	void		(*check_commit) (void); /* PRE_COMMIT, PRE_PREPARE; may throw */
	bool		(*has_xact_holds) (void);	/* PREPARE is refused if so */
	void		(*end_xact_level) (int level);	/* holds of this savepoint
												 * level and deeper end;
												 * never throws */
	void		(*pass_up) (int level); /* RELEASE SAVEPOINT */
	void		(*end_session_holds) (void);	/* DISCARD ALL; never throws */
} ZkScopeHooks;

extern void zksync_xact_init(void);
extern void zksync_register_scope(const ZkScopeHooks *hooks);

/* ---------------------------------------------------------------------
 * handoff.c
 * ---------------------------------------------------------------------
 */
extern void zksync_handoff_init(void);
extern bool zksync_handoff_register(const char *node, const char *ensemble);
extern bool zksync_handoff_received(void);
extern bool zksync_handoff_unregister(void);
extern void zksync_handoff_release(const char *node, const char *ensemble);

#endif							/* ZKSYNC_H */
