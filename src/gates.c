/*-------------------------------------------------------------------------
 * gates.c
 *	  Barriers and double barriers in view: their nodes, the waits
 *	  published for them, who blocks whom, and their log_lock_waits detail
 *	  (docs/waits.md, "Barriers in view").
 *
 * A barrier or a double barrier is a gate: its waiters join no queue, so
 * the queues' reader (waits.c) cannot see them.  A gate's waiter
 * publishes its wait at once instead (zksync_gate_watch_begin: the record
 * {root}/waits/{session id} that a queue's waiter publishes at
 * deadlock_timeout, with "kind" barrier or dbarrier and "what" wait,
 * enter or exit).  A gate's rows, for the views, are
 *
 *	 barrier	its node {root}/barriers/{name}, mode "set", granted: who set
 *				it (its owner data, if zksync did); and each published
 *				wait for it, mode "wait", not granted;
 *	 dbarrier	each participant node of {root}/dbarriers/{name} (every
 *				child but "ready"), mode "enter", granted once "ready"
 *				is there, unless its session has published a wait for the
 *				barrier: then that wait's mode ("enter" or "exit"), not
 *				granted; and each published wait whose participant node
 *				is gone already (a participant that leaves deletes its own
 *				node first, unless it is the lowest), as a row of its own.
 *
 * Who blocks whom, as zksync_blocking() and the log say: a barrier's
 * waiter is blocked by the barrier's node (whoever set it; anyone may
 * unset it, but that is who stands in the way).  A participant waiting to
 * leave is blocked by every other participant node still there: those
 * have not left yet.  A participant waiting to enter is blocked by
 * participants that have not come, which no node names: nobody is shown
 * (the log says how many have entered).  None of these is an edge of a
 * deadlock: deadlock.c ignores a gate's record.
 *
 * What can go wrong: everything read here may be anyone's (a record, a
 * node's data, a child's name), and is read as foreign bytes (layout.c):
 * a record counts only if its data is owner data with a kind, a what and
 * a name of ours.  A connection error leaves what could not be read out
 * of the view.  Records are read only when a gate exists (a waiter waits
 * only while its gate is there), so that the waits of many locks, whose
 * records a scan publishes, cost the views nothing while no gate exists.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/proc.h"
#include "utils/memutils.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "waits_int.h"

/* The kinds of the gates' rows (not registered: no queue to read) */
static const ZkQueueKind barrier_rows = {"barrier", ZKSYNC_BARRIERS, 0};
static const ZkQueueKind dbarrier_rows = {"dbarrier", ZKSYNC_DBARRIERS, 0};

/* One gate to read: a barrier's node, or a double barrier's directory */
typedef struct Gate
{
	bool		dbarrier;
	char	   *name;
	char	   *path;			/* {root}/barriers/{name},
								 * {root}/dbarriers/{name} */
	ZkReq	   *read;			/* barrier: its node; double barrier: its
								 * children */
	bool		ready;			/* double barrier: "ready" is there */
	int			n;				/* double barrier: its participants */
	char	  **names;
	ZkReq	  **gets;
} Gate;

/* A published wait for a gate, as read */
typedef struct GateRecord
{
	ZkGateWhat	what;
	char	   *name;			/* valid UTF-8 (zksync_json_field) */
	char	   *path;			/* the record's own */
	int64		session;
	int64		ctime_ms;
	ZkOwner		owner;
	char	   *data;
	int			len;
	bool		shown;			/* in a participant's row already */
} GateRecord;

/* What gates_send() sent: the listings of {root}/barriers, /dbarriers, /waits */
struct GateRead
{
	ZkReq	   *barriers;
	ZkReq	   *dbarriers;
	ZkReq	   *waits;
};

/* A gate's kind, as its records and the views name it */
const char *
gate_kind_text(ZkGateWhat what)
{
	return what == ZKG_BARRIER ? "barrier" : "dbarrier";
}

/* What a gate's waiter waits for, as its record and the views (mode) say */
const char *
gate_what_text(ZkGateWhat what)
{
	switch (what)
	{
		case ZKG_NONE:
			break;
		case ZKG_BARRIER:
			return "wait";
		case ZKG_DBARRIER_ENTER:
			return "enter";
		case ZKG_DBARRIER_EXIT:
			return "exit";
	}
	return "?";
}

/* Is a record's "kind" a gate's?  (Its wait is no edge of a deadlock.) */
bool
is_gate_kind(const char *kind)
{
	return strcmp(kind, "barrier") == 0 || strcmp(kind, "dbarrier") == 0;
}

/*
 * What a published wait waits for (data, len), if it is a gate's of our
 * making; ZKG_NONE if not.
 */
