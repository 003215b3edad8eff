/*-------------------------------------------------------------------------
 * marks.c
 *	  Deadlock marks: telling the victim of a cycle it cannot see whole,
 *	  and checking such a claim before acting on it (docs/waits.md).
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
 *
 * What can go wrong: anything in a mark.  Its data is read as foreign
 * bytes (a flat JSON object of our own making or nothing, within
 * MARK_MAX_BYTES, every number range-checked); whatever fails a check
 * makes the mark one to ignore, never an ERROR.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "storage/lock.h"
#include "utils/json.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "releases.h"
#include "waits_int.h"

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
 * The members of a mark (m's data), checked to be of our making: false,
 * with *why, if they are not.
 */
static bool
parse_mark(const MarkRead *m, FlatJson *f, int64 *victim, int64 *czxid,
		   const char **node, const char **why)
{
	const char *v;

	*why = "its data is not a zksync deadlock mark";
	if (m->len > MARK_MAX_BYTES)
	{
		*why = "its data is too long";
		return false;
	}
	if (memchr(m->data, '\0', m->len) != NULL ||
		!pg_verify_mbstr(PG_UTF8, m->data, m->len, true) ||
		!flat_json_parse(m->data, m->len, f))
		return false;
	*node = flat_json_get(f, "node");
	if ((v = flat_json_get(f, "victim")) == NULL || !mark_session(&v, victim) ||
		*v != '\0' || *node == NULL ||
		(v = flat_json_get(f, "czxid")) == NULL ||
		!mark_int(&v, 1, PG_INT64_MAX, czxid) || *v != '\0' ||
		flat_json_get(f, "cycle") == NULL)
		return false;
	*why = NULL;
	return true;
}

/*
 * The waiting record of each hop, into recs: false if a hop's wait is
 * gone, younger than ours (`czxid`) or named twice.
 */
static bool
hop_records(Graph *g, const MarkHop *hops, int n, int64 czxid, int *recs)
{
	int			i,
				k;

	for (i = 0; i < n; i++)
	{
		recs[i] = waiting_record(g, hops[i].session, hops[i].czxid);
		if (recs[i] < 0 || g->rows[g->rec[recs[i]].row].czxid > czxid)
			return false;
		for (k = 0; k < i; k++)
			if (recs[k] == recs[i])
				return false;
	}
	return true;
}

/*
 * Does hop i of the marked cycle (n hops, their records recs) stand in
 * our own reading g?  If so, its lines of the DETAIL are appended to s.
 */
static bool
hop_stands(Graph *g, const MarkRead *m, const MarkHop *hops, const int *recs,
		   int n, int i, StringInfo s)
{
	const MarkHop *h = &hops[i];
	Record	   *r = &g->rec[recs[i]];
	Record	   *next = &g->rec[recs[(i + 1) % n]];
	ZkWaitRow  *w = &g->rows[r->row];
	ZkWaitRow  *b = NULL;
	int			j,
				k;

	/* blocked, by the queue's own rule, by the node the mark names */
	for (j = w->first; j < w->first + w->count; j++)
		if (g->rows[j].czxid == h->blocker_czxid && row_blocks(g->rows, r->row, j))
			b = &g->rows[j];
	if (b == NULL)
		return false;
	if (i > 0)
		appendStringInfoChar(s, '\n');
	append_wait_line(s, &r->owner, w->what,
					 r->name ? r->name : "?", b);
	if (!h->via_pg)
		return b->session == next->session && node_stays(next, b->node);

	/*
	 * Through PostgreSQL locks of one cluster: the blocker a backend of it
	 * that waits in no zksync queue, the chain starting at it and ending at
	 * the next wait's process, there too.
	 */
	if (!b->is_backend || session_waits(g, b->session) ||
		!same_cluster(b->owner.cluster, next->owner.cluster) ||
		h->links[0].pid != b->owner.pid)
		return false;
	if (same_cluster(b->owner.cluster, zksync_cluster_id()))
	{
		/* our own cluster: what we saw ourselves, or nothing */
		Edge	   *e = NULL;

		for (k = 0; k < g->nedges; k++)
			if (g->edges[k].from == recs[i] && g->edges[k].to == recs[(i + 1) % n] &&
				g->edges[k].via_pg && g->edges[k].blocker == b - g->rows)
				e = &g->edges[k];
		if (e == NULL)
			return false;
		for (k = 0; k < e->nlinks; k++)
			append_link_line(s, zksync_my_cluster(), &e->links[k],
							 k + 1 < e->nlinks ? e->links[k + 1].pid : next->owner.pid);
		return true;
	}
	/* another cluster's: only the marker, a member there, has seen it */
	for (k = 0; k < n; k++)
		if (g->rec[recs[k]].session == m->owner &&
			same_cluster(g->rec[recs[k]].owner.cluster, b->owner.cluster))
			break;
	if (k == n)
		return false;
	for (k = 0; k < h->nlinks; k++)
		append_link_line(s, zksync_owner_cluster(&b->owner), &h->links[k],
						 k + 1 < h->nlinks ? h->links[k + 1].pid : next->owner.pid);
	return true;
}

