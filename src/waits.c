/*-------------------------------------------------------------------------
 * waits.c
 *	  Every wait in view, and deadlocks that run through ZooKeeper.
 *
 * The queues.  A recipe registers the kind of queue it keeps
 * (ZkQueueKind: where its directories are, the mode of a contender, its
 * grant rule and which contenders block a waiting one), the same rule its
 * wait uses.  This file reads them all, for any cluster or client:
 *
 *	 zksync_waits()		every contender node of every registered queue,
 *						granted or not, with who made it (its owner data,
 *						layout.c) and when (the node's ctime);
 *	 zksync_blocking()	the contenders that block a local backend's wait.
 *
 * Reads are pipelined: the directories of every name are listed at once,
 * and each listing's nodes are read as soon as it is in, so that thousands
 * of locks cost a few round trips, not one per node.
 *
 * Deadlocks.  PostgreSQL finds a deadlock among its own locks once a
 * backend has waited deadlock_timeout; nothing finds one that runs through
 * ZooKeeper.  A zksync wait (queue.c, semaphore.c) waits through
 * zk_wait_watched(), which at deadlock_timeout
 *
 *	 1. publishes the wait: {root}/waits/{session id}, ephemeral, whose data
 *		says who waits (owner data) with which node; gone when the wait
 *		ends, or with the session;
 *	 2. logs "still waiting" if log_lock_waits is on (and "acquired" when
 *		the wait ends with a grant);
 *	 3. scans: reads every published wait and the queues they wait in, and
 *		follows the edges: a waiting node is blocked by the nodes the
 *		queue's rule names; a blocker whose session has published a wait
 *		is a waiter too; a blocker that is a backend of this cluster and
 *		does not wait in zksync may wait for a PostgreSQL lock, and
 *		pg_blocking_pids() leads on from it, to a zksync waiter of this
 *		cluster perhaps.  A cycle back to us is a deadlock.
 *
 * A node is not always what it looks like: a node we released stays in
 * its queue, granted or not, until the server has applied the delete (a
 * delete in flight, one sent again after a lost connection, a create
 * abandoned whose node is still being looked for).  A backend that
 * releases and locks again at once then finds its old node ahead of its
 * new one, and would take itself for a deadlock (or two such backends,
 * each other).  So a record also lists the nodes of its session that are
 * on their way out (zk_leaving_nodes), and a blocker among them is no
 * edge.  (A backend may wait for itself for real: all the leases of a
 * semaphore held, and one more asked for.)  The list is taken when the
 * record is written and only shrinks while the wait lasts: nothing is
 * released during a wait.
 *
 * Scans repeat while the wait lasts.  A cycle counts only when a second
 * scan finds it again: queues move, and one snapshot read over several
 * round trips may show edges that never existed together.  Edges come from
 * the queues as they are, never from a record alone, so a record whose
 * wait has just ended adds nothing.
 *
 * Exactly one waiter of a cycle ends it: the youngest wait, the one whose
 * waiting node ZooKeeper made last (the largest czxid; a total order that
 * every member of the cycle sees alike).  If the youngest is us, ERROR
 * 40P01 and the queue removes our node.  Another member that may not see
 * the cycle itself (it runs through PostgreSQL locks of a cluster other
 * than the victim's) is told through a mark, {root}/deadlocks/{its session
 * id}, that names the victim's waiting node and the cycle; a waiter reads
 * its mark at every scan, and acts on it only if it names its current wait
 * and its own reading of the records confirms every hop ("Deadlock marks"
 * below); other marks it deletes.  Marks are ephemeral; the marker deletes
 * its own when its wait ends, the victim when it acted on one.
 *
 * Nothing here happens before deadlock_timeout: a wait that is granted
 * sooner costs nothing more.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "zksync.h"

/*
 * Scans after the first: soon to confirm a cycle; else soon again (the
 * other waits of a cycle that formed at once may not be published yet),
 * then less and less often, every max(deadlock_timeout, 1 s) at last.
 */
#define CONFIRM_MS			100
#define RESCAN_FIRST_MS		200		/* then doubling, up to: */
#define RESCAN_MIN_MS		1000
#define LEAVING_MAX			256		/* nodes on their way out, in a record */
#define MARK_MAX_BYTES		32768	/* a mark's data, at most */
#define MARK_MAX_HOPS		64		/* waits in a marked cycle, at most */
#define MARK_MAX_LINKS		64		/* PostgreSQL waits in a chain, at most */

static const ZkQueueKind *kinds[4];
static int	nkinds = 0;

void
zk_register_queue_kind(const ZkQueueKind *kind)
{
	if (nkinds == (int) lengthof(kinds))
		elog(ERROR, "too many zksync queue kinds");
	kinds[nkinds++] = kind;
}

/* ---------------------------------------------------------------------
 * Reading queues
 * ---------------------------------------------------------------------
 */

/* One queue to read: {root}/{kind->subdir}/{name}[/{queue}] */
typedef struct Target
{
	const ZkQueueKind *kind;
	int			queue;
	char	   *name;
	char	   *dir;
	int			room;			/* queue 0's room if known, else 0 */
	ZkReq	   *room_get;
	ZkReq	   *listing;
	ZkContender *c;
	int			n;
	ZkReq	  **gets;
} Target;

static Target *
target_new(const ZkQueueKind *kind, int queue, const char *name)
{
	Target	   *t = palloc0(sizeof(Target));

	t->kind = kind;
	t->queue = queue;
	t->name = pstrdup(name);
	t->dir = kind->queues[queue][0] ?
		psprintf("%s/%s/%s/%s", zksync_root, kind->subdir, name, kind->queues[queue]) :
		psprintf("%s/%s/%s", zksync_root, kind->subdir, name);
	return t;
}

/*
 * Read the targets: every listing (and count) sent at once, each
 * listing's nodes read as soon as it is in; then form the rows, queue by
 * queue in sequence order.  Connection errors leave a queue out.
 */
static int
read_targets(Target **t, int nt, ZkWaitRow **out)
{
	ZkWaitRow  *rows;
	int			total = 0,
				nrows = 0,
				i,
				j;

	for (i = 0; i < nt; i++)
	{
		if (t[i]->kind->room && t[i]->queue == 0)
			t[i]->room_get = zk_get(psprintf("%s/%s/%s", zksync_root,
											 t[i]->kind->subdir, t[i]->name),
									false);
		t[i]->listing = zk_get_children(t[i]->dir);
	}
	for (i = 0; i < nt; i++)
	{
		ZkReq	   *g = t[i]->listing;

		if (zk_call(g) != ZOK)
			continue;
		t[i]->n = zksync_contenders(zk_req_children(g), zk_req_nchildren(g), &t[i]->c);
		t[i]->gets = palloc(sizeof(ZkReq *) * (t[i]->n + 1));
		for (j = 0; j < t[i]->n; j++)
			t[i]->gets[j] = zk_get(psprintf("%s/%s", t[i]->dir, t[i]->c[j].name),
								   false);
		total += t[i]->n;
	}
	rows = palloc0(sizeof(ZkWaitRow) * (total + 1));
	for (i = 0; i < nt; i++)
	{
		Target	   *q = t[i];
		int			first = nrows;

		if (q->room_get)
		{
			if (zk_call(q->room_get) == ZOK)
				q->room = q->kind->room(zk_req_data(q->room_get),
										zk_req_datalen(q->room_get));
			zk_req_free(q->room_get);
		}
		for (j = 0; j < q->n; j++)
		{
			ZkWaitRow  *r = &rows[nrows];
			ZkReq	   *g = q->gets[j];

			/* a node gone meanwhile is left out; its place stays known */
			if (zk_call(g) == ZOK)
			{
				r->kind = q->kind;
				r->queue = q->queue;
				r->name = q->name;
				r->node = psprintf("%s/%s", q->dir, q->c[j].name);
				r->mode = q->kind->mode(q->queue, &q->c[j]);
				r->what = q->kind->what(q->queue, &q->c[j]);
				r->granted = q->kind->granted(q->queue, q->c, q->n, j, q->room);
				r->czxid = zk_req_czxid(g);
				r->ctime_ms = zk_req_ctime(g);
				r->session = zk_req_ephemeral_owner(g);
				r->is_backend = zksync_owner_parse(zk_req_data(g), zk_req_datalen(g),
												   &r->owner);
				r->contenders = q->c;
				r->ncontenders = q->n;
				r->index = j;
				r->room = q->room;
				r->first = first;
				nrows++;
			}
			zk_req_free(g);
		}
		zk_req_free(q->listing);
	}
	/* the queue of each row: rows[first .. first + count) */
	for (i = 0; i < nrows; i++)
	{
		int			k = rows[i].first;

		while (k < nrows && rows[k].first == rows[i].first)
			k++;
		rows[i].count = k - rows[i].first;
	}
	*out = rows;
	return nrows;
}

