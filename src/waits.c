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
 * id}, with the cycle in its data; a waiter reads its mark at every scan.
 * Marks are ephemeral and removed by whoever ends first.
 *
 * Nothing here happens before deadlock_timeout: a wait that is granted
 * sooner costs nothing more.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
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

#define ZKSYNC_WAITS		"waits"
#define ZKSYNC_DEADLOCKS	"deadlocks"

/*
 * Scans after the first: soon to confirm a cycle; else soon again (the
 * other waits of a cycle that formed at once may not be published yet),
 * then less and less often, every max(deadlock_timeout, 1 s) at last.
 */
#define CONFIRM_MS			100
#define RESCAN_FIRST_MS		200		/* then doubling, up to: */
#define RESCAN_MIN_MS		1000
#define LEAVING_MAX			256		/* nodes on their way out, in a record */

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
		t[i]->n = zksync_contenders(g->children, g->nchildren, &t[i]->c);
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
				q->room = q->kind->room(q->room_get->data,
											q->room_get->datalen);
			zk_release(q->room_get);
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
				r->czxid = g->stat.czxid;
				r->ctime_ms = g->stat.ctime;
				r->session = g->stat.ephemeralOwner;
				r->is_backend = zksync_owner_parse(g->data, g->datalen, &r->owner);
				r->contenders = q->c;
				r->ncontenders = q->n;
				r->index = j;
				r->room = q->room;
				r->first = first;
				nrows++;
			}
			zk_release(g);
		}
		zk_release(q->listing);
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
				zk_release(lists[i]);
			zk_report_error(rc, "get_children", zksync_root);
		}
		for (i = 0; rc == ZOK && i < g->nchildren; i++)
			for (q = 0; q < kinds[k]->nqueues; q++)
			{
				if (nt == maxt)
				{
					maxt = maxt ? maxt * 2 : 64;
					t = t ? repalloc(t, sizeof(Target *) * maxt) :
						palloc(sizeof(Target *) * maxt);
				}
				t[nt++] = target_new(kinds[k], q, g->children[i]);
			}
		zk_release(g);
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
		zk_release(r);
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
			zk_release(r);
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
			cur_wait.czxid = e->stat.czxid;
		zk_release(e);
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

/* An edge of the wait graph: record `from` waits for record `to` */
typedef struct Edge
{
	int			from;
	int			to;
	char	   *text;			/* its lines of the errdetail */
	bool		via_pg;			/* through PostgreSQL locks of this cluster */
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

static void
add_edge(Graph *g, int from, int to, char *text, bool via_pg)
{
	if (g->nedges == g->maxedges)
	{
		g->maxedges = g->maxedges ? g->maxedges * 2 : 16;
		g->edges = g->edges ? repalloc(g->edges, sizeof(Edge) * g->maxedges) :
			palloc(sizeof(Edge) * g->maxedges);
	}
	g->edges[g->nedges].from = from;
	g->edges[g->nedges].to = to;
	g->edges[g->nedges].text = text;
	g->edges[g->nedges].via_pg = via_pg;
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

/* "ShareLock on transaction 123" for local pid's wait, or a generic text */
static char *
pg_wait_text(Graph *g, int pid)
{
	int			i;

	if (g->pg_locks == NULL)
		g->pg_locks = GetLockStatusData();
	for (i = 0; i < g->pg_locks->nelements; i++)
	{
		LockInstanceData *l = &g->pg_locks->locks[i];

		if (l->pid == pid && l->waitLockMode != NoLock)
		{
			StringInfoData s;

			initStringInfo(&s);
			appendStringInfo(&s, "%s on ",
							 GetLockmodeName(l->locktag.locktag_lockmethodid,
											 l->waitLockMode));
			DescribeLockTag(&s, &l->locktag);
			return s.data;
		}
	}
	return pstrdup("a PostgreSQL lock");
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
follow_pg(Graph *g, int from, const char *first_line, int holder)
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
				int			chain[64];
				int			len = 0,
							c;

				for (c = at; c >= 0 && len < 64; c = parent[c])
					chain[len++] = c;
				initStringInfo(&s);
				appendStringInfoString(&s, first_line);
				while (len-- > 0)
				{
					int			x = pids[chain[len]];
					int			y = len > 0 ? pids[chain[len - 1]] : p;

					appendStringInfo(&s, "\nProcess %d on cluster %s waits for %s; blocked by process %d.",
									 x, zksync_cluster_id(), pg_wait_text(g, x), y);
				}
				add_edge(g, from, r, s.data, true);
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
 * *mark to the data of a mark left for us, if any.  Returns our record's
 * index, or -1 if ours is not among them.
 */
static int
build_graph(Graph *g, char **mark)
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
	*mark = NULL;
	if (zk_call(markg) == ZOK && markg->data && markg->datalen > 0)
		*mark = zksync_foreign_text(markg->data, markg->datalen);
	zk_release(markg);
	if (zk_call(list) != ZOK)
	{
		zk_release(list);
		return -1;
	}
	gets = palloc(sizeof(ZkReq *) * (list->nchildren + 1));
	for (i = 0; i < list->nchildren; i++)
		gets[i] = zk_get(psprintf("%s/%s", dir, list->children[i]), false);
	g->rec = palloc0(sizeof(Record) * (list->nchildren + 1));
	t = palloc(sizeof(Target *) * (list->nchildren + 1));
	for (i = 0; i < list->nchildren; i++)
	{
		Record	   *r = &g->rec[g->nrec];

		if (zk_call(gets[i]) == ZOK && gets[i]->data &&
			zksync_owner_parse(gets[i]->data, gets[i]->datalen, &r->owner) &&
			(r->node = zksync_json_field(gets[i]->data, gets[i]->datalen, "node")) != NULL &&
			zksync_json_int(gets[i]->data, gets[i]->datalen, "czxid", 0, PG_INT64_MAX, &r->czxid))
		{
			int			k;

			r->session = gets[i]->stat.ephemeralOwner;
			r->what = zksync_json_field(gets[i]->data, gets[i]->datalen, "what");
			r->name = zksync_json_field(gets[i]->data, gets[i]->datalen, "name");
			r->leaving = zksync_json_field(gets[i]->data, gets[i]->datalen, "leaving");
			r->leaving_unknown = zksync_json_field(gets[i]->data, gets[i]->datalen, "leaving_unknown") != NULL;
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
		zk_release(gets[i]);
	}
	zk_release(list);

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
					add_edge(g, i, to, line, false);
			}
			else if (row_is_local_backend(h))
				follow_pg(g, i, line, h->owner.pid);
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
	char	   *mark;
	char	   *detail = NULL;
	int			me,
			   *cycle,
				len = 0,
				interval;

	if (!cur_wait.published)
		publish();
	pgstat_clear_snapshot();
	me = build_graph(&g, &mark);
	if (mark)
		detail = mark;
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
			else if (!victim_sees && cur_wait.nmarks < (int) lengthof(cur_wait.marks))
			{
				char	   *path = psprintf("%s/%s/%s", zksync_root, ZKSYNC_DEADLOCKS,
											zksync_session_text(g.rec[victim].session));

				if (put_ephemeral(path, s.data) == ZOK)
					strlcpy(cur_wait.marks[cur_wait.nmarks++], path, ZKSYNC_PATH_MAX);
			}
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
		if (mark)
		{
			/* the mark has served */
			ZkReq	   *d = zk_delete(psprintf("%s/%s/%s", zksync_root, ZKSYNC_DEADLOCKS,
											   zksync_session_text(zk_session_id())));

			zk_release(d);
		}
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