/*
 * Does the mark left for us name our current wait and a cycle that still
 * stands in g (read just now; `me` our record)?  Returns the DETAIL,
 * written from g's records and rows, if so.  Else NULL, with *why the
 * reason to ignore the mark and delete it, or NULL if we cannot tell yet
 * (our own wait not read back).  Never throws for anything in the mark.
 */
char *
verify_mark(Graph *g, int me, const MarkRead *m, const char **why)
{
	FlatJson	f;
	const char *node;
	int64		victim,
				czxid;
	MarkHop    *hops;
	int		   *recs;
	int			n,
				i;
	StringInfoData s;

	if (!parse_mark(m, &f, &victim, &czxid, &node, why))
		return NULL;
	if (victim != zk_session_id() || watched_wait.czxid == 0 ||
		czxid != watched_wait.czxid || strcmp(node, watched_wait.node) != 0)
	{
		if (watched_wait.czxid != 0)
			*why = "it does not name the current wait of this session";
		return NULL;
	}
	if (me < 0 || g->rec[me].row < 0 ||
		g->rows[g->rec[me].row].czxid != watched_wait.czxid)
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
	if (!hop_records(g, hops, n, czxid, recs))
		return NULL;
	/* every hop still there, in our own reading of the queues */
	initStringInfo(&s);
	for (i = 0; i < n; i++)
		if (!hop_stands(g, m, hops, recs, n, i, &s))
			return NULL;
	*why = NULL;
	return s.data;
}

/* Delete the mark left for us, not waiting for the reply.  Never throws. */
void
delete_mark(void)
{
	char		path[ZKSYNC_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/%s", zksync_root, ZKSYNC_DEADLOCKS,
			 zksync_session_text(zk_session_id()));
	zk_req_free(zk_delete(path));
}

/*
 * Tell record `victim` of the cycle (edge indexes) through a mark: the
 * victim cannot see all of it.  One mark node per victim session, its data
 * replaced if the node is there; we delete our marks when our wait ends.
 */
void
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
	for (i = 0; i < watched_wait.nmarks; i++)
		known |= strcmp(watched_wait.marks[i], path) == 0;
	if (!known && watched_wait.nmarks == (int) lengthof(watched_wait.marks))
		return;
	if (put_ephemeral(path, data) == ZOK && !known)
		strlcpy(watched_wait.marks[watched_wait.nmarks++], path, ZKSYNC_PATH_MAX);
}

/* Our wait is over: the marks we left for others go.  Never throws. */
void
withdraw_marks(void)
{
	int			i;

	for (i = 0; i < watched_wait.nmarks; i++)
		zk_release_node(watched_wait.marks[i], 0, true);
}
