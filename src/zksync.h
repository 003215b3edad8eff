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
 *	 lock.c			the read-write lock recipe: its grant rule, waits,
 *					multi-locks, releases, downgrade (lock.h)
 *	 locktable.c	the lock's hold table: counts by scope and savepoint
 *					level, lost holds, the commit check, zksync_locks()
 *					(shared with lock.c through lock_int.h)
 *	 semaphore.c	counting semaphores in Curator's layout (semaphore.h)
 *	 barrier.c		barriers and double barriers (barrier.h)
 *	 queue.c		the contender queue every waiting recipe shares: create,
 *					list, ask the recipe's grant rule, watch one node, wait,
 *					hand-off, remove on any failed wait; the first-in-queue
 *					rule, the max_holds and lock_timeout checks (queue.h)
 *	 handoff.c		passing a released write lock to a waiting backend of
 *					this cluster through shared memory (handoff.h)
 *	 xact.c			transaction/subtransaction callbacks and DISCARD ALL, for
 *					the recipes that register (ZkScopeHooks), and the commit
 *					check's common part (xact.h)
 *	 waits.c		every wait in view (zksync_waits, zksync_blocking),
 *					log_lock_waits and deadlock detection, for the queues
 *					the recipes register (ZkQueueKind)
 *	 tree.c			under zksync.auth: {root} and its fixed directories
 *					made persistent with our ACL, their ACLs checked once
 *					per session (42501 if other clients may change them)
 *					(tree.h)
 *	 nodes.c		node operations that ride out connection loss: the retry
 *					helper, protected (GUID) creates, abandonment, parents
 *					(nodes.h)
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
 *	 layout.c		where nodes live and how they are named (the grammar)
 *	 settings.c		every GUC and its check hook
 *	 names.c		validation of names, hosts and root
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_H
#define ZKSYNC_H

#include "postgres.h"

#include <zookeeper/zookeeper.h>

#include "utils/timestamp.h"

/* Longest name (one path component) and root we accept, in bytes. */
#define ZKSYNC_NAME_MAX		200
#define ZKSYNC_ROOT_MAX		256
/* Longest path we ever build: root + "/locks/" + name + "/" + node name. */
#define ZKSYNC_PATH_MAX		(ZKSYNC_ROOT_MAX + ZKSYNC_NAME_MAX + 128)

/* GUCs, defined in settings.c (zksync.local_handoff: handoff.h) */
extern char *zksync_hosts;
extern char *zksync_root;
extern int	zksync_session_timeout;
extern int	zksync_connect_timeout;
extern char *zksync_auth;
extern bool zksync_synchronous_release;
extern int	zksync_max_holds;
extern char *zksync_lock_layout;

extern void zksync_settings_init(void);

/* ---------------------------------------------------------------------
 * names.c
 * ---------------------------------------------------------------------
 */
extern char *zksync_name_from_text(text *t, const char *what);
extern bool zksync_root_is_valid(const char *root, char **why);
extern bool zksync_hosts_are_valid(const char *hosts, char **why);

/* ---------------------------------------------------------------------
 * layout.c: where nodes live and how they are named
 * ---------------------------------------------------------------------
 */
#define ZKSYNC_LOCKS		"locks"
#define ZKSYNC_BARRIERS		"barriers"
#define ZKSYNC_DBARRIERS	"dbarriers"
#define ZKSYNC_SEMAPHORES	"semaphores"
#define ZKSYNC_WAITS		"waits"
#define ZKSYNC_DEADLOCKS	"deadlocks"

#define ZKSYNC_TAG_WRITE	"__WRIT__"
#define ZKSYNC_TAG_READ		"__READ__"
/* zksync.lock_layout = go: the Go zksync library's RWMutex names */
#define ZKSYNC_TAG_GO_WRITE	"write-"
#define ZKSYNC_TAG_GO_READ	"read-"
#define ZKSYNC_TAG_PART		"__PART__"
/* the double barrier's marker; every other child is a participant */
#define ZKSYNC_READY_NODE	"ready"
/* Apache Curator's InterProcessSemaphoreV2: its mutex and its leases */
#define ZKSYNC_TAG_MUTEX	"lock-"
#define ZKSYNC_TAG_LEASE	"lease-"

/* A child of a recipe's directory that takes part in its queue */
typedef struct ZkContender
{
	const char *name;			/* the child's name */
	int64		seq;			/* its sequence number */
	bool		reader;			/* a reader (any client's marker) */
} ZkContender;

#define ZKSYNC_NFIXED_DIRS	6
extern const char *const zksync_fixed_dirs[ZKSYNC_NFIXED_DIRS];
extern bool zksync_path_is_fixed(const char *path);
extern char *zksync_recipe_dir(const char *kind, const char *name);
extern char *zksync_child_path(const char *dir, const char *child);
extern void zksync_protected_prefix(char *buf, size_t len, const char *dir,
									const char *guid, const char *tag);
