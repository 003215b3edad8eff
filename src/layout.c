/*-------------------------------------------------------------------------
 * layout.c
 *	  Where zksync's nodes live in ZooKeeper and how they are named: the one
 *	  home of the node-name grammar.
 *
 *	 {root}/locks/{name}/_c_{guid}-__WRIT__{seq}	a writer of a lock
 *	 {root}/locks/{name}/_c_{guid}-__READ__{seq}	a reader of a lock
 *	 {root}/semaphores/{name}						a semaphore; its data
 *													records the lease count
 *	 {root}/semaphores/{name}/locks/_c_{guid}-lock-{seq}	its mutex queue
 *	 {root}/semaphores/{name}/leases/_c_{guid}-lease-{seq}	a lease
 *	 {root}/barriers/{name}							a barrier (persistent)
 *	 {root}/dbarriers/{name}/_c_{guid}-__PART__{seq}	a double-barrier participant
 *	 {root}/dbarriers/{name}/ready
 *	 {root}/waits/{session id}						a published wait
 *													(deadlock.c)
 *	 {root}/deadlocks/{session id}					a deadlock mark for that
 *													session (marks.c)
 *
 * The whole picture, and how other clients' data is read, is in
 * docs/foreign-data.md.
 *
 * The "_c_{guid}-" prefix is Apache Curator's "protected" name: it finds a
 * node again after a create whose reply was lost (nodes.c).  The lock tags
 * are Curator's InterProcessReadWriteLock's, so a Curator client on the
 * same path shares the lock.  With zksync.lock_layout = go they are
 * "write-" and "read-" instead (_c_{guid}-write-{seq}), the names the seed's
 * Go library gives its RWMutex nodes: that library takes its sequence
 * number from what follows the last "read-" or "write-" in a child's name
 * and a writer of it fails on any child that has neither, so only one
 * layout can serve it (zksync_lock_tag).  Other clients name their nodes
 * differently again (kazoo: "{uuid}__lock__{seq}", "__rlock__"; ZooKeeper's
 * own recipe and the Go library: "-read-"), so when ordering contenders we
 * count any child that ends in a 10-digit sequence number, treat those
 * three reader markers as readers and every other contender as a writer
 * (zksync_contenders).
 *
 * A double barrier's participants are every child of its directory but
 * "ready", whoever made them: the Go library names its participants after
 * an id its caller picks, Curator's DistributedDoubleBarrier after a UUID,
 * and both count every child but "ready", so mixed participants only meet
 * if zksync counts the same way (zksync_dbarrier_is_participant).  They
 * leave in the order of their names, compared byte by byte, as both
 * libraries sort them (zksync_sort_by_name).
 *
 * The data of every node we create says who made it (zksync_owner_data).
 * Reading data back is reading foreign bytes: any client may have written
 * a node's data or named a child, so the readers here stay within the
 * length ZooKeeper returned, range-check every number and hand out text
 * only as valid UTF-8 (zksync_json_field), or as valid text in the
 * database encoding for views and messages (zksync_foreign_text).
 * Nothing here talks to ZooKeeper; what can go wrong is a name that does
 * not fit, which names.c refuses before a path is ever built, and data
 * that is not ours, which reads as "not a zksync backend" or "no count".
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "nls.h"
#include "layout.h"
#include "settings.h"

static const char *my_host(void);

/* This cluster's system identifier, as owner data and views write it */
const char *
zksync_cluster_id(void)
{
	static char id[32];

	if (id[0] == '\0')
		snprintf(id, sizeof(id), UINT64_FORMAT, GetSystemIdentifier());
	return id;
}

/* A ZooKeeper session id as the views and messages show it: 0x..., hex */
char *
zksync_session_text(int64 session)
{
	return psprintf("0x%llx", (unsigned long long) session);
}

/* This backend's start time as text, as owner data writes it */
const char *
zksync_backend_start(void)
{
	static char start[MAXDATELEN + 1];

	if (start[0] == '\0')
		strlcpy(start, timestamptz_to_str(MyStartTimestamp), sizeof(start));
	return start;
}