/*
 * Every contender of every registered queue under zksync.root.  Returns
 * how many rows; *rows is palloc'd.
 */
int
zk_read_waits(ZkWaitRow **rows)
{
	ZkReq	   *lists[lengthof(kinds)];
	Target	  **t = NULL;
	int			nt = 0,
				maxt = 0,
				k,
				i,
				q;

	zk_connect();
	for (k = 0; k < nkinds; k++)
		lists[k] = zk_get_children(psprintf("%s/%s", zksync_root, kinds[k]->subdir));
	for (k = 0; k < nkinds; k++)
	{
		ZkReq	   *g = lists[k];
		int			rc = zk_call(g);

		if (rc != ZOK && rc != ZNONODE)
		{
			for (i = k; i < nkinds; i++)
				zk_req_free(lists[i]);
			zk_report_error(rc, "get_children", zksync_root);
		}
		for (i = 0; rc == ZOK && i < zk_req_nchildren(g); i++)
			for (q = 0; q < kinds[k]->nqueues; q++)
			{
				if (nt == maxt)
				{
					maxt = maxt ? maxt * 2 : 64;
					t = t ? repalloc(t, sizeof(Target *) * maxt) :
						palloc(sizeof(Target *) * maxt);
				}
				t[nt++] = target_new(kinds[k], q, zk_req_children(g)[i]);
			}
		zk_req_free(g);
	}
	return read_targets(t, nt, rows);
}

/* Does row j block row i (both of one queue)? */
static bool
row_blocks(const ZkWaitRow *rows, int i, int j)
{
	const ZkWaitRow *a = &rows[i];

	if (a->granted || j == i || rows[j].first != a->first)
		return false;
	return a->kind->blocks(a->queue, a->contenders, a->ncontenders,
						   a->index, rows[j].index, a->room);
}

/*
 * The rows that block row i, into `out` (room for rows[i].count); returns
 * how many.
 */
int
zk_row_blockers(const ZkWaitRow *rows, int i, int *out)
{
	int			n = 0,
				j;

	for (j = rows[i].first; j < rows[i].first + rows[i].count; j++)
		if (row_blocks(rows, i, j))
			out[n++] = j;
	return n;
}

/* Is local pid `pid` the backend that started at `start` (owner data)? */
static bool
local_backend_is(int pid, const char *start)
{
	int			n = pgstat_fetch_stat_numbackends(),
				i;

	for (i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *l = pgstat_fetch_stat_local_beentry(i);

		if (l && l->backendStatus.st_procpid == pid)
			return start == NULL ||
				strcmp(timestamptz_to_str(l->backendStatus.st_proc_start_timestamp),
					   start) == 0;
	}
	return false;
}

/* Is this row's owner a live backend of this cluster? */
static bool
row_is_local_backend(const ZkWaitRow *r)
{
	return r->is_backend && r->owner.cluster &&
		strcmp(r->owner.cluster, zksync_cluster_id()) == 0 &&
		local_backend_is(r->owner.pid, r->owner.backend_start);
}

/*
 * The contenders that block the zksync wait of local backend `pid`:
 * indexes into *rows (all contenders, read afresh).
 */
int
zk_blocking(int pid, ZkWaitRow **rows, int **blockers)
{
	int			n,
				nb = 0,
				i;

	pgstat_clear_snapshot();
	n = zk_read_waits(rows);
	*blockers = palloc(sizeof(int) * (n + 1));
	for (i = 0; i < n; i++)
	{
		ZkWaitRow  *r = &(*rows)[i];

		if (r->granted || r->owner.pid != pid || !row_is_local_backend(r))
			continue;
		nb += zk_row_blockers(*rows, i, *blockers + nb);
	}
	return nb;
}

/* "process 123 on cluster 7301..." or "ZooKeeper session 0x..." */
static char *
who(const ZkWaitRow *r)
{
	if (r->is_backend)
		return psprintf("process %d on cluster %s", r->owner.pid,
						r->owner.cluster ? r->owner.cluster : "?");
	return psprintf("ZooKeeper session %s (another client)", zksync_session_text(r->session));
}

/* ---------------------------------------------------------------------
 * The wait in progress, and what happens at deadlock_timeout
 * ---------------------------------------------------------------------
 */

typedef struct Wait
{
	bool		active;
	const ZkQueueKind *kind;
	int			queue;
	char		name[ZKSYNC_NAME_MAX + 1];
	char		node[ZKSYNC_PATH_MAX];	/* our waiting node */
	const char *what;			/* "write lock" ... */
	int64		czxid;			/* of our node, 0 until known */
	TimestampTz start;
	TimestampTz next_check;		/* 0: none yet */
	bool		logged;			/* "still waiting" was logged */
	bool		published;
	char		record[ZKSYNC_PATH_MAX];
	char	   *last_cycle;		/* the cycle the last scan found, or NULL */
	int			rescan_ms;		/* the last interval between scans */
	bool		carried;		/* a step is over; the next goes on (step) */
	int			nmarks;
	char		marks[4][ZKSYNC_PATH_MAX];	/* marks we left for others */
} Wait;

static Wait cur_wait;

/* The node the wait waits with, and how messages name what it waits for */
static void
wait_node(const ZkQueueKind *kind, int queue, const char *node, int64 czxid)
{
	ZkContender me;

	cur_wait.queue = queue;
	strlcpy(cur_wait.node, node, sizeof(cur_wait.node));
	me.name = strrchr(node, '/') + 1;
	me.seq = zksync_node_sequence(me.name);
	me.reader = zksync_node_is_reader(me.name);
	cur_wait.what = kind->what(queue, &me);
	cur_wait.czxid = czxid;
}

/*
 * A wait with our node `node` in queue `queue` of `kind` begins (or goes
 * on, if it is the same node).  `czxid` is the node's, 0 if unknown.
 */
void
zk_wait_watch_begin(const ZkQueueKind *kind, int queue, const char *name,
					const char *node, int64 czxid)
{
	if (cur_wait.active && strcmp(cur_wait.node, node) == 0)
		return;
	if (cur_wait.active && cur_wait.carried && cur_wait.kind == kind &&
		strcmp(cur_wait.name, name) == 0)
	{
		/* the next step of the same wait: its clock and log line go on */
		cur_wait.carried = false;
		wait_node(kind, queue, node, czxid);
		if (cur_wait.last_cycle)
			pfree(cur_wait.last_cycle);
		cur_wait.last_cycle = NULL;
		return;
	}
	zk_wait_watch_end(false);
	memset(&cur_wait, 0, sizeof(cur_wait));
	cur_wait.active = true;
	cur_wait.kind = kind;
	strlcpy(cur_wait.name, name, sizeof(cur_wait.name));
	wait_node(kind, queue, node, czxid);
	cur_wait.start = GetCurrentTimestamp();
	if (DeadlockTimeout > 0)
		cur_wait.next_check = TimestampTzPlusMilliseconds(cur_wait.start, DeadlockTimeout);
}