extern int64 zksync_node_sequence(const char *child);
extern void zksync_make_guid(char *buf, size_t len);
extern char *zksync_owner_data(const char *extra, int *len);

/* Who made a node (owner data), for the views */
typedef struct ZkOwner
{
	char	   *host;
	int			port;
	char	   *database;
	int			pid;
	char	   *application_name;
	char	   *cluster;		/* system identifier (NULL: not written) */
	char	   *backend_start;
} ZkOwner;

extern bool zksync_owner_parse(const char *data, int len, ZkOwner *o);
extern char *zksync_json_field(const char *data, int len, const char *key);
extern bool zksync_json_int(const char *data, int len, const char *key,
							int64 min, int64 max, int64 *out);
extern int	zksync_count_parse(const char *data, int len);
extern char *zksync_foreign_text(const char *bytes, int len);
extern char *zksync_foreign_cstring(const char *s);
extern const char *zksync_cluster_id(void);
extern char *zksync_session_text(int64 session);
extern const char *zksync_backend_start(void);
extern bool zksync_node_is_reader(const char *child);
extern void zksync_sort_by_sequence(char **children, int n);
extern const char *zksync_lock_tag(char mode);
extern bool zksync_dbarrier_is_participant(const char *child);
extern void zksync_sort_by_name(char **children, int n);
extern int	zksync_contenders(char **children, int nchildren,
							  ZkContender **out);

/* ---------------------------------------------------------------------
 * the connection layer: transport.c, session.c, releases.c, held.c,
 * watchdog.c (docs/transport.md)
 * ---------------------------------------------------------------------
 */
#include "transport.h"
#include "session.h"
#include "releases.h"
#include "held.h"

#include "nodes.h"

#include "tree.h"

/* ---------------------------------------------------------------------
 * waits.c: every wait in view, and deadlocks through ZooKeeper
 * ---------------------------------------------------------------------
 */

/*
 * A kind of queue a recipe keeps, registered for the views and the
 * deadlock scan: its directories and its rule (the one its wait uses).
 */
typedef struct ZkQueueKind
{
	const char *kind;			/* the views' kind: "lock", "semaphore" */
	const char *subdir;			/* its names live in {root}/{subdir} */
	int			nqueues;
	const char *queues[2];		/* the queues under {root}/{subdir}/{name};
								 * "" is that directory itself */
	/*
	 * Queue 0's room, from the data of the name's node (NULL: the kind
	 * keeps no count); 0 if the data records none
	 */
	int			(*room) (const char *data, int len);
	/* contender i of queue q (n of them, in order): its mode, in the views */
	const char *(*mode) (int q, const ZkContender *c);
	/* and in messages ("write lock", "semaphore") */
	const char *(*what) (int q, const ZkContender *c);
	/* is it granted?  `room` is queue 0's room if known, else 0 */
	bool		(*granted) (int q, const ZkContender *c, int n, int i, int room);
	/* does contender j block waiting contender i? */
	bool		(*blocks) (int q, const ZkContender *c, int n, int i, int j,
						   int room);
} ZkQueueKind;

/* A contender, read from ZooKeeper: a row of zksync_waits() */
typedef struct ZkWaitRow
{
	const ZkQueueKind *kind;
	int			queue;
	char	   *name;
	char	   *node;			/* full path */
	const char *mode;
	const char *what;
	bool		granted;
	int64		czxid;
	int64		ctime_ms;		/* when the node was made (Unix ms) */
	int64		session;		/* its ephemeral owner */
	bool		is_backend;		/* made by zksync: owner is known */
	ZkOwner		owner;
	/* its queue: rows[first .. first + count), contenders[index] is it */
	int			first;
	int			count;
	ZkContender *contenders;
	int			ncontenders;
	int			index;
	int			room;
} ZkWaitRow;

extern void zk_register_queue_kind(const ZkQueueKind *kind);
extern int	zk_read_waits(ZkWaitRow **rows);
extern int	zk_row_blockers(const ZkWaitRow *rows, int i, int *out);
extern int	zk_blocking(int pid, ZkWaitRow **rows, int **blockers);
extern void zk_wait_watch_begin(const ZkQueueKind *kind, int queue,
								const char *name, const char *node,
								int64 czxid);
extern ZkWaitResult zk_wait_watched(uint64 seen, bool (*also) (void),
									TimestampTz deadline);
extern void zk_wait_watch_step(void);
extern void zk_wait_watch_end(bool granted);

#include "queue.h"
#include "lock.h"
#include "semaphore.h"
#include "barrier.h"
#include "xact.h"
#include "handoff.h"

#endif							/* ZKSYNC_H */