/* ---------------------------------------------------------------------
 * Foreign bytes
 *
 * Owner data, wait records, marks, a semaphore's count and the names of
 * children may have been written by any client of the ensemble, so they
 * are read as untrusted bytes: every read stays within the length
 * ZooKeeper returned (the data may hold NUL bytes and need not end where a
 * string would), numbers are range-checked, and text reaches a view or a
 * message only through zksync_foreign_text().
 * ---------------------------------------------------------------------
 */

/* The conversion from UTF-8 to the database encoding, if it is neither */
static Oid
utf8_to_server_proc(void)
{
	static Oid	proc = InvalidOid;
	static bool looked = false;

	if (!looked && IsTransactionState())
	{
		proc = FindDefaultConversionProc(PG_UTF8, GetDatabaseEncoding());
		looked = true;
	}
	return proc;
}

/*
 * Append one valid UTF-8 character (clen bytes at p) in the database
 * encoding; a character that encoding cannot hold is written \uXXXX (or
 * \UXXXXXXXX), as is every non-ASCII one outside a transaction.
 */
static void
append_char_for_server(StringInfo out, const unsigned char *p, int clen)
{
	int			enc = GetDatabaseEncoding();
	Oid			proc;
	pg_wchar	c;

	if (enc == PG_UTF8 || enc == PG_SQL_ASCII || clen == 1)
	{
		appendBinaryStringInfo(out, (const char *) p, clen);
		return;
	}
	proc = utf8_to_server_proc();
	if (OidIsValid(proc))
	{
		unsigned char buf[MAX_CONVERSION_GROWTH * 4 + 1];

		if (pg_do_encoding_conversion_buf(proc, PG_UTF8, enc,
										  unconstify(unsigned char *, p), clen,
										  buf, sizeof(buf), true) == clen)
		{
			appendStringInfoString(out, (const char *) buf);
			return;
		}
	}
	c = utf8_to_unicode(p);
	if (c > 0xFFFF)
		appendStringInfo(out, "\\U%08X", (unsigned int) c);
	else
		appendStringInfo(out, "\\u%04X", (unsigned int) c);
}

/*
 * `len` bytes another client wrote as valid UTF-8 without NUL, palloc'd:
 * a byte that is not part of a valid UTF-8 character, and a NUL, becomes
 * \xNN.  With `for_server`, in the database encoding as well.
 */
static char *
foreign_bytes(const char *bytes, int len, bool for_server)
{
	const unsigned char *p = (const unsigned char *) bytes;
	const unsigned char *end = p + (bytes && len > 0 ? len : 0);
	StringInfoData out;

	initStringInfo(&out);
	while (p < end)
	{
		int			clen = (*p & 0x80) ? pg_utf_mblen(p) : 1;

		if (*p != '\0' && clen <= end - p && pg_utf8_islegal(p, clen))
		{
			if (for_server)
				append_char_for_server(&out, p, clen);
			else
				appendBinaryStringInfo(&out, (const char *) p, clen);
		}
		else
		{
			appendStringInfo(&out, "\\x%02x", *p);
			clen = 1;
		}
		p += clen;
	}
	return out.data;
}

/*
 * `len` bytes another client wrote (a child name, a field of owner data, a
 * record, a mark), as text valid in the database encoding, without NUL,
 * palloc'd: what the views return and what a message may quote.  A byte
 * that is not part of a valid UTF-8 character, and a NUL, is written
 * \xNN; a character the database encoding lacks, \uXXXX.  Never throws
 * (but for memory).
 */
char *
zksync_foreign_text(const char *bytes, int len)
{
	return foreign_bytes(bytes, len, true);
}

/* The same for a NUL-terminated string (a child name, a parsed field) */
char *
zksync_foreign_cstring(const char *s)
{
	return s ? foreign_bytes(s, strlen(s), true) : NULL;
}