static ZkGateWhat
record_what(const char *data, int len)
{
	char	   *kind = zksync_json_field(data, len, "kind");
	char	   *what = zksync_json_field(data, len, "what");

	if (kind == NULL || what == NULL)
		return ZKG_NONE;
	if (strcmp(kind, "barrier") == 0 && strcmp(what, "wait") == 0)
		return ZKG_BARRIER;
	if (strcmp(kind, "dbarrier") == 0 && strcmp(what, "enter") == 0)
		return ZKG_DBARRIER_ENTER;
	if (strcmp(kind, "dbarrier") == 0 && strcmp(what, "exit") == 0)
		return ZKG_DBARRIER_EXIT;
	return ZKG_NONE;
}

static Gate *
gate_new(bool dbarrier, const char *name)
{
	Gate	   *g = palloc0(sizeof(Gate));

	g->dbarrier = dbarrier;
	g->name = pstrdup(name);
	g->path = zksync_recipe_dir(dbarrier ? ZKSYNC_DBARRIERS : ZKSYNC_BARRIERS,
								name);
	return g;
}

/* Send gate g's first read: the barrier's node, the double barrier's children */
static void
gate_send(Gate *g)
{
	g->read = g->dbarrier ? zk_get_children(g->path) : zk_get(g->path, false);
}

/* Once g's children are in: a read of each participant's node sent */
static void
gate_send_participants(Gate *g)
{
	int			i;

	if (!g->dbarrier)
		return;
	if (zk_call(g->read) != ZOK)
	{
		zk_req_free(g->read);
		g->read = NULL;
		return;
	}
	g->names = palloc(sizeof(char *) * (zk_req_nchildren(g->read) + 1));
	g->gets = palloc(sizeof(ZkReq *) * (zk_req_nchildren(g->read) + 1));
	for (i = 0; i < zk_req_nchildren(g->read); i++)
	{
		const char *c = zk_req_children(g->read)[i];

		if (!zksync_dbarrier_is_participant(c))
		{
			g->ready = true;
			continue;
		}
		g->names[g->n] = pstrdup(c);
		g->n++;
	}
	zk_req_free(g->read);
	g->read = NULL;
	/* in the order participants leave in (layout.c) */
	zksync_sort_by_name(g->names, g->n);
	for (i = 0; i < g->n; i++)
		g->gets[i] = zk_get(zksync_child_path(g->path, g->names[i]), false);
}

/* A row for one of a gate's nodes, from its read (`get`); mode and grant to be set */
static void
node_row(ZkWaitRow *r, const ZkQueueKind *kind, const char *name,
		 const char *path, ZkReq *get)
{
	const char *data = zk_req_data(get);
	int			len = zk_req_datalen(get);

	r->kind = kind;
	r->name = pstrdup(name);
	r->node = pstrdup(path);
	r->czxid = zk_req_czxid(get);
	r->ctime_ms = zk_req_ctime(get);
	r->session = zk_req_ephemeral_owner(get);
	r->is_backend = zksync_owner_parse(data, len, &r->owner);
	if (data && len > 0)
	{
		r->data = palloc(len + 1);
		memcpy(r->data, data, len);
		r->data[len] = '\0';
		r->datalen = len;
	}
	r->standing = true;
}

/* A row for a published wait that no participant's row shows */
static void
record_row(ZkWaitRow *r, GateRecord *rec)
{
	r->kind = rec->what == ZKG_BARRIER ? &barrier_rows : &dbarrier_rows;
	r->name = rec->name;
	r->node = rec->path;
	r->mode = gate_what_text(rec->what);
	r->gate = rec->what;
	r->granted = false;
	r->ctime_ms = rec->ctime_ms;
	r->session = rec->session;
	r->is_backend = true;
	r->owner = rec->owner;
	r->data = rec->data;
	r->datalen = rec->len;
	r->standing = false;
	rec->shown = true;
}

/* The published wait of `session` for gate g, or NULL */
static GateRecord *
record_of(GateRecord *recs, int nrecs, const Gate *g, int64 session)
{
	int			i;

	for (i = 0; i < nrecs; i++)
		if (recs[i].session == session && strcmp(recs[i].name, g->name) == 0 &&
			(recs[i].what == ZKG_BARRIER) == !g->dbarrier)
			return &recs[i];
	return NULL;
}

/*
 * The rows of gate g, from rows[n] on (room for them all), with the
 * published waits for it; returns how many.
 */