static void
log_elapsed(const char *verb, const char *detail)
{
	long		secs;
	int			usecs;
	long		msecs;

	TimestampDifference(cur_wait.start, GetCurrentTimestamp(), &secs, &usecs);
	msecs = secs * 1000 + usecs / 1000;
	usecs = usecs % 1000;
	if (detail)
		ereport(LOG,
				(errmsg("process %d %s zksync %s \"%s\" after %ld.%03d ms",
						MyProcPid, verb, cur_wait.what, cur_wait.name, msecs, usecs),
				 errdetail_log("%s", detail)));
	else
		ereport(LOG,
				(errmsg("process %d %s zksync %s \"%s\" after %ld.%03d ms",
						MyProcPid, verb, cur_wait.what, cur_wait.name, msecs, usecs)));
}

/*
 * A step of a longer wait is over (a semaphore's mutex, granted): our
 * record goes, since the node it names no longer waits; the clock and the
 * log line go on with the next step's zk_wait_watch_begin() for the same
 * name, or end with zk_wait_watch_end().  Never throws.
 */
void
zk_wait_watch_step(void)
{
	if (!cur_wait.active)
		return;
	if (cur_wait.published)
		zk_release_node(cur_wait.record, 0, true);
	cur_wait.published = false;
	cur_wait.carried = true;
	cur_wait.node[0] = '\0';
}

/* The wait is over (granted or not).  Never throws. */
void
zk_wait_watch_end(bool granted)
{
	int			i;

	if (!cur_wait.active)
		return;
	cur_wait.active = false;
	if (granted && cur_wait.logged)
		log_elapsed("acquired", NULL);
	if (cur_wait.published)
		zk_release_node(cur_wait.record, 0, true);
	for (i = 0; i < cur_wait.nmarks; i++)
		zk_release_node(cur_wait.marks[i], 0, true);
	if (cur_wait.last_cycle)
		pfree(cur_wait.last_cycle);
	cur_wait.last_cycle = NULL;
}

/* Create `path` (ephemeral) with `data`, or set its data if it exists. */
static int
put_ephemeral(const char *path, const char *data)
{
	int			len = strlen(data);
	int			rc;

	for (;;)
	{
		ZkReq	   *r = zk_create(path, data, len, ZOO_EPHEMERAL);

		rc = zk_call(r);
		zk_req_free(r);
		if (rc == ZNONODE)
		{
			char	   *dir = pnstrdup(path, strrchr(path, '/') - path);

			rc = zk_ensure_parents(dir);
			if (rc != ZOK)
				return rc;
			continue;
		}
		if (rc == ZNODEEXISTS)
		{
			/* a record of an earlier wait, its delete still on the way */
			r = zk_set(path, data, len);
			rc = zk_call(r);
			zk_req_free(r);
			if (rc == ZNONODE)
				continue;
		}
		return rc;
	}
}

/*
 * The nodes of our session on their way out, for the record: "leaving",
 * one path or path prefix a line; "leaving_unknown" if they are too many
 * to list (then no node of ours but the waiting one is taken for a wait).
 */
static void
append_leaving(StringInfo extra)
{
	char	  **prefixes;
	int			n = zk_leaving_nodes(&prefixes, LEAVING_MAX),
				i;
	StringInfoData lines;

	if (n < 0)
	{
		appendStringInfoString(extra, ",\"leaving_unknown\":true");
		return;
	}
	initStringInfo(&lines);
	for (i = 0; i < n; i++)
		appendStringInfo(&lines, "%s%s", i ? "\n" : "", prefixes[i]);
	appendStringInfoString(extra, ",\"leaving\":");
	escape_json(extra, lines.data);
}

/* Step 1: the record of our wait, for the scans of others */
static void
publish(void)
{
	StringInfoData extra;
	char	   *data;
	int			len;
	int			rc;

	if (cur_wait.czxid == 0)
	{
		ZkReq	   *e = zk_exists(cur_wait.node, false);

		if (zk_call(e) == ZOK)
			cur_wait.czxid = zk_req_czxid(e);
		zk_req_free(e);
	}
	initStringInfo(&extra);
	appendStringInfoString(&extra, "\"kind\":");
	escape_json(&extra, cur_wait.kind->kind);
	appendStringInfoString(&extra, ",\"what\":");
	escape_json(&extra, cur_wait.what);
	appendStringInfoString(&extra, ",\"name\":");
	escape_json(&extra, cur_wait.name);
	appendStringInfoString(&extra, ",\"node\":");
	escape_json(&extra, cur_wait.node);
	appendStringInfo(&extra, ",\"czxid\":" INT64_FORMAT, cur_wait.czxid);
	append_leaving(&extra);
	data = zksync_owner_data(extra.data, &len);
	snprintf(cur_wait.record, sizeof(cur_wait.record), "%s/%s/%s", zksync_root,
			 ZKSYNC_WAITS, zksync_session_text(zk_session_id()));
	/*
	 * Published from the moment the create may be sent: if an interrupt or
	 * a lost connection ends the wait before the reply, the end of the wait
	 * still deletes the record (the delete follows the create on the
	 * session).
	 */
	cur_wait.published = true;
	rc = put_ephemeral(cur_wait.record, data);
	if (rc != ZOK && !zk_is_connection_error(rc))
		cur_wait.published = false;
}

/* A published wait, as a scan reads it */
typedef struct Record
{
	int64		session;
	ZkOwner		owner;
	char	   *what;
	char	   *name;
	char	   *node;
	int64		czxid;
	char	   *leaving;		/* its session's nodes on their way out */
	bool		leaving_unknown;	/* ... too many to list */
	int			row;			/* its waiting node among the rows, or -1 */
} Record;

/*
 * May node `node` of record r's session be taken for a wait of r's?  Not
 * if it is on its way out (r's list: a path, or a hunt's path prefix).
 */
static bool
node_stays(const Record *r, const char *node)
{
	const char *line = r->leaving;

	if (strcmp(node, r->node) == 0)
		return true;
	if (r->leaving_unknown)
		return false;
	while (line && *line)
	{
		const char *end = strchrnul(line, '\n');

		if (end > line && strncmp(node, line, end - line) == 0)
			return false;
		line = *end ? end + 1 : end;
	}
	return true;
}

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
	PgLink	   *links;			/* via_pg: the chain, from the blocker's
								 * owner on to `to`'s process */
	int			nlinks;
} Edge;

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

static void
add_edge(Graph *g, int from, int to, int blocker, char *text,
		 PgLink *links, int nlinks)
{
	if (g->nedges == g->maxedges)
	{
		g->maxedges = g->maxedges ? g->maxedges * 2 : 16;
		g->edges = g->edges ? repalloc(g->edges, sizeof(Edge) * g->maxedges) :
			palloc(sizeof(Edge) * g->maxedges);
	}
	g->edges[g->nedges].from = from;
	g->edges[g->nedges].to = to;
	g->edges[g->nedges].blocker = blocker;
	g->edges[g->nedges].text = text;
	g->edges[g->nedges].via_pg = links != NULL;
	g->edges[g->nedges].links = links;
	g->edges[g->nedges].nlinks = nlinks;
	g->nedges++;
}

