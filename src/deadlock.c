/*-------------------------------------------------------------------------
 * deadlock.c
 *	  Deadlocks that run through ZooKeeper: the record of a wait, the wait
 *	  graph, its cycles, and who ends one (docs/waits.md).
 *
 * PostgreSQL finds a deadlock among its own locks once a backend has
 * waited deadlock_timeout; nothing finds one that runs through ZooKeeper.
 * A zksync wait (waits.c: zksync_wait_watched) calls check_wait() at
 * deadlock_timeout and then now and then while it lasts, which
 *
 *	 1. publishes the wait: {root}/waits/{session id}, ephemeral, whose data
 *		says who waits (owner data) with which node; gone when the wait
 *		ends, or with the session;
 *	 2. logs "still waiting" if log_lock_waits is on (waits.c);
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
 * than the victim's) is told through a mark (marks.c).
 *
 * What can go wrong: a record or a mark may be anyone's (anyone may write
 * under {root} unless zksync.auth says otherwise), so a record only says
 * where to look and the edges come from the queues; a scan that cannot
 * read (connection lost) finds nothing and the next one looks again.  A
 * scan's memory lives in a context of its own, deleted when it ends.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "releases.h"
#include "nodes.h"
#include "waits_int.h"

/*
 * Scans after the first: soon to confirm a cycle (CONFIRM_MS); else soon
 * again (the other waits of a cycle that formed at once may not be
 * published yet), then less and less often, every max(deadlock_timeout,
 * 1 s) at last.
 */
#define RESCAN_FIRST_MS		200 /* then doubling, up to: */
#define RESCAN_MIN_MS		1000
#define LEAVING_MAX			256 /* nodes on their way out, in a record */

/* What a record says its wait waits for (ZkQueueWhat), for other readers */
static const char *const what_text[] = {"write lock", "read lock", "semaphore"};

/* Create `path` (ephemeral) with `data`, or set its data if it exists. */
int
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

/*
 * The record of our wait, for the scans of others (a queue's wait, at its
 * first check) and for the views (a gate's wait, at its start: gates.c).
 * A gate's record names the barrier's node, or our participant node, and
 * lists nothing on its way out: no scan follows it.
 */
void
publish_wait(void)
{
	StringInfoData extra;
	bool		gate = watched_wait.gate != ZKG_NONE;
	char	   *data;
	int			len;
	int			rc;

	if (watched_wait.czxid == 0 && !gate)
	{
		ZkReq	   *e = zk_exists(watched_wait.node, false);

		if (zk_call(e) == ZOK)
			watched_wait.czxid = zk_req_czxid(e);
		zk_req_free(e);
	}
	initStringInfo(&extra);
	appendStringInfoString(&extra, "\"kind\":");
	escape_json(&extra, gate ? gate_kind_text(watched_wait.gate) :
				watched_wait.kind->kind);
	appendStringInfoString(&extra, ",\"what\":");
	escape_json(&extra, gate ? gate_what_text(watched_wait.gate) :
				what_text[watched_wait.what]);
	appendStringInfoString(&extra, ",\"name\":");
	escape_json(&extra, watched_wait.name);
	appendStringInfoString(&extra, ",\"node\":");
	escape_json(&extra, watched_wait.node);
	appendStringInfo(&extra, ",\"czxid\":" INT64_FORMAT, watched_wait.czxid);
	if (!gate)
		append_leaving(&extra);
	data = zksync_owner_data(extra.data, &len);
	snprintf(watched_wait.record, sizeof(watched_wait.record), "%s/%s/%s",
			 zksync_root, ZKSYNC_WAITS, zksync_session_text(zk_session_id()));

	/*
	 * Published from the moment the create may be sent: if an interrupt or a
	 * lost connection ends the wait before the reply, the end of the wait
	 * still deletes the record (the delete follows the create on the
	 * session).
	 */
	watched_wait.published = true;
	rc = put_ephemeral(watched_wait.record, data);
	if (rc != ZOK && !zk_is_connection_error(rc))
		watched_wait.published = false;
}

/*
 * Is our record published on the session we have now?  (A record goes
 * with the session that made it.)
 */
