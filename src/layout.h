/*-------------------------------------------------------------------------
 * layout.h
 *	  Where zksync's nodes live in ZooKeeper, how they are named, and how
 *	  data other clients wrote is read (layout.c; docs/foreign-data.md).
 *
 * Nothing here talks to ZooKeeper.  Every reader of node data takes the
 * length ZooKeeper returned and never reads past it.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_LAYOUT_H
#define ZKSYNC_LAYOUT_H

/* Longest name (one path component) and root we accept, in bytes. */
#define ZKSYNC_NAME_MAX		200
#define ZKSYNC_ROOT_MAX		256
/* Longest path we ever build: root + "/locks/" + name + "/" + node name. */
#define ZKSYNC_PATH_MAX		(ZKSYNC_ROOT_MAX + ZKSYNC_NAME_MAX + 128)

/* The directories under zksync.root */
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
	char	   *cluster_name;	/* its cluster_name setting, checked (NULL:
								 * empty, not written, or not one) */
} ZkOwner;

/* Paths and names */
#define ZKSYNC_NFIXED_DIRS	6
extern const char *const zksync_fixed_dirs[ZKSYNC_NFIXED_DIRS];
extern bool zksync_path_is_fixed(const char *path);
extern char *zksync_recipe_dir(const char *kind, const char *name);
extern char *zksync_child_path(const char *dir, const char *child);
extern void zksync_protected_prefix(char *buf, size_t len, const char *dir,
									const char *guid, const char *tag);
extern int64 zksync_node_sequence(const char *child);
extern void zksync_make_guid(char *buf, size_t len);
extern bool zksync_node_is_reader(const char *child);
extern void zksync_sort_by_sequence(char **children, int n);
extern const char *zksync_lock_tag(char mode);
extern bool zksync_dbarrier_is_participant(const char *child);
extern void zksync_sort_by_name(char **children, int n);
extern int	zksync_contenders(char **children, int nchildren,
							  ZkContender **out);

/* Owner data: what we write, and reading what anyone wrote */
extern char *zksync_owner_data(const char *extra, int *len);
extern bool zksync_owner_parse(const char *data, int len, ZkOwner *o);
extern char *zksync_owner_text(const char *data, int len);
extern const char *zksync_cluster_id(void);
extern char *zksync_owner_cluster(const ZkOwner *o);
extern char *zksync_my_cluster(void);
extern char *zksync_session_text(int64 session);
extern const char *zksync_backend_start(void);

/* The JSON reader, and foreign text */
extern char *zksync_json_field(const char *data, int len, const char *key);
extern bool zksync_json_int(const char *data, int len, const char *key,
							int64 min, int64 max, int64 *out);
extern int	zksync_count_parse(const char *data, int len);
extern char *zksync_foreign_text(const char *bytes, int len);
extern char *zksync_foreign_cstring(const char *s);

#endif							/* ZKSYNC_LAYOUT_H */