/* The record of a local backend, by pid, or -1 */
static int
record_of_local_pid(Graph *g, int pid)
{
	int			i;

	for (i = 0; i < g->nrec; i++)
		if (g->rec[i].owner.pid == pid && g->rec[i].owner.cluster &&
			strcmp(g->rec[i].owner.cluster, zksync_cluster_id()) == 0)
			return i;
	return -1;
}

/* The heavyweight lock local pid waits for, as a link of a chain */
static PgLink
pg_wait_link(Graph *g, int pid)
{
	PgLink		link;
	int			i;

	memset(&link, 0, sizeof(link));
	link.pid = pid;
	if (g->pg_locks == NULL)
		g->pg_locks = GetLockStatusData();
	for (i = 0; i < g->pg_locks->nelements; i++)
	{
		LockInstanceData *l = &g->pg_locks->locks[i];

		if (l->pid == pid && l->waitLockMode != NoLock)
		{
			link.known = true;
			link.mode = l->waitLockMode;
			link.tag = l->locktag;
			break;
		}
	}
	return link;
}

/*
 * Can PostgreSQL describe this lock?  Checks what DescribeLockTag and
 * GetLockmodeName take for granted, for a link read from a mark.
 */
static bool
link_is_sane(const PgLink *l)
{
	return !l->known ||
		((l->tag.locktag_lockmethodid == DEFAULT_LOCKMETHOD ||
		  l->tag.locktag_lockmethodid == USER_LOCKMETHOD) &&
		 l->mode >= 1 && l->mode <= MaxLockMode &&
		 l->tag.locktag_type <= LOCKTAG_LAST_TYPE);
}

/*
 * Link l of a chain on `cluster`, on a line of its own: "Process 12 on
 * cluster 73... waits for ShareLock on transaction 123; blocked by
 * process 34."
 */
static void
append_link_line(StringInfo s, const char *cluster, const PgLink *l, int next_pid)
{
	appendStringInfo(s, "\nProcess %d on cluster %s waits for ", l->pid, cluster);
	if (l->known)
	{
		appendStringInfo(s, "%s on ",
						 GetLockmodeName(l->tag.locktag_lockmethodid, l->mode));
		DescribeLockTag(s, &l->tag);
	}
	else
		appendStringInfoString(s, "a PostgreSQL lock");
	appendStringInfo(s, "; blocked by process %d.", next_pid);
}

static ArrayType *
blocking_pids(int pid)
{
	return DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids,
												  Int32GetDatum(pid)));
}

/*
 * From local backend `holder` (it holds the node that blocks record
 * `from` and waits in no zksync queue), follow PostgreSQL's waits on this
 * cluster to zksync waiters: an edge for each one found, with the chain
 * in its text.
 */
static void
follow_pg(Graph *g, int from, int blocker, const char *first_line, int holder)
{
	int			maxq = 64;
	int		   *pids = palloc(sizeof(int) * maxq);
	int		   *parent = palloc(sizeof(int) * maxq);
	int			head = 0,
				tail = 0;

	pids[tail] = holder;
	parent[tail++] = -1;
	while (head < tail)
	{
		int			at = head++;
		ArrayType  *arr = blocking_pids(pids[at]);
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i,
					k;

		deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
		for (i = 0; i < n; i++)
		{
			int			p = DatumGetInt32(elems[i]);
			int			r;
			bool		seen = false;

			for (k = 0; k < tail; k++)
				seen |= pids[k] == p;
			if (seen)
				continue;
			r = record_of_local_pid(g, p);
			if (r >= 0)
			{
				/* the chain holder .. pids[at] -> p, in order */
				StringInfoData s;
				PgLink	   *links;
				int			chain[MARK_MAX_LINKS];
				int			len = 0,
							c;

				for (c = at; c >= 0 && len < MARK_MAX_LINKS; c = parent[c])
					chain[len++] = c;
				links = palloc(sizeof(PgLink) * len);
				for (c = 0; c < len; c++)
					links[c] = pg_wait_link(g, pids[chain[len - 1 - c]]);
				initStringInfo(&s);
				appendStringInfoString(&s, first_line);
				for (c = 0; c < len; c++)
					append_link_line(&s, zksync_cluster_id(), &links[c],
									 c + 1 < len ? links[c + 1].pid : p);
				add_edge(g, from, r, blocker, s.data, links, len);
				continue;
			}
			if (tail == maxq)
			{
				if (maxq >= 1024)
					continue;
				maxq *= 2;
				pids = repalloc(pids, sizeof(int) * maxq);
				parent = repalloc(parent, sizeof(int) * maxq);
			}
			pids[tail] = p;
			parent[tail++] = at;
		}
	}
}

/*
 * Read the published waits and their queues; build the edges.  Sets
 * *mark to the mark left for us, if any (its data unchecked: see
 * verify_mark).  Returns our record's index, or -1 if ours is not among
 * them.
 */
static int
build_graph(Graph *g, MarkRead *mark)
{
	char	   *dir = psprintf("%s/%s", zksync_root, ZKSYNC_WAITS);
	char	   *my_session = zksync_session_text(zk_session_id());
	ZkReq	   *list = zk_get_children(dir);
	ZkReq	   *markg = zk_get(psprintf("%s/%s/%s", zksync_root, ZKSYNC_DEADLOCKS,
										my_session), false);
	ZkReq	  **gets;
	Target	  **t;
	int			nt = 0,
				me = -1,
				i,
				j;

	memset(g, 0, sizeof(*g));
	memset(mark, 0, sizeof(*mark));
	if (zk_call(markg) == ZOK && zk_req_data(markg))
	{
		mark->len = zk_req_datalen(markg);
		mark->data = palloc(mark->len + 1);
		memcpy(mark->data, zk_req_data(markg), mark->len);
		mark->data[mark->len] = '\0';
		mark->owner = zk_req_ephemeral_owner(markg);
	}
	zk_req_free(markg);
	if (zk_call(list) != ZOK)
	{
		zk_req_free(list);
		return -1;
	}
	gets = palloc(sizeof(ZkReq *) * (zk_req_nchildren(list) + 1));
	for (i = 0; i < zk_req_nchildren(list); i++)
		gets[i] = zk_get(psprintf("%s/%s", dir, zk_req_children(list)[i]), false);
	g->rec = palloc0(sizeof(Record) * (zk_req_nchildren(list) + 1));
	t = palloc(sizeof(Target *) * (zk_req_nchildren(list) + 1));
	for (i = 0; i < zk_req_nchildren(list); i++)
	{
		Record	   *r = &g->rec[g->nrec];

		if (zk_call(gets[i]) == ZOK && zk_req_data(gets[i]) &&
			zksync_owner_parse(zk_req_data(gets[i]), zk_req_datalen(gets[i]), &r->owner) &&
			(r->node = zksync_json_field(zk_req_data(gets[i]), zk_req_datalen(gets[i]), "node")) != NULL &&
			zksync_json_int(zk_req_data(gets[i]), zk_req_datalen(gets[i]), "czxid", 0, PG_INT64_MAX, &r->czxid))
		{
			int			k;
			const char *data = zk_req_data(gets[i]);
			int			len = zk_req_datalen(gets[i]);

			r->session = zk_req_ephemeral_owner(gets[i]);
			r->what = zksync_json_field(data, len, "what");
			r->name = zksync_json_field(data, len, "name");
			r->leaving = zksync_json_field(data, len, "leaving");
			r->leaving_unknown = zksync_json_field(data, len, "leaving_unknown") != NULL;
			r->row = -1;
			if (r->session == zk_session_id())
				me = g->nrec;
			/* the queue its node is in, read once */
			for (k = 0; k < nkinds; k++)
			{
				const ZkQueueKind *kind = kinds[k];
				char	   *base = psprintf("%s/%s/", zksync_root, kind->subdir);
				int			q;

				if (strncmp(r->node, base, strlen(base)) != 0 || r->name == NULL)
					continue;
				for (q = 0; q < kind->nqueues; q++)
				{
					Target	   *cand = target_new(kind, q, r->name);
					int			dl = strlen(cand->dir);
					bool		dup = false;

					if (strncmp(r->node, cand->dir, dl) != 0 || r->node[dl] != '/' ||
						strchr(r->node + dl + 1, '/') != NULL)
						continue;
					for (j = 0; j < nt; j++)
						dup |= strcmp(t[j]->dir, cand->dir) == 0;
					if (!dup)
						t[nt++] = cand;
				}
			}
			g->nrec++;
		}
		zk_req_free(gets[i]);
	}
	zk_req_free(list);

	g->nrows = read_targets(t, nt, &g->rows);
	for (i = 0; i < g->nrec; i++)
		for (j = 0; j < g->nrows; j++)
			if (strcmp(g->rows[j].node, g->rec[i].node) == 0 &&
				g->rows[j].session == g->rec[i].session)
				g->rec[i].row = j;

	/* the edges: from each waiting record to what blocks it */
	for (i = 0; i < g->nrec; i++)
	{
		Record	   *r = &g->rec[i];
		int		   *b;
		int			nb,
					k;

		if (r->row < 0 || g->rows[r->row].granted)
			continue;			/* not waiting (any more) */
		b = palloc(sizeof(int) * (g->rows[r->row].count + 1));
		nb = zk_row_blockers(g->rows, r->row, b);
		for (k = 0; k < nb; k++)
		{
			ZkWaitRow  *h = &g->rows[b[k]];
			char	   *line = psprintf("Process %d on cluster %s waits for zksync %s \"%s\"; blocked by %s.",
										r->owner.pid, r->owner.cluster ? r->owner.cluster : "?",
										g->rows[r->row].what, zksync_foreign_cstring(r->name), who(h));
			int			to = -1;

			for (j = 0; j < g->nrec; j++)
				if (g->rec[j].session == h->session && g->rec[j].row >= 0 &&
					!g->rows[g->rec[j].row].granted)
					to = j;
			if (to >= 0)
			{
				if (node_stays(&g->rec[to], h->node))
					add_edge(g, i, to, b[k], line, NULL, 0);
			}
			else if (row_is_local_backend(h))
				follow_pg(g, i, b[k], line, h->owner.pid);
		}
	}
	return me;
}

