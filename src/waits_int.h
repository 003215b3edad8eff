/*-------------------------------------------------------------------------
 * waits_int.h
 *	  What waits.c, deadlock.c and marks.c share, and nobody else sees.
 *
 * waits.c reads the registered queues and keeps the wait in progress;
 * deadlock.c publishes that wait's record and looks for cycles through
 * the records and queues; marks.c writes, reads and verifies the marks
 * that tell a victim of a cycle it cannot see whole; gates.c reads
 * barriers, double barriers and the waits published for them
 * (docs/waits.md).
 * The names declared here carry no public prefix and are hidden from the
 * symbol table of the loaded library.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_WAITS_INT_H
#define ZKSYNC_WAITS_INT_H

#include "lib/stringinfo.h"
#include "storage/lock.h"

#include "waits.h"

#pragma GCC visibility push(hidden)

/* A cycle is confirmed this soon (ms) after a scan first finds it. */
#define CONFIRM_MS			100
#define MARK_MAX_BYTES		32768	/* a mark's data, at most */
#define MARK_MAX_HOPS		64	/* waits in a marked cycle, at most */
#define MARK_MAX_LINKS		64	/* PostgreSQL waits in a chain, at most */

/* ---- waits.c ---- */

/* The wait in progress: one per backend, since a backend waits for one thing */
typedef struct Wait
{
	bool		active;
	const ZkQueueKind *kind;
	int			queue;
	char		name[ZKSYNC_NAME_MAX + 1];
	char		node[ZKSYNC_PATH_MAX];	/* our waiting node */
	ZkQueueWhat what;			/* what it waits for, in messages */
	ZkGateWhat	gate;			/* a gate's wait: what it waits for (what is
								 * then unused); ZKG_NONE for a queue's */
	int			participants;	/* ZKG_DBARRIER_ENTER: how many it waits for */
	int64		czxid;			/* of our node, 0 until known */
	TimestampTz start;
	TimestampTz next_check;		/* 0: none yet */
	bool		logged;			/* "still waiting" was logged */
	/* the node was granted; the same wait goes on with another node */
	bool		continues;
	/* deadlock.c's: our record, the last cycle seen, the marks we left */
	bool		published;
	char		record[ZKSYNC_PATH_MAX];
	char	   *last_cycle;		/* the cycle the last scan found, or NULL */
	int			rescan_ms;		/* the last interval between scans */
	int			nmarks;
	char		marks[4][ZKSYNC_PATH_MAX];	/* marks we left for others */
} Wait;

extern Wait watched_wait;

/* One queue to read: {root}/{kind->subdir}/{name}[/{queue}] */
typedef struct Target
{
	const ZkQueueKind *kind;
	int			queue;
	char	   *name;
	char	   *dir;
	bool		ride_out;		/* a lost connection is waited out, not taken
								 * for an empty queue */
	int			capacity;		/* queue 0's capacity if known, else 0 */
	ZkReq	   *capacity_get;
	ZkReq	   *listing;
	ZkContender *c;
	int			n;
	ZkReq	  **gets;
} Target;

extern const ZkQueueKind *const *queue_kinds(int *n);
extern Target *target_new(const ZkQueueKind *kind, int queue, const char *name);
extern int	read_targets(Target **t, int nt, ZkWaitRow **out);
extern bool row_blocks(const ZkWaitRow *rows, int i, int j);
extern bool row_is_local_backend(const ZkWaitRow *r);
extern char *describe_owner(const ZkWaitRow *r);
extern void append_wait_line(StringInfo s, const ZkOwner *waiter,
							 ZkQueueWhat what, const char *name,
							 const ZkWaitRow *blocker);
extern void log_still_waiting(const char *detail);

/* ---- deadlock.c ---- */

/* A published wait, as a scan reads it */
typedef struct Record
{
	int64		session;
	ZkOwner		owner;
	char	   *name;
	char	   *node;
	int64		czxid;
	char	   *leaving;		/* its session's nodes on their way out */
	bool		leaving_unknown;	/* ... too many to list */
	int			row;			/* its waiting node among the rows, or -1 */
} Record;

/*
 * A link of a chain of PostgreSQL lock waits: process `pid` waits for the
 * lock `tag` in `mode` (known false: for no heavyweight lock we can name).
 * Kept as numbers, so that a mark can carry it and the victim describe it
 * itself, with no text of the marker's.
 */
typedef struct PgLink
{
	int			pid;
	bool		known;
	LOCKMODE	mode;
	LOCKTAG		tag;
} PgLink;

/* An edge of the wait graph: record `from` waits for record `to` */
typedef struct Edge
{
	int			from;
	int			to;
	int			blocker;		/* the row that blocks from's waiting node */
	char	   *text;			/* its lines of the errdetail */
	bool		via_pg;			/* through PostgreSQL locks of this cluster */
	PgLink	   *links;			/* via_pg: the chain, from the blocker's owner
								 * on to `to`'s process */
	int			nlinks;
} Edge;

/* What one scan read: the records, their queues' rows, the edges */
typedef struct Graph
{
	Record	   *rec;
	int			nrec;
	ZkWaitRow  *rows;
	int			nrows;
	Edge	   *edges;
	int			nedges;
	int			maxedges;
	LockData   *pg_locks;		/* read once, if PostgreSQL edges are followed */
} Graph;

/* A deadlock mark left for us, as read: its data and who wrote it */
typedef struct MarkRead
{
	char	   *data;			/* NULL: no mark */
	int			len;
	int64		owner;			/* the marker's session */
} MarkRead;

extern void check_wait(void);
extern void publish_wait(void);
extern bool published_here(void);
extern void withdraw_record(void);
extern int	put_ephemeral(const char *path, const char *data);
extern bool node_stays(const Record *r, const char *node);
extern void append_link_line(StringInfo s, const char *cluster,
							 const PgLink *l, int next_pid);

/* ---- marks.c ---- */
extern char *verify_mark(Graph *g, int me, const MarkRead *m,
						 const char **why);
extern void delete_mark(void);
extern void leave_mark(Graph *g, int *cycle, int len, int victim);
extern void withdraw_marks(void);

/* ---- gates.c ---- */
typedef struct GateRead GateRead;

extern GateRead *gates_send(void);
extern int	gates_collect(GateRead *gr, ZkWaitRow **rows);
extern bool gate_row_blocks(const ZkWaitRow *rows, int i, int j);
extern const char *gate_kind_text(ZkGateWhat what);
extern const char *gate_what_text(ZkGateWhat what);
extern bool is_gate_kind(const char *kind);
extern void check_gate_wait(void);

#pragma GCC visibility pop

#endif							/* ZKSYNC_WAITS_INT_H */
