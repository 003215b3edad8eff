/*-------------------------------------------------------------------------
 * waits.c
 *	  Every wait in view, and the watch over the wait in progress.
 *
 * The queues.  A recipe registers the kind of queue it keeps
 * (ZkQueueKind: where its directories are, the mode of a contender, its
 * grant rule and which contenders block a waiting one), the same rule its
 * wait uses.  This file reads them, for any cluster or client, with one
 * reader (read_targets) behind every view:
 *
 *	 zksync_read_waits()	every contender node of every registered queue,
 *							granted or not, with who made it (its owner
 *							data, layout.c) and when (the node's ctime),
 *							then the barriers, double-barrier participants
 *							and barrier waits (gates.c): the rows of
 *							zksync_waits();
 *	 zksync_read_queue()	the contenders of one named queue: the rows of
 *							zksync_lock_holders() and
 *							zksync_semaphore_leases();
 *	 zksync_read_blockers()	the contenders that block a local backend's
 *							wait: the rows of zksync_blocking().
 *
 * Reads are pipelined: the directories of every name are listed at once,
 * and each listing's nodes are read as soon as it is in, so that thousands
 * of locks cost a few round trips, not one per node.  A node deleted
 * between the listing and its read is left out; its place in the queue
 * stays known, so the grant rule still counts it.
 *
 * The wait in progress.  A recipe's wait begins with
 * zksync_wait_watch_begin() and sleeps in zksync_wait_watched(), which at
 * deadlock_timeout logs "still waiting" if log_lock_waits is on (and
 * "acquired" when the wait ends with a grant) and has deadlock.c look for
 * a cycle, then again now and then while the wait lasts.  Nothing of this
 * happens before deadlock_timeout.  A barrier's wait begins with
 * zksync_gate_watch_begin() instead: it publishes its record at once, for
 * the views, and at deadlock_timeout it is only logged (gates.c).
 *
 * What can go wrong: a connection error while reading for a view leaves
 * that queue out of zksync_waits() (the views show what could be read);
 * zksync_read_queue() rides out a lost connection instead, and throws on
 * any other error.  The data of a node may be anyone's: it is read as
 * foreign bytes (layout.c).  Nothing here throws during a wait except a
 * deadlock's 40P01 and what the transport throws.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "utils/backend_status.h"
#include "utils/timestamp.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "nodes.h"
#include "waits.h"
#include "waits_int.h"
#include "shared.h"

Wait		watched_wait;

static void end_wait(bool granted, int outcome);

static const ZkQueueKind *kinds[4];
static int	nkinds = 0;

/*
 * A recipe's kind of queue, from its init: in the views and the deadlock
 * scan from now on.
 */
void
zksync_register_queue_kind(const ZkQueueKind *kind)
{
	if (nkinds == (int) lengthof(kinds))
		elog(ERROR, "too many zksync queue kinds");
	kinds[nkinds++] = kind;
}

/* The registered kinds; *n is how many */
const ZkQueueKind *const *
queue_kinds(int *n)
{
	*n = nkinds;
	return kinds;
}

/* ---------------------------------------------------------------------
 * Reading queues
 * ---------------------------------------------------------------------
 */

/* A queue to read, named by its kind, its number and the recipe's name */
Target *
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

/* A copy of a node's data (any bytes), kept with its row */
static void
keep_data(ZkWaitRow *r, const char *data, int len)
{
	if (data == NULL || len <= 0)
		return;
	r->data = palloc(len + 1);
	memcpy(r->data, data, len);
	r->data[len] = '\0';
	r->datalen = len;
}

/*
 * Send target t's listing, and the read of queue 0's capacity if its kind
 * keeps one.  A target that rides out connection loss is listed (and its
 * capacity read) to the end here, retrying: its listing is then ZOK or
 * ZNONODE, and any other error throws.
 */