/*
 * The shortest cycle through record `me`, as edge indexes in order;
 * returns its length, 0 if none.
 */
static int
find_cycle(Graph *g, int me, int **cycle)
{
	int		   *via = palloc(sizeof(int) * (g->nrec + 1));	/* edge into a record */
	int		   *queue = palloc(sizeof(int) * (g->nrec + 1));
	int			head = 0,
				tail = 0,
				e,
				i;

	for (i = 0; i < g->nrec; i++)
		via[i] = -2;
	queue[tail++] = me;
	via[me] = -1;
	while (head < tail)
	{
		int			at = queue[head++];

		for (e = 0; e < g->nedges; e++)
		{
			int			to;

			if (g->edges[e].from != at)
				continue;
			to = g->edges[e].to;
			if (to == me)
			{
				/* back home: walk the path */
				int			len = 1,
							k = at,
							n;

				while (via[k] >= 0)
				{
					len++;
					k = g->edges[via[k]].from;
				}
				*cycle = palloc(sizeof(int) * len);
				n = len;
				(*cycle)[--n] = e;
				for (k = at; via[k] >= 0; k = g->edges[via[k]].from)
					(*cycle)[--n] = via[k];
				return len;
			}
			if (via[to] != -2)
				continue;
			via[to] = e;
			queue[tail++] = to;
		}
	}
	return 0;
}

/* A text that is the same for the same cycle, whoever found it */
static char *
cycle_signature(Graph *g, int *cycle, int len)
{
	StringInfoData s;
	int			i,
				start = 0;

	for (i = 1; i < len; i++)
		if (g->rec[g->edges[cycle[i]].from].czxid <
			g->rec[g->edges[cycle[start]].from].czxid)
			start = i;
	initStringInfo(&s);
	for (i = 0; i < len; i++)
	{
		Edge	   *e = &g->edges[cycle[(start + i) % len]];

		appendStringInfo(&s, INT64_FORMAT ">" INT64_FORMAT ";%s|",
						 g->rec[e->from].czxid, g->rec[e->to].czxid, e->text);
	}
	return s.data;
}

/* ---------------------------------------------------------------------
 * Deadlock marks
 *
 * A mark, {root}/deadlocks/{victim's session id}, is written by a member
 * of a cycle that the victim cannot see whole (a hop runs through the
 * PostgreSQL locks of the marker's cluster).  Its data is owner data (who
 * marks) extended with
 *
 *	 "victim"	the victim's session id, 0x... hex;
 *	 "node"		the victim's waiting node (full path) and
 *	 "czxid"	its czxid: the wait the mark is about;
 *	 "cycle"	one line per wait of the cycle, the victim's first, each
 *				followed by the next, the last by the victim's:
 *
 *		{session} {czxid of its waiting node} {czxid of the node blocking it}
 *
 *				and, when that blocker's owner leads on to the next wait
 *				through PostgreSQL locks of the marker's cluster,
 *
 *		... pg {pid} {lock} [{pid} {lock} ...]
 *
 *				each {pid} waiting for {lock} (method.mode.type.f1.f2.f3.f4,
 *				or "-" when it is not a lock PostgreSQL can name), blocked by
 *				the next pid, the last by the next wait's process.
 *
 * Anyone may write under {root} unless zksync.auth says otherwise, and a
 * mark may outlive the wait it was about, so a mark is a claim, never a
 * verdict.  The victim acts on it only if it names the victim's current
 * waiting node, and only once its own fresh read of the published records
 * and queues shows every hop: each wait of the cycle still published by a
 * live session with the same node, still blocked, by the queue's own rule,
 * by the node named; a hop through PostgreSQL locks vouched for by the
 * marker itself (the mark's ephemeral owner, a member of the cycle on
 * that cluster); and the victim the youngest wait.  Anything else (a stale
 * mark, a forged one, malformed data, a cycle gone) is ignored and
 * deleted.  The DETAIL is written from the records read here; the mark
 * gives numbers only, so no byte of its text reaches a message.
 * ---------------------------------------------------------------------
 */

/* One wait of a marked cycle, as the mark names it */
typedef struct MarkHop
{
	int64		session;
	int64		czxid;
	int64		blocker_czxid;
	bool		via_pg;
	int			nlinks;
	PgLink		links[MARK_MAX_LINKS];
} MarkHop;

/* "1.5.4.2096.0.0.0" or "-": a link's lock, as a mark writes it */
static void
append_link_code(StringInfo s, const PgLink *l)
{
	if (!l->known)
	{
		appendStringInfo(s, " %d -", l->pid);
		return;
	}
	appendStringInfo(s, " %d %u.%d.%u.%u.%u.%u.%u", l->pid,
					 (unsigned) l->tag.locktag_lockmethodid, (int) l->mode,
					 (unsigned) l->tag.locktag_type, l->tag.locktag_field1,
					 l->tag.locktag_field2, l->tag.locktag_field3,
					 (unsigned) l->tag.locktag_field4);
}

/*
 * The data of a mark for record `victim`, a member of the cycle (edge
 * indexes, in order); NULL if it would be too long for the victim to read.
 */