static int
gate_rows(Gate *g, GateRecord *recs, int nrecs, ZkWaitRow *rows, int n)
{
	int			first = n,
				i;

	if (!g->dbarrier && g->read)
	{
		if (zk_call(g->read) == ZOK)
		{
			ZkWaitRow  *r = &rows[n++];

			node_row(r, &barrier_rows, g->name, g->path, g->read);
			r->mode = "set";
			r->gate = ZKG_BARRIER;
			r->granted = true;
		}
		zk_req_free(g->read);
	}
	for (i = 0; i < g->n; i++)
	{
		ZkWaitRow  *r = &rows[n];
		GateRecord *rec;

		/* a participant gone meanwhile is left out */
		if (zk_call(g->gets[i]) != ZOK)
		{
			zk_req_free(g->gets[i]);
			continue;
		}
		node_row(r, &dbarrier_rows, g->name,
				 zksync_child_path(g->path, g->names[i]), g->gets[i]);
		zk_req_free(g->gets[i]);
		rec = r->session ? record_of(recs, nrecs, g, r->session) : NULL;
		if (rec)
		{
			/* it waits: to enter, or to leave (the lowest keeps its node) */
			r->mode = gate_what_text(rec->what);
			r->gate = rec->what;
			r->granted = false;
			r->ctime_ms = rec->ctime_ms;
			rec->shown = true;
		}
		else
		{
			r->mode = gate_what_text(ZKG_DBARRIER_ENTER);
			r->gate = ZKG_DBARRIER_ENTER;
			r->granted = g->ready;
		}
		n++;
	}
	for (i = 0; i < nrecs; i++)
		if (!recs[i].shown && strcmp(recs[i].name, g->name) == 0 &&
			(recs[i].what == ZKG_BARRIER) == !g->dbarrier)
			record_row(&rows[n++], &recs[i]);
	for (i = first; i < n; i++)
	{
		rows[i].first = first;
		rows[i].count = n - first;
		rows[i].index = i - first;
	}
	return n - first;
}

/* The names a listing found (NULL, 0 if it failed), its reply freed */
static char **
listed_names(ZkReq *list, int *n)
{
	char	  **names = NULL;
	int			i;

	*n = 0;
	if (list == NULL)
		return NULL;
	if (zk_call(list) == ZOK)
	{
		*n = zk_req_nchildren(list);
		names = palloc(sizeof(char *) * (*n + 1));
		for (i = 0; i < *n; i++)
			names[i] = pstrdup(zk_req_children(list)[i]);
	}
	zk_req_free(list);
	return names;
}

/* A read of each published wait (the names listed under `dir`), sent */
static ZkReq **
records_send(const char *dir, char **names, int n)
{
	ZkReq	  **gets = palloc(sizeof(ZkReq *) * (n + 1));
	int			i;

	for (i = 0; i < n; i++)
		gets[i] = zk_get(zksync_child_path(dir, names[i]), false);
	return gets;
}

/*
 * The published waits for gates among the replies to records_send();
 * returns how many.
 */
static int
records_collect(const char *dir, char **names, ZkReq **gets, int n,
				GateRecord **out)
{
	GateRecord *recs = palloc0(sizeof(GateRecord) * (n + 1));
	int			nrecs = 0,
				i;

	for (i = 0; i < n; i++)
	{
		GateRecord *rec = &recs[nrecs];
		const char *data;
		int			len;

		if (zk_call(gets[i]) == ZOK && (data = zk_req_data(gets[i])) != NULL &&
			(len = zk_req_datalen(gets[i])) > 0 &&
			(rec->what = record_what(data, len)) != ZKG_NONE &&
			zksync_owner_parse(data, len, &rec->owner) &&
			(rec->name = zksync_json_field(data, len, "name")) != NULL)
		{
			rec->path = zksync_child_path(dir, names[i]);
			rec->session = zk_req_ephemeral_owner(gets[i]);
			rec->ctime_ms = zk_req_ctime(gets[i]);
			rec->data = palloc(len + 1);
			memcpy(rec->data, data, len);
			rec->data[len] = '\0';
			rec->len = len;
			nrecs++;
		}
		zk_req_free(gets[i]);
	}
	*out = recs;
	return nrecs;
}

/*
 * The first reads of every gate's rows, sent at once (zksync_read_waits
 * reads the queues meanwhile): the listings of the barriers, the double
 * barriers and the published waits.
 */
GateRead *
gates_send(void)
{
	GateRead   *gr = palloc0(sizeof(GateRead));

	gr->barriers = zk_get_children(psprintf("%s/%s", zksync_root, ZKSYNC_BARRIERS));
	gr->dbarriers = zk_get_children(psprintf("%s/%s", zksync_root, ZKSYNC_DBARRIERS));
	gr->waits = zk_get_children(psprintf("%s/%s", zksync_root, ZKSYNC_WAITS));
	return gr;
}

/*
 * Every gate's rows (each gate's rows together: rows[first .. first +
 * count)), then the published waits for a gate that is gone, each a gate
 * of its own.  Returns how many; *rows is palloc'd.
 */