static void
send_listing(Target *t)
{
	char	   *name_node = psprintf("%s/%s/%s", zksync_root, t->kind->subdir,
									 t->name);

	if (t->ride_out)
	{
		if (t->kind->capacity && t->queue == 0)
			t->capacity_get = zk_call_retrying(ZKOP_GET, name_node, NULL, 0, 0,
											   NULL);
		t->listing = zk_children_retrying(t->dir);
		return;
	}
	if (t->kind->capacity && t->queue == 0)
		t->capacity_get = zk_get(name_node, false);
	t->listing = zk_get_children(t->dir);
}

/*
 * Once target t's listing is in: its contenders in order, and a read of
 * each one's node sent.  Returns how many (0 if the queue could not be
 * listed).
 */
static int
send_reads(Target *t)
{
	ZkReq	   *g = t->listing;
	int			j;

	if (!t->ride_out && zk_call(g) != ZOK)
		return 0;
	if (t->ride_out && zk_req_rc(g) != ZOK)
		return 0;
	t->n = zksync_contenders(zk_req_children(g), zk_req_nchildren(g), &t->c);
	t->gets = palloc(sizeof(ZkReq *) * (t->n + 1));
	for (j = 0; j < t->n; j++)
	{
		/* the rows keep the names; the listing goes */
		t->c[j].name = pstrdup(t->c[j].name);
		t->gets[j] = zk_get(psprintf("%s/%s", t->dir, t->c[j].name), false);
	}
	return t->n;
}

/* Row r: contender j of target q, whose node read g answered */
static void
form_row(ZkWaitRow *r, const Target *q, int j, ZkReq *g)
{
	r->kind = q->kind;
	r->queue = q->queue;
	r->name = q->name;
	r->node = psprintf("%s/%s", q->dir, q->c[j].name);
	r->mode = q->kind->mode(q->queue, &q->c[j]);
	r->what = q->kind->what(q->queue, &q->c[j]);
	r->granted = q->kind->granted(q->queue, q->c, q->n, j, q->capacity);
	r->czxid = zk_req_czxid(g);
	r->ctime_ms = zk_req_ctime(g);
	r->session = zk_req_ephemeral_owner(g);
	r->is_backend = zksync_owner_parse(zk_req_data(g), zk_req_datalen(g),
									   &r->owner);
	keep_data(r, zk_req_data(g), zk_req_datalen(g));
	r->contenders = q->c;
	r->ncontenders = q->n;
	r->index = j;
	r->capacity = q->capacity;
}

/* The rows of target q, from rows[nrows] on; returns how many */
static int
collect_rows(Target *q, ZkWaitRow *rows, int nrows)
{
	int			first = nrows,
				j;

	if (q->capacity_get)
	{
		if (zk_call(q->capacity_get) == ZOK)
			q->capacity = q->kind->capacity(zk_req_data(q->capacity_get),
											zk_req_datalen(q->capacity_get));
		zk_req_free(q->capacity_get);
	}
	for (j = 0; j < q->n; j++)
	{
		/* a node gone meanwhile is left out; its place stays known */
		if (zk_call(q->gets[j]) == ZOK)
		{
			form_row(&rows[nrows], q, j, q->gets[j]);
			rows[nrows++].first = first;
		}
		zk_req_free(q->gets[j]);
	}
	zk_req_free(q->listing);
	return nrows - first;
}

/*
 * Read the targets: every listing (and capacity) sent at once, each
 * listing's nodes read as soon as it is in; then form the rows, queue by
 * queue in sequence order.  A connection error leaves a queue out, unless
 * the target rides it out (send_listing).  Returns how many rows; *out is
 * palloc'd.
 */