static char *
mark_data(Graph *g, int *cycle, int len, int victim)
{
	StringInfoData extra,
				lines;
	const Record *v = &g->rec[victim];
	int			start = 0,
				i,
				k,
				datalen;
	char	   *data;

	for (i = 0; i < len; i++)
		if (g->edges[cycle[i]].from == victim)
			start = i;
	initStringInfo(&lines);
	for (i = 0; i < len; i++)
	{
		Edge	   *e = &g->edges[cycle[(start + i) % len]];
		const Record *r = &g->rec[e->from];

		appendStringInfo(&lines, "%s%s " INT64_FORMAT " " INT64_FORMAT,
						 i ? "\n" : "", zksync_session_text(r->session),
						 g->rows[r->row].czxid, g->rows[e->blocker].czxid);
		if (e->via_pg)
		{
			appendStringInfoString(&lines, " pg");
			for (k = 0; k < e->nlinks; k++)
				append_link_code(&lines, &e->links[k]);
		}
	}
	initStringInfo(&extra);
	appendStringInfo(&extra, "\"victim\":\"%s\",\"node\":",
					 zksync_session_text(v->session));
	escape_json(&extra, g->rows[v->row].node);
	appendStringInfo(&extra, ",\"czxid\":" INT64_FORMAT ",\"cycle\":",
					 g->rows[v->row].czxid);
	escape_json(&extra, lines.data);
	data = zksync_owner_data(extra.data, &datalen);
	return datalen <= MARK_MAX_BYTES ? data : NULL;
}

/* The members of a flat JSON object, as flat_json_parse() reads them */
#define FLAT_MAX_FIELDS 24
typedef struct FlatJson
{
	int			n;
	char	   *keys[FLAT_MAX_FIELDS];
	char	   *values[FLAT_MAX_FIELDS];
} FlatJson;

static const char *
flat_json_get(const FlatJson *f, const char *key)
{
	int			i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->keys[i], key) == 0)
			return f->values[i];
	return NULL;
}

static int
skip_ws(const char *d, int len, int p)
{
	while (p < len && (d[p] == ' ' || d[p] == '\t' || d[p] == '\n' || d[p] == '\r'))
		p++;
	return p;
}

/*
 * A JSON string at d[*p] (a quote), decoded into a palloc'd string; false
 * if it is not one as escape_json writes them (\u escapes only for ASCII
 * other than NUL).  Never reads past d[len - 1].
 */
static bool
flat_json_string(const char *d, int len, int *p, char **out)
{
	StringInfoData s;
	int			i = *p;

	if (i >= len || d[i] != '"')
		return false;
	initStringInfo(&s);
	for (i++; i < len; i++)
	{
		unsigned char c = (unsigned char) d[i];

		if (c == '"')
		{
			*p = i + 1;
			*out = s.data;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c != '\\')
		{
			appendStringInfoChar(&s, (char) c);
			continue;
		}
		if (++i >= len)
			return false;
		switch (d[i])
		{
			case '"':
			case '\\':
			case '/':
				appendStringInfoChar(&s, d[i]);
				break;
			case 'b':
				appendStringInfoChar(&s, '\b');
				break;
			case 'f':
				appendStringInfoChar(&s, '\f');
				break;
			case 'n':
				appendStringInfoChar(&s, '\n');
				break;
			case 'r':
				appendStringInfoChar(&s, '\r');
				break;
			case 't':
				appendStringInfoChar(&s, '\t');
				break;
			case 'u':
				{
					unsigned int v = 0;
					int			k;

					if (i + 4 >= len)
						return false;
					for (k = 1; k <= 4; k++)
					{
						char		h = d[i + k];

						v <<= 4;
						if (h >= '0' && h <= '9')
							v |= h - '0';
						else if (h >= 'a' && h <= 'f')
							v |= h - 'a' + 10;
						else if (h >= 'A' && h <= 'F')
							v |= h - 'A' + 10;
						else
							return false;
					}
					if (v == 0 || v > 0x7f)
						return false;
					appendStringInfoChar(&s, (char) v);
					i += 4;
					break;
				}
			default:
				return false;
		}
	}
	return false;
}

/*
 * Parse `d` (len bytes, any bytes at all) as a flat JSON object of our own
 * making: string keys, each once, whose values are strings, integers,
 * true, false or null (numbers and literals kept as written).  False if
 * it is anything else.
 */
static bool
flat_json_parse(const char *d, int len, FlatJson *f)
{
	int			p = skip_ws(d, len, 0);

	f->n = 0;
	if (p >= len || d[p++] != '{')
		return false;
	p = skip_ws(d, len, p);
	if (p < len && d[p] == '}')
		return skip_ws(d, len, p + 1) == len;
	for (;;)
	{
		char	   *key;
		char	   *value;

		if (f->n == FLAT_MAX_FIELDS || !flat_json_string(d, len, &p, &key) ||
			flat_json_get(f, key) != NULL)
			return false;
		p = skip_ws(d, len, p);
		if (p >= len || d[p++] != ':')
			return false;
		p = skip_ws(d, len, p);
		if (p >= len)
			return false;
		if (d[p] == '"')
		{
			if (!flat_json_string(d, len, &p, &value))
				return false;
		}
		else
		{
			int			q = p;

			if (q < len && d[q] == '-')
				q++;
			while (q < len && ((d[q] >= '0' && d[q] <= '9') ||
							   (d[q] >= 'a' && d[q] <= 'z')))
				q++;
			value = pnstrdup(d + p, q - p);
			if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0 &&
				strcmp(value, "null") != 0 &&
				strspn(value + (value[0] == '-'), "0123456789") !=
				strlen(value + (value[0] == '-')))
				return false;
			if (value[value[0] == '-'] == '\0')
				return false;
			p = q;
		}
		f->keys[f->n] = key;
		f->values[f->n++] = value;
		p = skip_ws(d, len, p);
		if (p < len && d[p] == ',')
		{
			p = skip_ws(d, len, p + 1);
			continue;
		}
		if (p < len && d[p] == '}')
			return skip_ws(d, len, p + 1) == len;
		return false;
	}
}

/*
 * A decimal integer in [min, max] that is all of `s` up to a space or the
 * end; advances *s past it.
 */