bool
published_here(void)
{
	char		path[ZKSYNC_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/%s",
			 zksync_root, ZKSYNC_WAITS, zksync_session_text(zk_session_id()));
	return watched_wait.published && strcmp(path, watched_wait.record) == 0;
}

/*
 * May node `node` of record r's session be taken for a wait of r's?  Not
 * if it is on its way out (r's list: a path, or a hunt's path prefix).
 */
bool
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

/* Edge `from` -> `to` of the graph: `blocker` blocks from's waiting node */
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
 * Link l of a chain on `cluster` (as messages name it: zksync_my_cluster,
 * zksync_owner_cluster), on a line of its own: "Process 12 on cluster
 * "east" (73...) waits for ShareLock on transaction 123; blocked by
 * process 34."
 */
void
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
					append_link_line(&s, zksync_my_cluster(), &links[c],
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

/* The mark left for us (reply to `markg`), its data unchecked: see verify_mark */
static void
read_mark(ZkReq *markg, MarkRead *mark)
{
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
}

/*
 * A wait record from the reply to its read; false if there is none or its
 * data is not a record (anyone may write under {root}/waits), or if it is
 * a gate's: a barrier's waiter waits for no one in particular (anyone may
 * unset a barrier; who has yet to come to a double barrier cannot be
 * known), so its wait is no edge of a cycle.
 */
static bool
parse_record(ZkReq *get, Record *r)
{
	const char *data;
	int			len;
	char	   *kind;

	if (zk_call(get) != ZOK || zk_req_data(get) == NULL)
		return false;
	data = zk_req_data(get);
	len = zk_req_datalen(get);
	kind = zksync_json_field(data, len, "kind");
	if (kind && is_gate_kind(kind))
		return false;
	if (!zksync_owner_parse(data, len, &r->owner) ||
		(r->node = zksync_json_field(data, len, "node")) == NULL ||
		!zksync_json_int(data, len, "czxid", 0, PG_INT64_MAX, &r->czxid))
		return false;
	r->session = zk_req_ephemeral_owner(get);
	r->name = zksync_json_field(data, len, "name");
	r->leaving = zksync_json_field(data, len, "leaving");
	r->leaving_unknown = zksync_json_field(data, len, "leaving_unknown") != NULL;
	r->row = -1;
	return true;
}

/* The queue record r's node is in, added to t[0 .. *nt) unless there */
static void
add_record_queue(const Record *r, Target **t, int *nt)
{
	int			nkinds;
	const ZkQueueKind *const *kinds = queue_kinds(&nkinds);
	int			k,
				q,
				j;

	if (r->name == NULL)
		return;
	for (k = 0; k < nkinds; k++)
	{
		const ZkQueueKind *kind = kinds[k];
		char	   *base = psprintf("%s/%s/", zksync_root, kind->subdir);

		if (strncmp(r->node, base, strlen(base)) != 0)
			continue;
		for (q = 0; q < kind->nqueues; q++)
		{
			Target	   *cand = target_new(kind, q, r->name);
			int			dl = strlen(cand->dir);
			bool		dup = false;

			if (strncmp(r->node, cand->dir, dl) != 0 || r->node[dl] != '/' ||
				strchr(r->node + dl + 1, '/') != NULL)
				continue;
			for (j = 0; j < *nt; j++)
				dup |= strcmp(t[j]->dir, cand->dir) == 0;
			if (!dup)
				t[(*nt)++] = cand;
		}
	}
}

/* Each record's waiting node among the rows (same node, same session) */
static void
place_records(Graph *g)
{
	int			i,
				j;

	for (i = 0; i < g->nrec; i++)
		for (j = 0; j < g->nrows; j++)
			if (strcmp(g->rows[j].node, g->rec[i].node) == 0 &&
				g->rows[j].session == g->rec[i].session)
				g->rec[i].row = j;
}

/*
 * The edges out of record i, from what blocks its waiting node: to the
 * blocker's own published wait if it has one, else on through PostgreSQL
 * locks if the blocker is a backend of this cluster.
 */
static void
add_edges_of(Graph *g, int i)
{
	Record	   *r = &g->rec[i];
	int		   *b;
	int			nb,
				k,
				j;

	if (r->row < 0 || g->rows[r->row].granted)
		return;					/* not waiting (any more) */
	b = palloc(sizeof(int) * (g->rows[r->row].count + 1));
	nb = zksync_row_blockers(g->rows, r->row, b);
	for (k = 0; k < nb; k++)
	{
		ZkWaitRow  *h = &g->rows[b[k]];
		StringInfoData line;
		int			to = -1;

		initStringInfo(&line);
		append_wait_line(&line, &r->owner,
						 g->rows[r->row].what, zksync_foreign_cstring(r->name),
						 h);
		for (j = 0; j < g->nrec; j++)
			if (g->rec[j].session == h->session && g->rec[j].row >= 0 &&
				!g->rows[g->rec[j].row].granted)
				to = j;
		if (to >= 0)
		{
			if (node_stays(&g->rec[to], h->node))
				add_edge(g, i, to, b[k], line.data, NULL, 0);
		}
		else if (row_is_local_backend(h))
			follow_pg(g, i, b[k], line.data, h->owner.pid);
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
	ZkReq	   *list = zk_get_children(dir);
	ZkReq	   *markg = zk_get(psprintf("%s/%s/%s", zksync_root, ZKSYNC_DEADLOCKS,
										zksync_session_text(zk_session_id())),
							   false);
	ZkReq	  **gets;
	Target	  **t;
	int			n,
				nt = 0,
				me = -1,
				i;

	memset(g, 0, sizeof(*g));
	read_mark(markg, mark);
	if (zk_call(list) != ZOK)
	{
		zk_req_free(list);
		return -1;
	}

	/* every record read at once; each names the queue to read */
	n = zk_req_nchildren(list);
	gets = palloc(sizeof(ZkReq *) * (n + 1));
	for (i = 0; i < n; i++)
		gets[i] = zk_get(psprintf("%s/%s", dir, zk_req_children(list)[i]), false);
	g->rec = palloc0(sizeof(Record) * (n + 1));
	t = palloc(sizeof(Target *) * (n + 1));
	for (i = 0; i < n; i++)
	{
		Record	   *r = &g->rec[g->nrec];

		if (parse_record(gets[i], r))
		{
			if (r->session == zk_session_id())
				me = g->nrec;
			add_record_queue(r, t, &nt);
			g->nrec++;
		}
		zk_req_free(gets[i]);
	}
	zk_req_free(list);

	g->nrows = read_targets(t, nt, &g->rows);
	place_records(g);
	for (i = 0; i < g->nrec; i++)
		add_edges_of(g, i);
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

/*
 * The victim's ERROR.  It counts in pg_stat_database.deadlocks, as the lock
 * manager counts its own (DeadLockReport): once per deadlock, since only
 * the victim reports it.
 */
static void
deadlock_error(const char *detail)
{
	pgstat_report_deadlock();
	ereport(ERROR,
			(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
			 errmsg("deadlock detected"),
			 errdetail_internal("%s", detail),
			 errhint("The waits run through ZooKeeper: see zksync_waits() and the server logs of the clusters named.")));
}

/* Our record goes (its wait is over, or its node granted).  Never throws. */
void
withdraw_record(void)
{
	if (watched_wait.published)
		zk_release_node(watched_wait.record, 0, true);
	watched_wait.published = false;
}

/*
 * A mark left for us, read by this scan: the DETAIL if it names our wait
 * and a cycle that stands (marks.c), else NULL; a mark we may ignore is
 * deleted.
 */
static char *
act_on_mark(Graph *g, int me, const MarkRead *mark)
{
	const char *why;
	char	   *detail = verify_mark(g, me, mark, &why);

	if (why)
	{
		elog(DEBUG1, "zksync ignored and deleted a deadlock mark: %s", why);
		delete_mark();
	}
	return detail;
}

/* log_lock_waits, once a wait: "still waiting", with what blocks us */
static void
log_blockers(Graph *g, int me)
{
	StringInfoData s;

	initStringInfo(&s);
	if (me >= 0 && g->rec[me].row >= 0)
	{
		int		   *b = palloc(sizeof(int) * (g->rows[g->rec[me].row].count + 1));
		int			nb = zksync_row_blockers(g->rows, g->rec[me].row, b),
					k;

		for (k = 0; k < nb; k++)
		{
			if (k == 0)
				appendStringInfoString(&s, _("Blocked by "));
			else
				appendStringInfoString(&s, "; ");
			appendStringInfoString(&s, describe_owner(&g->rows[b[k]]));
		}
		if (nb > 0)
			appendStringInfoChar(&s, '.');
	}
	log_still_waiting(s.len > 0 ? s.data : NULL);
}

/*
 * A cycle seen twice: the youngest wait of it is the victim.  Returns the
 * DETAIL if the victim is us; else tells the victim through a mark if it
 * cannot see the cycle itself, and returns NULL.
 */
static char *
end_cycle(Graph *g, int me, int *cycle, int len)
{
	int			victim = me,
				i;
	bool		victim_sees = true;
	StringInfoData s;

	initStringInfo(&s);
	for (i = 0; i < len; i++)
	{
		Edge	   *e = &g->edges[cycle[i]];

		appendStringInfo(&s, "%s%s", i ? "\n" : "", e->text);
		if (g->rec[e->from].czxid > g->rec[victim].czxid)
			victim = e->from;
	}
	for (i = 0; i < len; i++)
	{
		Edge	   *e = &g->edges[cycle[i]];

		/* edges through PostgreSQL locks are seen on their cluster only */
		if (e->via_pg && victim != me &&
			(g->rec[victim].owner.cluster == NULL ||
			 strcmp(g->rec[victim].owner.cluster, zksync_cluster_id()) != 0))
			victim_sees = false;
	}
	if (victim == me)
		return s.data;
	if (!victim_sees)
		leave_mark(g, cycle, len, victim);
	return NULL;
}

/* Forget the cycle the last scan found, or remember `sig` instead */
static void
remember_cycle(const char *sig)
{
	if (watched_wait.last_cycle)
		pfree(watched_wait.last_cycle);
	watched_wait.last_cycle = sig ?
		MemoryContextStrdup(TopMemoryContext, sig) : NULL;
}

/*
 * Look for a cycle through our record `me`; a cycle counts once a second
 * scan finds it again.  Returns the DETAIL if we are its victim.
 */
static char *
judge_cycles(Graph *g, int me)
{
	int		   *cycle;
	int			len = find_cycle(g, me, &cycle);
	char	   *sig;

	if (len == 0)
	{
		remember_cycle(NULL);
		return NULL;
	}
	sig = cycle_signature(g, cycle, len);
	if (watched_wait.last_cycle == NULL ||
		strcmp(sig, watched_wait.last_cycle) != 0)
	{
		remember_cycle(sig);	/* seen once: look again soon */
		return NULL;
	}
	remember_cycle(NULL);		/* seen twice: act on it */
	return end_cycle(g, me, cycle, len);
}

/* When the next scan is due: soon if a cycle waits for confirmation */
static void
schedule_next_check(void)
{
	int			interval;

	if (watched_wait.last_cycle)
		interval = Min(CONFIRM_MS, DeadlockTimeout);
	else
		interval = watched_wait.rescan_ms =
			watched_wait.rescan_ms == 0 ? RESCAN_FIRST_MS :
			Min(watched_wait.rescan_ms * 2, Max(RESCAN_MIN_MS, DeadlockTimeout));
	watched_wait.next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  interval);
}

/*
 * A check of the wait in progress, due at deadlock_timeout and then now
 * and then: publish our record, scan, act on a mark left for us, log
 * (once), judge the cycles through us.  Throws 40P01 if we are the victim
 * of a deadlock.
 */
void
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
	int			me;

	if (!watched_wait.published)
		publish_wait();
	pgstat_clear_snapshot();
	me = build_graph(&g, &mark);
	if (mark.data)
	{
		detail = act_on_mark(&g, me, &mark);
		marked = detail != NULL;
	}
	if (!watched_wait.logged && log_lock_waits)
		log_blockers(&g, me);
	if (detail == NULL && me >= 0)
		detail = judge_cycles(&g, me);
	else
		remember_cycle(NULL);
	schedule_next_check();

	MemoryContextSwitchTo(old);
	if (detail)
	{
		char	   *copy = pstrdup(detail);

		MemoryContextDelete(scan_cxt);
		if (marked)
			delete_mark();		/* it has served */
		deadlock_error(copy);
	}
	MemoryContextDelete(scan_cxt);
}