int
gates_collect(GateRead *gr, ZkWaitRow **rows)
{
	char	  **bnames,
			  **dnames,
			  **wnames;
	int			nb,
				nd,
				nw,
				nrecs = 0,
				total,
				n = 0,
				i;
	Gate	  **gates;
	GateRecord *recs = NULL;
	char	   *wdir;
	ZkReq	  **wgets;

	bnames = listed_names(gr->barriers, &nb);
	dnames = listed_names(gr->dbarriers, &nd);
	wnames = listed_names(gr->waits, &nw);
	*rows = NULL;
	if (nb + nd == 0)
		return 0;				/* no gate: nobody waits for one */

	gates = palloc(sizeof(Gate *) * (nb + nd + 1));
	for (i = 0; i < nb + nd; i++)
	{
		gates[i] = gate_new(i >= nb, i < nb ? bnames[i] : dnames[i - nb]);
		gate_send(gates[i]);
	}
	wdir = psprintf("%s/%s", zksync_root, ZKSYNC_WAITS);
	wgets = records_send(wdir, wnames, nw);
	total = 0;
	for (i = 0; i < nb + nd; i++)
	{
		gate_send_participants(gates[i]);
		total += gates[i]->dbarrier ? gates[i]->n : 1;
	}
	nrecs = records_collect(wdir, wnames, wgets, nw, &recs);
	total += nrecs;
	*rows = palloc0(sizeof(ZkWaitRow) * (total + 1));
	for (i = 0; i < nb + nd; i++)
		n += gate_rows(gates[i], recs, nrecs, *rows, n);
	for (i = 0; i < nrecs; i++)
		if (!recs[i].shown)
		{
			record_row(&(*rows)[n], &recs[i]);
			(*rows)[n].first = n;
			(*rows)[n].count = 1;
			n++;
		}
	return n;
}

/*
 * Does row j block row i, both rows of one gate?  A barrier's waiter: the
 * barrier's node.  A participant waiting to leave: every other
 * participant node still there.  A participant waiting to enter: nobody
 * we can name.
 */
bool
gate_row_blocks(const ZkWaitRow *rows, int i, int j)
{
	const ZkWaitRow *a = &rows[i];
	const ZkWaitRow *b = &rows[j];

	if (a->granted || j == i || b->first != a->first || !b->standing)
		return false;
	switch (a->gate)
	{
		case ZKG_BARRIER:
			return true;
		case ZKG_DBARRIER_EXIT:
			return b->session != a->session;
		case ZKG_NONE:
		case ZKG_DBARRIER_ENTER:
			break;
	}
	return false;
}

/*
 * The log_lock_waits detail of our gate's wait, read now: who set the
 * barrier; how many participants have entered; who has yet to leave.
 * NULL if there is nothing to say.
 */
static char *
gate_detail(void)
{
	Gate	   *g = gate_new(watched_wait.gate != ZKG_BARRIER, watched_wait.name);
	ZkWaitRow  *rows;
	StringInfoData s;
	int			n,
				i;

	gate_send(g);
	gate_send_participants(g);
	rows = palloc0(sizeof(ZkWaitRow) * (g->n + 2));
	n = gate_rows(g, NULL, 0, rows, 0);
	initStringInfo(&s);
	switch (watched_wait.gate)
	{
		case ZKG_NONE:
			break;
		case ZKG_BARRIER:
			if (n == 0)
				break;
			if (rows[0].is_backend)
				appendStringInfo(&s, _("Set by process %d on cluster %s."),
								 rows[0].owner.pid,
								 zksync_owner_cluster(&rows[0].owner));
			else
				appendStringInfoString(&s, _("Set by another ZooKeeper client."));
			break;
		case ZKG_DBARRIER_ENTER:
			appendStringInfo(&s, _("Participants entered: %d of %d."),
							 n, watched_wait.participants);
			break;
		case ZKG_DBARRIER_EXIT:
			for (i = 0; i < n; i++)
			{
				if (rows[i].session == zk_session_id())
					continue;
				appendStringInfoString(&s, s.len ? "; " : _("Blocked by "));
				appendStringInfoString(&s, describe_owner(&rows[i]));
			}
			if (s.len > 0)
				appendStringInfoChar(&s, '.');
			break;
	}
	return s.len > 0 ? s.data : NULL;
}

/*
 * A gate's wait at deadlock_timeout: its record again if it could not be
 * published at its start, and the "still waiting" line if log_lock_waits
 * is on.  Nothing after that: there is no deadlock to look for.
 */
void
check_gate_wait(void)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "zksync gate check",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);

	watched_wait.next_check = 0;
	if (!published_here())
	{
		watched_wait.published = false;
		publish_wait();
	}
	if (log_lock_waits && !watched_wait.logged)
		log_still_waiting(gate_detail());
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