static bool
mark_int(const char **s, int64 min, int64 max, int64 *out)
{
	const char *p = *s;
	bool		neg = false;
	uint64		v = 0;

	if (*p == '-')
	{
		neg = true;
		p++;
	}
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++)
	{
		if (v > (PG_UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (*p - '0');
	}
	if (v > (uint64) PG_INT64_MAX)
		return false;
	*out = neg ? -(int64) v : (int64) v;
	if (*out < min || *out > max)
		return false;
	*s = p;
	return true;
}

/* A session id as zksync_session_text() writes it (0x, 1-16 hex digits) */
static bool
mark_session(const char **s, int64 *out)
{
	const char *p = *s;
	uint64		v = 0;
	int			n = 0;

	if (p[0] != '0' || p[1] != 'x')
		return false;
	for (p += 2; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++)
	{
		if (++n > 16)
			return false;
		v = (v << 4) | (uint64) (*p <= '9' ? *p - '0' : *p - 'a' + 10);
	}
	if (n == 0)
		return false;
	*out = (int64) v;
	*s = p;
	return true;
}

/* Expect one space, or the end of the line (at_end) */
static bool
mark_sep(const char **s, bool at_end)
{
	if (at_end)
		return **s == '\n' || **s == '\0';
	if (**s != ' ')
		return false;
	(*s)++;
	return true;
}

/* One link's lock: "-" or method.mode.type.f1.f2.f3.f4 */
static bool
mark_lock(const char **s, PgLink *l)
{
	int64		v[7];
	int			k;
	static const int64 max[7] = {255, MaxLockMode, 255, PG_UINT32_MAX,
	PG_UINT32_MAX, PG_UINT32_MAX, PG_UINT16_MAX};

	if (**s == '-')
	{
		(*s)++;
		l->known = false;
		return true;
	}
	for (k = 0; k < 7; k++)
	{
		if (k > 0 && *(*s)++ != '.')
			return false;
		if (!mark_int(s, 0, max[k], &v[k]))
			return false;
	}
	l->known = true;
	l->tag.locktag_lockmethodid = (uint8) v[0];
	l->mode = (LOCKMODE) v[1];
	l->tag.locktag_type = (uint8) v[2];
	l->tag.locktag_field1 = (uint32) v[3];
	l->tag.locktag_field2 = (uint32) v[4];
	l->tag.locktag_field3 = (uint32) v[5];
	l->tag.locktag_field4 = (uint16) v[6];
	return link_is_sane(l);
}

/* The "cycle" of a mark, into hops (room for MARK_MAX_HOPS); -1 if malformed */
static int
mark_cycle(const char *s, MarkHop *hops)
{
	int			n = 0;

	while (*s)
	{
		MarkHop    *h;

		if (n == MARK_MAX_HOPS)
			return -1;
		h = &hops[n++];
		memset(h, 0, offsetof(MarkHop, links));
		if (!mark_session(&s, &h->session) || !mark_sep(&s, false) ||
			!mark_int(&s, 1, PG_INT64_MAX, &h->czxid) || !mark_sep(&s, false) ||
			!mark_int(&s, 1, PG_INT64_MAX, &h->blocker_czxid))
			return -1;
		if (strncmp(s, " pg", 3) == 0)
		{
			s += 3;
			h->via_pg = true;
			while (*s == ' ')
			{
				int64		pid;

				s++;
				if (h->nlinks == MARK_MAX_LINKS ||
					!mark_int(&s, 1, PG_INT32_MAX, &pid) || !mark_sep(&s, false))
					return -1;
				h->links[h->nlinks].pid = (int) pid;
				if (!mark_lock(&s, &h->links[h->nlinks]))
					return -1;
				h->nlinks++;
			}
			if (h->nlinks == 0)
				return -1;
		}
		if (!mark_sep(&s, true))
			return -1;
		if (*s == '\n')
		{
			s++;
			if (*s == '\0')
				return -1;
		}
	}
	return n;
}

/* The waiting record of `session` whose node has this czxid, or -1 */
static int
waiting_record(Graph *g, int64 session, int64 czxid)
{
	int			i;

	for (i = 0; i < g->nrec; i++)
	{
		Record	   *r = &g->rec[i];

		if (r->session == session && r->row >= 0 &&
			g->rows[r->row].czxid == czxid && !g->rows[r->row].granted)
			return i;
	}
	return -1;
}

/* Has `session` a published wait that still waits? */
static bool
session_waits(Graph *g, int64 session)
{
	int			i;

	for (i = 0; i < g->nrec; i++)
		if (g->rec[i].session == session && g->rec[i].row >= 0 &&
			!g->rows[g->rec[i].row].granted)
			return true;
	return false;
}

static bool
same_cluster(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/*
 * Does the mark left for us name our current wait and a cycle that still
 * stands in g (read just now; `me` our record)?  Returns the DETAIL,
 * written from g's records and rows, if so.  Else NULL, with *why the
 * reason to ignore the mark and delete it, or NULL if we cannot tell yet
 * (our own wait not read back).  Never throws for anything in the mark.
 */
static char *
verify_mark(Graph *g, int me, const MarkRead *m, const char **why)
{
	FlatJson	f;
	const char *v;
	const char *node;
	int64		victim,
				czxid;
	MarkHop    *hops;
	int		   *recs;
	int			n,
				i,
				k;
	StringInfoData s;

	*why = NULL;
	if (m->len > MARK_MAX_BYTES)
	{
		*why = "its data is too long";
		return NULL;
	}
	if (memchr(m->data, '\0', m->len) != NULL ||
		!pg_verify_mbstr(PG_UTF8, m->data, m->len, true) ||
		!flat_json_parse(m->data, m->len, &f))
	{
		*why = "its data is not a zksync deadlock mark";
		return NULL;
	}
	node = flat_json_get(&f, "node");
	if ((v = flat_json_get(&f, "victim")) == NULL || !mark_session(&v, &victim) ||
		*v != '\0' || node == NULL ||
		(v = flat_json_get(&f, "czxid")) == NULL ||
		!mark_int(&v, 1, PG_INT64_MAX, &czxid) || *v != '\0' ||
		flat_json_get(&f, "cycle") == NULL)
	{
		*why = "its data is not a zksync deadlock mark";
		return NULL;
	}
	if (victim != zk_session_id() || cur_wait.czxid == 0 || czxid != cur_wait.czxid ||
		strcmp(node, cur_wait.node) != 0)
	{
		if (cur_wait.czxid != 0)
			*why = "it does not name the current wait of this session";
		return NULL;
	}
	if (me < 0 || g->rec[me].row < 0 ||
		g->rows[g->rec[me].row].czxid != cur_wait.czxid)
		return NULL;			/* our record not read back: look again */

	hops = palloc(sizeof(MarkHop) * MARK_MAX_HOPS);
	n = mark_cycle(flat_json_get(&f, "cycle"), hops);
	if (n <= 0)
	{
		*why = "its cycle is malformed";
		return NULL;
	}
	*why = "its cycle does not stand";
	if (hops[0].session != victim || hops[0].czxid != czxid)
		return NULL;
	/* every wait of it published by a live session, and still waiting */
	recs = palloc(sizeof(int) * n);
	for (i = 0; i < n; i++)
	{
		recs[i] = waiting_record(g, hops[i].session, hops[i].czxid);
		if (recs[i] < 0 || g->rows[g->rec[recs[i]].row].czxid > czxid)
			return NULL;		/* gone, or younger than us: not our cycle */
		for (k = 0; k < i; k++)
			if (recs[k] == recs[i])
				return NULL;
	}
	/* every hop still there, in our own reading of the queues */
	initStringInfo(&s);
	for (i = 0; i < n; i++)
	{
		Record	   *r = &g->rec[recs[i]];
		Record	   *next = &g->rec[recs[(i + 1) % n]];
		ZkWaitRow  *w = &g->rows[r->row];
		ZkWaitRow  *b = NULL;
		int			j;

		for (j = w->first; j < w->first + w->count; j++)
			if (g->rows[j].czxid == hops[i].blocker_czxid && row_blocks(g->rows, r->row, j))
				b = &g->rows[j];
		if (b == NULL)
			return NULL;
		appendStringInfo(&s, "%sProcess %d on cluster %s waits for zksync %s \"%s\"; blocked by %s.",
						 i ? "\n" : "", r->owner.pid,
						 r->owner.cluster ? r->owner.cluster : "?",
						 w->what, r->name ? r->name : "?", who(b));
		if (!hops[i].via_pg)
		{
			if (b->session != next->session || !node_stays(next, b->node))
				return NULL;
			continue;
		}

		/*
		 * Through PostgreSQL locks of one cluster: the blocker a backend of
		 * it that waits in no zksync queue, the chain starting at it and
		 * ending at the next wait's process, there too.
		 */
		if (!b->is_backend || session_waits(g, b->session) ||
			!same_cluster(b->owner.cluster, next->owner.cluster) ||
			hops[i].links[0].pid != b->owner.pid)
			return NULL;
		if (same_cluster(b->owner.cluster, zksync_cluster_id()))
		{
			/* our own cluster: what we saw ourselves, or nothing */
			Edge	   *e = NULL;

			for (k = 0; k < g->nedges; k++)
				if (g->edges[k].from == recs[i] && g->edges[k].to == recs[(i + 1) % n] &&
					g->edges[k].via_pg && g->edges[k].blocker == b - g->rows)
					e = &g->edges[k];
			if (e == NULL)
				return NULL;
			for (k = 0; k < e->nlinks; k++)
				append_link_line(&s, zksync_cluster_id(), &e->links[k],
								 k + 1 < e->nlinks ? e->links[k + 1].pid : next->owner.pid);
			continue;
		}
		/* another cluster's: only the marker, a member there, has seen it */
		for (k = 0; k < n; k++)
			if (g->rec[recs[k]].session == m->owner &&
				same_cluster(g->rec[recs[k]].owner.cluster, b->owner.cluster))
				break;
		if (k == n)
			return NULL;
		for (k = 0; k < hops[i].nlinks; k++)
			append_link_line(&s, b->owner.cluster, &hops[i].links[k],
							 k + 1 < hops[i].nlinks ? hops[i].links[k + 1].pid : next->owner.pid);
	}
	*why = NULL;
	return s.data;
}

/* Delete the mark left for us, not waiting for the reply.  Never throws. */
static void
delete_mark(void)
{
	char		path[ZKSYNC_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/%s", zksync_root, ZKSYNC_DEADLOCKS,
			 zksync_session_text(zk_session_id()));
	zk_req_free(zk_delete(path));
}

static void
deadlock_error(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
			 errmsg("deadlock detected"),
			 errdetail_internal("%s", detail),
			 errhint("The waits run through ZooKeeper: see zksync_waits() and the server logs of the clusters named.")));
}