int
read_targets(Target **t, int nt, ZkWaitRow **out)
{
	ZkWaitRow  *rows;
	int			total = 0,
				nrows = 0,
				i;

	for (i = 0; i < nt; i++)
		send_listing(t[i]);
	for (i = 0; i < nt; i++)
		total += send_reads(t[i]);
	rows = palloc0(sizeof(ZkWaitRow) * (total + 1));
	for (i = 0; i < nt; i++)
		nrows += collect_rows(t[i], rows, nrows);
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
 * Every contender of every registered queue under zksync.root, then every
 * gate's rows (gates.c: barriers, double barriers and their waits), each
 * gate read alongside the queues.  Returns how many rows; *rows is
 * palloc'd.
 */
int
zksync_read_waits(ZkWaitRow **rows)
{
	ZkReq	   *lists[lengthof(kinds)];
	Target	  **t = NULL;
	GateRead   *gates;
	ZkWaitRow  *grows;
	int			nt = 0,
				maxt = 0,
				n,
				ng,
				k,
				i,
				q;

	zk_connect();
	gates = gates_send();
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
	n = read_targets(t, nt, rows);
	ng = gates_collect(gates, &grows);
	if (ng == 0)
		return n;
	*rows = repalloc(*rows, sizeof(ZkWaitRow) * (n + ng + 1));
	for (i = 0; i < ng; i++)
	{
		(*rows)[n + i] = grows[i];
		(*rows)[n + i].first += n;
	}
	return n + ng;
}

/*
 * The contenders of one queue: queue `queue` of recipe `name`, of the kind
 * registered for {root}/{subdir}, with the kind's grant rule.  Rides out
 * connection loss; other errors throw.  Returns how many rows (0 if the
 * queue does not exist); *rows is palloc'd.
 */
int
zksync_read_queue(const char *subdir, int queue, const char *name,
				  ZkWaitRow **rows)
{
	Target	   *t = NULL;
	int			k;

	for (k = 0; k < nkinds; k++)
		if (strcmp(kinds[k]->subdir, subdir) == 0 && queue < kinds[k]->nqueues)
			t = target_new(kinds[k], queue, name);
	if (t == NULL)
		elog(ERROR, "no zksync queue kind is registered for \"%s\" queue %d",
			 subdir, queue);
	t->ride_out = true;
	zk_connect();
	return read_targets(&t, 1, rows);
}

/* Does row j block row i (both of one queue)? */
bool
row_blocks(const ZkWaitRow *rows, int i, int j)
{
	const ZkWaitRow *a = &rows[i];

	if (a->gate != ZKG_NONE)
		return gate_row_blocks(rows, i, j);
	if (a->granted || j == i || rows[j].first != a->first)
		return false;
	return a->kind->blocks(a->queue, a->contenders, a->ncontenders,
						   a->index, rows[j].index, a->capacity);
}

/*
 * The rows that block row i, into `out` (room for rows[i].count); returns
 * how many.
 */
int
zksync_row_blockers(const ZkWaitRow *rows, int i, int *out)
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
bool
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
zksync_read_blockers(int pid, ZkWaitRow **rows, int **blockers)
{
	int			n,
				nb = 0,
				i;

	pgstat_clear_snapshot();
	n = zksync_read_waits(rows);
	*blockers = palloc(sizeof(int) * (n + 1));
	for (i = 0; i < n; i++)
	{
		ZkWaitRow  *r = &(*rows)[i];

		if (r->granted || r->owner.pid != pid || !row_is_local_backend(r))
			continue;
		nb += zksync_row_blockers(*rows, i, *blockers + nb);
	}
	return nb;
}

/*
 * Who owns a row's node, for a message's detail: "process 123 on cluster
 * "east" (7301...)" (zksync_owner_cluster) or "ZooKeeper session 0x...
 * (another client)"
 */
char *
describe_owner(const ZkWaitRow *r)
{
	if (r->is_backend)
		return psprintf(_("process %d on cluster %s"), r->owner.pid,
						zksync_owner_cluster(&r->owner));
	return psprintf(_("ZooKeeper session %s (another client)"),
					zksync_session_text(r->session));
}

/*
 * A line of a deadlock's detail: process `waiter` (owner data of its
 * record) waits for `what` named `name` and is blocked by `blocker`'s
 * owner.
 */
void
append_wait_line(StringInfo s, const ZkOwner *waiter, ZkQueueWhat what,
				 const char *name, const ZkWaitRow *blocker)
{
	char	   *by = describe_owner(blocker);
	char	   *cluster = zksync_owner_cluster(waiter);
	int			pid = waiter->pid;

	switch (what)
	{
		case ZKQ_WRITE_LOCK:
			appendStringInfo(s, _("Process %d on cluster %s waits for zksync write lock \"%s\"; blocked by %s."),
							 pid, cluster, name, by);
			break;
		case ZKQ_READ_LOCK:
			appendStringInfo(s, _("Process %d on cluster %s waits for zksync read lock \"%s\"; blocked by %s."),
							 pid, cluster, name, by);
			break;
		case ZKQ_SEMAPHORE:
			appendStringInfo(s, _("Process %d on cluster %s waits for zksync semaphore \"%s\"; blocked by %s."),
							 pid, cluster, name, by);
			break;
	}
}

/* ---------------------------------------------------------------------
 * The wait in progress, and what happens at deadlock_timeout
 * ---------------------------------------------------------------------
 */

/* The node the wait waits with, and how messages name what it waits for */
static void
wait_node(const ZkQueueKind *kind, int queue, const char *node, int64 czxid)
{
	ZkContender me;

	watched_wait.queue = queue;
	strlcpy(watched_wait.node, node, sizeof(watched_wait.node));
	me.name = strrchr(node, '/') + 1;
	me.seq = zksync_node_sequence(me.name);
	me.reader = zksync_node_is_reader(me.name);
	watched_wait.what = kind->what(queue, &me);
	watched_wait.czxid = czxid;
}

/*
 * A wait with our node `node` in queue `queue` of `kind` begins (or goes
 * on, if it is the same node).  `czxid` is the node's, 0 if unknown.
 */
void
zksync_wait_watch_begin(const ZkQueueKind *kind, int queue, const char *name,
						const char *node, int64 czxid)
{
	if (watched_wait.active && strcmp(watched_wait.node, node) == 0)
		return;
	if (watched_wait.active && watched_wait.continues &&
		watched_wait.kind == kind && strcmp(watched_wait.name, name) == 0)
	{
		/* the same wait, with its next node: its clock and log line go on */
		watched_wait.continues = false;
		wait_node(kind, queue, node, czxid);
		if (watched_wait.last_cycle)
			pfree(watched_wait.last_cycle);
		watched_wait.last_cycle = NULL;
		return;
	}
	end_wait(false, -1);
	memset(&watched_wait, 0, sizeof(watched_wait));
	watched_wait.active = true;
	watched_wait.kind = kind;
	strlcpy(watched_wait.name, name, sizeof(watched_wait.name));
	wait_node(kind, queue, node, czxid);
	watched_wait.start = GetCurrentTimestamp();
	if (DeadlockTimeout > 0)
		watched_wait.next_check = TimestampTzPlusMilliseconds(watched_wait.start,
															  DeadlockTimeout);
}

/*
 * A wait for gate `name` begins (or goes on, if it is the same): a barrier
 * to go (`node` the barrier's node), or a double barrier's participants
 * to come or to leave (`node` our participant node; `participants` how
 * many it waits for on entering).  Its record is published at once, so
 * that the views show the wait from its start (gates.c); at
 * deadlock_timeout it is logged per log_lock_waits, and that is all: a
 * gate's wait is no edge of a deadlock.  `czxid` is the node's, 0 if
 * unknown.
 */
void
zksync_gate_watch_begin(ZkGateWhat what, const char *name, const char *node,
						int64 czxid, int participants)
{
	if (watched_wait.active && watched_wait.gate == what &&
		strcmp(watched_wait.name, name) == 0 &&
		strcmp(watched_wait.node, node) == 0)
	{
		/* the same wait: its record went if its session did */
		if (!published_here())
		{
			watched_wait.published = false;
			publish_wait();
		}
		return;
	}
	end_wait(false, -1);
	memset(&watched_wait, 0, sizeof(watched_wait));
	watched_wait.active = true;
	watched_wait.gate = what;
	strlcpy(watched_wait.name, name, sizeof(watched_wait.name));
	strlcpy(watched_wait.node, node, sizeof(watched_wait.node));
	watched_wait.czxid = czxid;
	watched_wait.participants = participants;
	watched_wait.start = GetCurrentTimestamp();
	if (DeadlockTimeout > 0 && log_lock_waits)
		watched_wait.next_check = TimestampTzPlusMilliseconds(watched_wait.start,
															  DeadlockTimeout);
	publish_wait();
}

/* How long the wait in progress has lasted: whole ms, and the rest in us */
static void
elapsed(long *msecs, int *usecs)
{
	long		secs;

	TimestampDifference(watched_wait.start, GetCurrentTimestamp(), &secs, usecs);
	*msecs = secs * 1000 + *usecs / 1000;
	*usecs = *usecs % 1000;
}

/*
 * log_lock_waits: the wait in progress has lasted deadlock_timeout;
 * `detail` (may be NULL) says what blocks it.
 */
void
log_still_waiting(const char *detail)
{
	long		msecs;
	int			usecs;
	const char *name = watched_wait.name;

	elapsed(&msecs, &usecs);
	watched_wait.logged = true;
	switch (watched_wait.gate)
	{
		case ZKG_NONE:
			break;
		case ZKG_BARRIER:
			ereport(LOG,
					(errmsg("process %d still waiting for zksync barrier \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs),
					 detail ? errdetail_log("%s", detail) : 0));
			return;
		case ZKG_DBARRIER_ENTER:
			ereport(LOG,
					(errmsg("process %d still waiting to enter zksync double barrier \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs),
					 detail ? errdetail_log("%s", detail) : 0));
			return;
		case ZKG_DBARRIER_EXIT:
			ereport(LOG,
					(errmsg("process %d still waiting to leave zksync double barrier \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs),
					 detail ? errdetail_log("%s", detail) : 0));
			return;
	}
	switch (watched_wait.what)
	{
		case ZKQ_WRITE_LOCK:
			ereport(LOG,
					(errmsg("process %d still waiting for zksync write lock \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs),
					 detail ? errdetail_log("%s", detail) : 0));
			break;
		case ZKQ_READ_LOCK:
			ereport(LOG,
					(errmsg("process %d still waiting for zksync read lock \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs),
					 detail ? errdetail_log("%s", detail) : 0));
			break;
		case ZKQ_SEMAPHORE:
			ereport(LOG,
					(errmsg("process %d still waiting for zksync semaphore \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs),
					 detail ? errdetail_log("%s", detail) : 0));
			break;
	}
}

/*
 * log_lock_waits: a wait logged as "still waiting" ended with a grant (a
 * gate's: passed, entered, left)
 */
static void
log_acquired(void)
{
	long		msecs;
	int			usecs;
	const char *name = watched_wait.name;

	elapsed(&msecs, &usecs);
	switch (watched_wait.gate)
	{
		case ZKG_NONE:
			break;
		case ZKG_BARRIER:
			ereport(LOG,
					(errmsg("process %d passed zksync barrier \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs)));
			return;
		case ZKG_DBARRIER_ENTER:
			ereport(LOG,
					(errmsg("process %d entered zksync double barrier \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs)));
			return;
		case ZKG_DBARRIER_EXIT:
			ereport(LOG,
					(errmsg("process %d left zksync double barrier \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs)));
			return;
	}
	switch (watched_wait.what)
	{
		case ZKQ_WRITE_LOCK:
			ereport(LOG,
					(errmsg("process %d acquired zksync write lock \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs)));
			break;
		case ZKQ_READ_LOCK:
			ereport(LOG,
					(errmsg("process %d acquired zksync read lock \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs)));
			break;
		case ZKQ_SEMAPHORE:
			ereport(LOG,
					(errmsg("process %d acquired zksync semaphore \"%s\" after %ld.%03d ms",
							MyProcPid, name, msecs, usecs)));
			break;
	}
}

/*
 * Our node was granted, but the recipe's wait goes on with another node
 * (the semaphore's mutex, then its lease): our record goes, since the
 * node it names no longer waits; the clock and the log line go on with the
 * next zksync_wait_watch_begin() for the same name, or end with
 * zksync_wait_watch_end().  Never throws.
 */
void
zksync_wait_watch_node_done(void)
{
	if (!watched_wait.active)
		return;
	withdraw_record();
	watched_wait.continues = true;
	watched_wait.node[0] = '\0';
}

/* The wait is over (granted or not).  Never throws. */
void
zksync_wait_watch_end(bool granted)
{
	end_wait(granted, granted ? -1 : ZKSTAT_TIMEOUTS);
}

/*
 * The wait is over because an ERROR is on its way (call it from a
 * PG_CATCH block, before anything that could throw): zksync_stats counts
 * it by the error's SQLSTATE.  Never throws.
 */
void
zksync_wait_watch_fail(void)
{
	int			code;

	if (!watched_wait.active)
		return;
	code = geterrcode();
	if (code == ERRCODE_QUERY_CANCELED)
		end_wait(false, ZKSTAT_CANCELLED);
	else if (code == ERRCODE_LOCK_NOT_AVAILABLE)
		end_wait(false, ZKSTAT_TIMEOUTS);
	else if (code == ERRCODE_T_R_DEADLOCK_DETECTED)
		end_wait(false, ZKSTAT_DEADLOCKS);
	else
		end_wait(false, -1);
}

/*
 * The wait is over: counted in zksync_stats (as a wait, and as `outcome`
 * unless that is -1), logged if it was logged as waiting and is granted,
 * its record and marks withdrawn.  Never throws.
 */
static void
end_wait(bool granted, int outcome)
{
	if (!watched_wait.active)
		return;
	watched_wait.active = false;
	zksync_stat_wait(watched_wait.start);
	if (outcome >= 0)
		zksync_stat_count((ZkStat) outcome, 1);
	if (granted && watched_wait.logged)
		log_acquired();
	withdraw_record();
	withdraw_marks();
	if (watched_wait.last_cycle)
		pfree(watched_wait.last_cycle);
	watched_wait.last_cycle = NULL;
}

/*
 * zk_wait_event() for a recipe's wait begun with zksync_wait_watch_begin():
 * the same, but at deadlock_timeout and then now and then it looks for a
 * deadlock (and logs, if log_lock_waits is on).  Throws 40P01 if this
 * wait is a deadlock's victim.
 */
ZkWaitResult
zksync_wait_watched(uint64 seen, bool (*also) (void), TimestampTz deadline)
{
	for (;;)
	{
		TimestampTz until = deadline;
		ZkWaitResult r;

		if (watched_wait.active && watched_wait.next_check != 0 &&
			(until == 0 || watched_wait.next_check < until))
			until = watched_wait.next_check;
		r = zk_wait_event(seen, also, until, false);
		if (r != ZKW_TIMEOUT || until == deadline)
			return r;
		if (!zk_session_usable())
			return ZKW_EVENT;	/* the caller finds out */
		if (!zk_is_connected())
		{
			/* nothing to read now: look again soon */
			watched_wait.next_check =
				TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CONFIRM_MS);
			continue;
		}
		if (watched_wait.gate != ZKG_NONE)
			check_gate_wait();
		else
			check_wait();
	}
}