/* JSON's insignificant white space */
static const char *
json_skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* The value of 4 hex digits at p (all before end), or -1 */
static int
json_hex4(const char *p, const char *end)
{
	int			v = 0,
				i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * Scan the JSON string that starts at *pp (at its opening quote), never
 * past `end`; decode it into `out` (if not NULL) as bytes, which may be
 * invalid UTF-8 or hold NUL (zksync_foreign_text cleans them).  Advances
 * *pp past the closing quote; false if the string does not end before
 * `end`.  A broken escape is kept as it was written.
 */
static bool
json_scan_string(const char **pp, const char *end, StringInfo out)
{
	const char *p = *pp + 1;

	while (p < end && *p != '"')
	{
		const char *esc = p;
		int			u,
					lo;
		unsigned char utf8[8];

		if (*p != '\\')
		{
			if (out)
				appendStringInfoChar(out, *p);
			p++;
			continue;
		}
		if (++p >= end)
			return false;
		switch (*p++)
		{
			case 'b':
				u = '\b';
				break;
			case 'f':
				u = '\f';
				break;
			case 'n':
				u = '\n';
				break;
			case 'r':
				u = '\r';
				break;
			case 't':
				u = '\t';
				break;
			case 'u':
				u = json_hex4(p, end);
				if (u < 0)
				{
					/* not four hex digits: keep the text, bytes as data */
					if (out)
						appendBinaryStringInfo(out, esc, p - esc);
					continue;
				}
				p += 4;
				if (u >= 0xD800 && u <= 0xDBFF && end - p >= 6 &&
					p[0] == '\\' && p[1] == 'u' &&
					(lo = json_hex4(p + 2, end)) >= 0xDC00 && lo <= 0xDFFF)
				{
					u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
					p += 6;
				}
				if (u >= 0xD800 && u <= 0xDFFF)
				{
					/* a lone surrogate is no character: keep its text */
					if (out)
						appendBinaryStringInfo(out, esc, p - esc);
					continue;
				}
				if (out)
				{
					unicode_to_utf8((pg_wchar) u, utf8);
					appendBinaryStringInfo(out, (const char *) utf8,
										   pg_utf_mblen(utf8));
				}
				continue;
			default:
				u = (unsigned char) p[-1];	/* \" \\ \/ and any other */
				break;
		}
		if (out)
			appendStringInfoChar(out, (char) u);
	}
	if (p >= end)
		return false;
	*pp = p + 1;
	return true;
}

/*
 * Skip one JSON value at *pp, never past `end`.  Nesting is counted, not
 * recursed into, so no depth of brackets can exhaust the stack.  False if
 * the value does not end before `end`.
 */
static bool
json_skip_value(const char **pp, const char *end)
{
	const char *p = *pp;
	int64		depth = 0;

	do
	{
		p = json_skip_space(p, end);
		if (p >= end)
			return false;
		if (*p == '"')
		{
			if (!json_scan_string(&p, end, NULL))
				return false;
		}
		else if (*p == '{' || *p == '[')
		{
			depth++;
			p++;
		}
		else if (*p == '}' || *p == ']')
		{
			if (depth == 0)
				return false;
			depth--;
			p++;
		}
		else if (*p == ',' || *p == ':')
		{
			if (depth == 0)
				return false;
			p++;
		}
		else
		{
			/* a number, a literal or junk: up to a delimiter (not NUL) */
			do
				p++;
			while (p < end && (*p == '\0' || !strchr(",:{}[]\" \t\n\r", *p)));
		}
	} while (depth > 0);
	*pp = p;
	return true;
}

/*
 * The value of member `key` of the JSON object in the `len` bytes at
 * `data`, palloc'd, or NULL if it has no such member (or the object is
 * broken before it).  A string comes decoded, a number or literal as
 * written, each as valid UTF-8 without NUL (invalid bytes and NUL
 * written \xNN; zksync_foreign_text() makes it text for a view or a
 * message); an object or array counts as absent.  The
 * data may be anything: it is never read past `len`, and the first member
 * of that name counts.
 */
char *
zksync_json_field(const char *data, int len, const char *key)
{
	const char *p = data;
	const char *end = data + (data && len > 0 ? len : 0);
	size_t		keylen = strlen(key);
	StringInfoData buf;

	if (data == NULL)
		return NULL;
	p = json_skip_space(p, end);
	if (p >= end || *p != '{')
		return NULL;
	p++;
	initStringInfo(&buf);
	for (;;)
	{
		bool		match;

		p = json_skip_space(p, end);
		if (p >= end || *p != '"')
			break;
		resetStringInfo(&buf);
		if (!json_scan_string(&p, end, &buf))
			break;
		match = (size_t) buf.len == keylen && memcmp(buf.data, key, keylen) == 0;
		p = json_skip_space(p, end);
		if (p >= end || *p != ':')
			break;
		p = json_skip_space(p + 1, end);
		if (p >= end)
			break;
		if (match)
		{
			const char *start = p;

			resetStringInfo(&buf);
			if (*p == '"')
			{
				if (!json_scan_string(&p, end, &buf))
					break;
				return foreign_bytes(buf.data, buf.len, false);
			}
			if (*p == '{' || *p == '[' || !json_skip_value(&p, end) ||
				p == start)
				break;
			return foreign_bytes(start, p - start, false);
		}
		if (!json_skip_value(&p, end))
			break;
		p = json_skip_space(p, end);
		if (p >= end || *p != ',')
			break;
		p++;
	}
	pfree(buf.data);
	return NULL;
}

/*
 * Member `key` of the JSON object in `data` as an integer in [min, max]:
 * true and *out set if it is one (digits only, an optional minus), false
 * if it is absent, not an integer or out of range.
 */
bool
zksync_json_int(const char *data, int len, const char *key,
				int64 min, int64 max, int64 *out)
{
	char	   *v = zksync_json_field(data, len, key);
	char	   *p = v;
	bool		neg = false;
	int64		n = 0;

	if (v == NULL)
		return false;
	if (*p == '-')
	{
		neg = true;
		p++;
	}
	if (*p == '\0')
		return false;
	for (; *p; p++)
	{
		if (*p < '0' || *p > '9')
			return false;
		/* stop well before overflow: anything this long is out of range */
		if (n > (PG_INT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (*p - '0');
	}
	if (neg)
		n = -n;
	pfree(v);
	if (n < min || n > max)
		return false;
	*out = n;
	return true;
}

/* Longest host name a message shows (gethostname's, at most 255) */
#define HOST_LABEL_MAX	255

/*
 * Is `s` a label a message may show: 1..max bytes of printable ASCII, no
 * backslash?  That is what cluster_name allows (PostgreSQL turns anything
 * else into '?'; a name with a backslash is not shown), and what a host
 * name is made of.  Read from JSON, invalid bytes and NUL come as \xNN
 * (zksync_json_field): the backslash keeps them out too.
 */
static bool
label_ok(const char *s, size_t max)
{
	size_t		n = 0;

	for (; s[n]; n++)
		if (n >= max || s[n] < 0x20 || s[n] > 0x7e || s[n] == '\\')
			return false;
	return n > 0;
}

/*
 * Who made a node, from its `len` bytes of data: true if the data is a
 * zksync backend's owner data (a pid and a port in range); else the node
 * is another client's, and `o` is zeroed.  The text fields come as
 * zksync_json_field() gives them (valid UTF-8); `cluster` only if it is a
 * system identifier (digits), `cluster_name` only if a message may show it
 * (label_ok).
 */
bool
zksync_owner_parse(const char *data, int len, ZkOwner *o)
{
	int64		pid,
				port;
	char	   *c;

	memset(o, 0, sizeof(*o));
	if (data == NULL || len < 8 || strncmp(data, "{\"host\":", 8) != 0)
		return false;
	if (!zksync_json_int(data, len, "pid", 1, PG_INT32_MAX, &pid) ||
		!zksync_json_int(data, len, "port", 1, 65535, &port))
		return false;
	o->pid = (int) pid;
	o->port = (int) port;
	o->host = zksync_json_field(data, len, "host");
	o->database = zksync_json_field(data, len, "database");
	o->application_name = zksync_json_field(data, len, "application_name");
	o->backend_start = zksync_json_field(data, len, "backend_start");
	c = zksync_json_field(data, len, "cluster");
	if (c && c[0] != '\0' && strlen(c) <= 20 && strspn(c, "0123456789") == strlen(c))
		o->cluster = c;
	/* absent from owner data written before 1.1 */
	c = zksync_json_field(data, len, "cluster_name");
	if (c && label_ok(c, NAMEDATALEN - 1))
		o->cluster_name = c;
	return true;
}

/*
 * How a message names a cluster: its cluster_name, or host:port when that
 * is empty, quoted, beside its system identifier: "east" (7716...).  Either
 * part may be missing (an id alone, as owner data without a usable name or
 * host; a name alone, without an id); "?" if both are.  The name and the
 * host come from owner data anyone may have written: only printable ASCII
 * of a bounded length is used (label_ok), quoted with '"' escaped, so no
 * byte of them can forge a line or a quote of a message; anything else is
 * left out.
 */
static char *
cluster_label(const char *name, const char *host, int port, const char *id)
{
	StringInfoData s;
	char	   *label = NULL;

	if (name && label_ok(name, NAMEDATALEN - 1))
		label = pstrdup(name);
	else if (host && label_ok(host, HOST_LABEL_MAX) && port > 0 && port <= 65535)
		label = psprintf("%s:%d", host, port);
	initStringInfo(&s);
	if (label)
	{
		const char *p;

		appendStringInfoChar(&s, '"');
		for (p = label; *p; p++)
		{
			if (*p == '"')
				appendStringInfoChar(&s, '\\');
			appendStringInfoChar(&s, *p);
		}
		appendStringInfoChar(&s, '"');
	}
	if (id && label)
		appendStringInfo(&s, " (%s)", id);
	else if (id)
		appendStringInfoString(&s, id);
	else if (!label)
		appendStringInfoChar(&s, '?');
	return s.data;
}

/* The cluster of a node's owner (parsed owner data), as messages name it */
char *
zksync_owner_cluster(const ZkOwner *o)
{
	return cluster_label(o->cluster_name, o->host, o->port, o->cluster);
}

/* This cluster, as messages name it (as another reads our owner data) */
char *
zksync_my_cluster(void)
{
	return cluster_label(cluster_name, my_host(), PostPortNumber,
						 zksync_cluster_id());
}

/*
 * The owner data of a node (its `len` bytes of data) as a view shows it:
 * the text if zksync wrote it (it starts as zksync_owner_data() writes
 * it), made valid in the database encoding; "" for another client's data.
 */
char *
zksync_owner_text(const char *data, int len)
{
	if (data == NULL || len < 8 || strncmp(data, "{\"host\":", 8) != 0)
		return pstrdup("");
	return zksync_foreign_text(data, len);
}

/*
 * The count a semaphore's node records ({"max_leases":N}, `len` bytes of
 * data), or 0 if it records none, or anything but a count in
 * 1..PG_INT32_MAX: unknown.
 */
int
zksync_count_parse(const char *data, int len)
{
	int64		n;

	if (!zksync_json_int(data, len, "max_leases", 1, PG_INT32_MAX, &n))
		return 0;
	return (int) n;
}

/* {root}/{kind}/{name}, kind one of ZKSYNC_LOCKS, ZKSYNC_BARRIERS, ... */
char *
zksync_recipe_dir(const char *kind, const char *name)
{
	return psprintf("%s/%s/%s", zksync_root, kind, name);
}

/*
 * The directories right under {root} that zksync works in.  Under
 * zksync.auth they are persistent nodes with zksync's ACL, made and checked
 * at a session's first call (tree.c).
 */
const char *const zksync_fixed_dirs[ZKSYNC_NFIXED_DIRS] = {
	ZKSYNC_LOCKS, ZKSYNC_SEMAPHORES, ZKSYNC_BARRIERS, ZKSYNC_DBARRIERS,
	ZKSYNC_WAITS, ZKSYNC_DEADLOCKS
};

/*
 * Is `path` {root}, a node above it, or one of the fixed directories under
 * it?  Those are persistent under zksync.auth, never containers.
 */
bool
zksync_path_is_fixed(const char *path)
{
	size_t		rootlen = strlen(zksync_root);
	size_t		len = strlen(path);
	int			i;

	/* {root} or above it: "/a" for root "/a/b" */
	if (len <= rootlen && strncmp(zksync_root, path, len) == 0 &&
		(zksync_root[len] == '\0' || zksync_root[len] == '/'))
		return true;
	if (len <= rootlen + 1 || strncmp(path, zksync_root, rootlen) != 0 ||
		path[rootlen] != '/')
		return false;
	for (i = 0; i < ZKSYNC_NFIXED_DIRS; i++)
		if (strcmp(path + rootlen + 1, zksync_fixed_dirs[i]) == 0)
			return true;
	return false;
}

/* {dir}/_c_{guid}-{tag}: the name a protected create asks for */
void
zksync_protected_prefix(char *buf, size_t len, const char *dir,
						const char *guid, const char *tag)
{
	snprintf(buf, len, "%s/_c_%s-%s", dir, guid, tag);
}

/* The sequence number a child ends with, or -1 if it has none. */
int64
zksync_node_sequence(const char *child)
{
	size_t		len = strlen(child);
	int64		seq = 0;
	size_t		i;

	if (len < 10)
		return -1;
	for (i = len - 10; i < len; i++)
	{
		if (child[i] < '0' || child[i] > '9')
			return -1;
		seq = seq * 10 + (child[i] - '0');
	}
	return seq;
}

void
zksync_make_guid(char *buf, size_t len)
{
	static pg_prng_state state;
	static bool seeded = false;
	static const char hex[] = "0123456789abcdef";
	uint8		b[16];
	char		out[37];
	int			i,
				o = 0;

	/*
	 * A random (version 4) GUID from a generator of this backend's own,
	 * seeded once from the strong source: a GUID only has to differ from
	 * every other client's, and the strong source costs a system call and
	 * OpenSSL's locking on every lock cycle.
	 */
	if (!seeded)
	{
		uint64		seed[2];

		if (!pg_strong_random(seed, sizeof(seed)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random GUID")));
		state.s0 = seed[0];
		state.s1 = seed[1] | 1; /* the generator's state must not be 0 */
		seeded = true;
	}
	for (i = 0; i < 16; i += 8)
	{
		uint64		r = pg_prng_uint64(&state);

		memcpy(b + i, &r, 8);
	}
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* variant 1 */
	for (i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
	strlcpy(buf, out, len);
}

/* This machine's host name, as owner data writes it ("" if unknown) */
static const char *
my_host(void)
{
	static char host[256];

	if (host[0] == '\0' && gethostname(host, sizeof(host)) == 0)
		host[sizeof(host) - 1] = '\0';
	return host;
}

/*
 * The data of every node we create: who made it, so an operator can see
 * which backend on which cluster holds a lock.  `extra` (may be NULL) is a
 * JSON member list appended inside the object, e.g. "\"participants\":3".
 * Without `extra` it is built once and kept until application_name
 * changes (a lock cycle should not format it each time); the caller must
 * not free or change it.
 */
char *
zksync_owner_data(const char *extra, int *len)
{
	static char *dbname = NULL;
	static char *kept = NULL;	/* without extra, for kept_app */
	static int	kept_len = 0;
	static char *kept_app = NULL;
	const char *app = application_name ? application_name : "";
	StringInfoData buf;

	if (extra == NULL && kept != NULL && strcmp(kept_app, app) == 0)
	{
		*len = kept_len;
		return kept;
	}

	if (dbname == NULL && IsTransactionState() && MyDatabaseId != InvalidOid)
	{
		char	   *d = get_database_name(MyDatabaseId);

		if (d)
			dbname = MemoryContextStrdup(TopMemoryContext, d);
	}

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"host\":");
	escape_json(&buf, my_host());
	appendStringInfo(&buf, ",\"port\":%d,\"database\":", PostPortNumber);
	escape_json(&buf, dbname ? dbname : "");
	appendStringInfo(&buf, ",\"pid\":%d,\"application_name\":", MyProcPid);
	escape_json(&buf, app);
	appendStringInfo(&buf, ",\"cluster\":\"%s\",\"backend_start\":",
					 zksync_cluster_id());
	escape_json(&buf, zksync_backend_start());
	appendStringInfoString(&buf, ",\"cluster_name\":");
	escape_json(&buf, cluster_name ? cluster_name : "");
	if (extra)
		appendStringInfo(&buf, ",%s", extra);
	appendStringInfoChar(&buf, '}');
	*len = buf.len;
	if (extra == NULL && dbname != NULL)
	{
		/* keep it (dbname known: a backend's first call may come before) */
		if (kept)
		{
			pfree(kept);
			pfree(kept_app);
		}
		kept = MemoryContextStrdup(TopMemoryContext, buf.data);
		kept_app = MemoryContextStrdup(TopMemoryContext, app);
		kept_len = buf.len;
	}
	return buf.data;
}

/* Is this contender (a child name, any client's) a reader? */
bool
zksync_node_is_reader(const char *child)
{
	return strstr(child, ZKSYNC_TAG_READ) != NULL ||
		strstr(child, "__rlock__") != NULL ||
		strstr(child, "-read-") != NULL;
}

static int
sequence_cmp(const void *a, const void *b)
{
	int64		x = zksync_node_sequence(*(char *const *) a);
	int64		y = zksync_node_sequence(*(char *const *) b);

	return (x > y) - (x < y);
}

/* Sort child names by their sequence numbers. */
void
zksync_sort_by_sequence(char **children, int n)
{
	qsort(children, n, sizeof(char *), sequence_cmp);
}

/*
 * The tag of a new lock node of `mode` ('w' write, else read) in the
 * layout zksync.lock_layout names.
 */
const char *
zksync_lock_tag(char mode)
{
	if (zksync_lock_layout != NULL && strcmp(zksync_lock_layout, "go") == 0)
		return mode == 'w' ? ZKSYNC_TAG_GO_WRITE : ZKSYNC_TAG_GO_READ;
	return mode == 'w' ? ZKSYNC_TAG_WRITE : ZKSYNC_TAG_READ;
}

/* Is this child of a double barrier's directory (any client's) a participant? */
bool
zksync_dbarrier_is_participant(const char *child)
{
	return strcmp(child, ZKSYNC_READY_NODE) != 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sort child names byte by byte (strcmp compares unsigned bytes). */
void
zksync_sort_by_name(char **children, int n)
{
	qsort(children, n, sizeof(char *), name_cmp);
}

static int
contender_cmp(const void *a, const void *b)
{
	int64		x = ((const ZkContender *) a)->seq;
	int64		y = ((const ZkContender *) b)->seq;

	return (x > y) - (x < y);
}

/*
 * The contenders among `children` (those that end in a sequence number),
 * in sequence order, as a palloc'd array; returns how many.  The names
 * point into `children`.
 */
int
zksync_contenders(char **children, int nchildren, ZkContender **out)
{
	ZkContender *c = palloc(sizeof(ZkContender) * (nchildren + 1));
	int			n = 0,
				i;

	for (i = 0; i < nchildren; i++)
	{
		int64		seq = zksync_node_sequence(children[i]);

		if (seq < 0)
			continue;
		c[n].name = children[i];
		c[n].seq = seq;
		c[n].reader = zksync_node_is_reader(children[i]);
		n++;
	}
	qsort(c, n, sizeof(ZkContender), contender_cmp);
	*out = c;
	return n;
}

/*
 * The path of `child` under `dir`, palloc'd.  A child another client made
 * may have a name of any length: it is never cut to fit a buffer, where it
 * could turn into the path of some other node.
 */
char *
zksync_child_path(const char *dir, const char *child)
{
	return psprintf("%s/%s", dir, child);
}