/*
 * Tell record `victim` of the cycle (edge indexes) through a mark: the
 * victim cannot see all of it.  One mark node per victim session, its data
 * replaced if the node is there; we delete our marks when our wait ends.
 */
static void
leave_mark(Graph *g, int *cycle, int len, int victim)
{
	char	   *data = mark_data(g, cycle, len, victim);
	char	   *path = psprintf("%s/%s/%s", zksync_root, ZKSYNC_DEADLOCKS,
								zksync_session_text(g->rec[victim].session));
	bool		known = false;
	int			i;

	if (data == NULL)
	{
		elog(DEBUG1, "zksync cannot mark a deadlock's victim: the cycle is too long to write");
		return;
	}
	for (i = 0; i < cur_wait.nmarks; i++)
		known |= strcmp(cur_wait.marks[i], path) == 0;
	if (!known && cur_wait.nmarks == (int) lengthof(cur_wait.marks))
		return;
	if (put_ephemeral(path, data) == ZOK && !known)
		strlcpy(cur_wait.marks[cur_wait.nmarks++], path, ZKSYNC_PATH_MAX);
}

/*
 * Step 3, and step 2 at the first check.  Throws 40P01 if we are the
 * victim of a deadlock.
 */
static void
check_wait(void)
{
	MemoryContext scan_cxt = AllocSetContextCreate(CurrentMemoryContext,
												   "zksync deadlock scan",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(scan_cxt);
	Graph		g;
	MarkRead	mark;
	char	   *detail = NULL;
	bool		marked = false;
	int			me,
			   *cycle,
				len = 0,
				interval;

	if (!cur_wait.published)
		publish();
	pgstat_clear_snapshot();
	me = build_graph(&g, &mark);
	if (mark.data)
	{
		const char *why;

		detail = verify_mark(&g, me, &mark, &why);
		marked = detail != NULL;
		if (why)
		{
			elog(DEBUG1, "zksync ignored and deleted a deadlock mark: %s", why);
			delete_mark();
		}
	}
	if (!cur_wait.logged && log_lock_waits)
	{
		StringInfoData s;

		initStringInfo(&s);
		if (me >= 0 && g.rec[me].row >= 0)
		{
			int		   *b = palloc(sizeof(int) * (g.rows[g.rec[me].row].count + 1));
			int			nb = zk_row_blockers(g.rows, g.rec[me].row, b),
						k;

			for (k = 0; k < nb; k++)
				appendStringInfo(&s, "%s%s", k ? "; " : "Blocked by ", who(&g.rows[b[k]]));
			if (nb > 0)
				appendStringInfoChar(&s, '.');
		}
		log_elapsed("still waiting for", s.len > 0 ? s.data : NULL);
		cur_wait.logged = true;
	}
	if (detail == NULL && me >= 0)
		len = find_cycle(&g, me, &cycle);
	if (len > 0)
	{
		char	   *sig = cycle_signature(&g, cycle, len);

		if (cur_wait.last_cycle && strcmp(sig, cur_wait.last_cycle) == 0)
		{
			/* seen twice: act on it */
			int			victim = me,
						i;
			bool		victim_sees = true;
			StringInfoData s;

			initStringInfo(&s);
			for (i = 0; i < len; i++)
			{
				Edge	   *e = &g.edges[cycle[i]];

				appendStringInfo(&s, "%s%s", i ? "\n" : "", e->text);
				if (g.rec[e->from].czxid > g.rec[victim].czxid)
					victim = e->from;
			}
			for (i = 0; i < len; i++)
			{
				Edge	   *e = &g.edges[cycle[i]];

				/* edges through PostgreSQL locks are seen on their cluster only */
				if (e->via_pg && victim != me &&
					(g.rec[victim].owner.cluster == NULL ||
					 strcmp(g.rec[victim].owner.cluster, zksync_cluster_id()) != 0))
					victim_sees = false;
			}
			if (victim == me)
				detail = s.data;
			else if (!victim_sees)
				leave_mark(&g, cycle, len, victim);
			if (cur_wait.last_cycle)
				pfree(cur_wait.last_cycle);
			cur_wait.last_cycle = NULL;
		}
		else
		{
			if (cur_wait.last_cycle)
				pfree(cur_wait.last_cycle);
			cur_wait.last_cycle = MemoryContextStrdup(TopMemoryContext, sig);
		}
	}
	else if (cur_wait.last_cycle)
	{
		pfree(cur_wait.last_cycle);
		cur_wait.last_cycle = NULL;
	}
	if (cur_wait.last_cycle)
		interval = Min(CONFIRM_MS, DeadlockTimeout);
	else
		interval = cur_wait.rescan_ms = cur_wait.rescan_ms == 0 ? RESCAN_FIRST_MS :
			Min(cur_wait.rescan_ms * 2, Max(RESCAN_MIN_MS, DeadlockTimeout));
	cur_wait.next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  interval);
	if (detail)
	{
		char	   *copy;

		MemoryContextSwitchTo(old);
		copy = pstrdup(detail);
		MemoryContextDelete(scan_cxt);
		if (marked)
			delete_mark();		/* it has served */
		deadlock_error(copy);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(scan_cxt);
}

/*
 * zk_wait_event() for a recipe's wait begun with zk_wait_watch_begin():
 * the same, but at deadlock_timeout and then now and then it looks for a
 * deadlock (and logs, if log_lock_waits is on).  Throws 40P01 if this
 * wait is a deadlock's victim.
 */
ZkWaitResult
zk_wait_watched(uint64 seen, bool (*also) (void), TimestampTz deadline)
{
	for (;;)
	{
		TimestampTz until = deadline;
		ZkWaitResult r;

		if (cur_wait.active && cur_wait.next_check != 0 &&
			(until == 0 || cur_wait.next_check < until))
			until = cur_wait.next_check;
		r = zk_wait_event(seen, also, until, false);
		if (r != ZKW_TIMEOUT || until == deadline)
			return r;
		if (!zk_session_usable())
			return ZKW_EVENT;	/* the caller finds out */
		if (!zk_is_connected())
		{
			/* nothing to read now: look again soon */
			cur_wait.next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  CONFIRM_MS);
			continue;
		}
		check_wait();
	}
}
