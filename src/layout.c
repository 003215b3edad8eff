/*-------------------------------------------------------------------------
 * layout.c
 *	  Where zksync's nodes live in ZooKeeper and how they are named: the one
 *	  home of the node-name grammar.
 *
 *	 {root}/locks/{name}/_c_{guid}-__WRIT__{seq}	a writer of a lock
 *	 {root}/locks/{name}/_c_{guid}-__READ__{seq}	a reader of a lock
 *	 {root}/barriers/{name}							a barrier (persistent)
 *	 {root}/dbarriers/{name}/_c_{guid}-__PART__{seq}	a double-barrier participant
 *	 {root}/dbarriers/{name}/ready
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
 * Nothing here talks to ZooKeeper; what can go wrong is only a name that
 * does not fit, which names.c refuses before a path is ever built.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "zksync.h"

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

/*
 * The string or number value of `key` in `data`, JSON of our own making
 * (owner data and what extends it, one level), palloc'd; NULL if absent.
 */
char *
zksync_json_field(const char *data, const char *key)
{
	char		pat[64];
	const char *p;
	StringInfoData out;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(data, pat);
	if (p == NULL)
		return NULL;
	p += strlen(pat);
	initStringInfo(&out);
	if (*p != '"')
	{
		while (*p && *p != ',' && *p != '}')
			appendStringInfoChar(&out, *p++);
		return out.data;
	}
	for (p++; *p && *p != '"'; p++)
	{
		if (*p != '\\')
		{
			appendStringInfoChar(&out, *p);
			continue;
		}
		p++;
		switch (*p)
		{
			case 'b':
				appendStringInfoChar(&out, '\b');
				break;
			case 'f':
				appendStringInfoChar(&out, '\f');
				break;
			case 'n':
				appendStringInfoChar(&out, '\n');
				break;
			case 'r':
				appendStringInfoChar(&out, '\r');
				break;
			case 't':
				appendStringInfoChar(&out, '\t');
				break;
			case 'u':
				{
					unsigned int c = 0;

					if (sscanf(p + 1, "%4x", &c) == 1 && c < 0x80)
						appendStringInfoChar(&out, (char) c);
					else
						appendStringInfoChar(&out, '?');
					p += 4;
					break;
				}
			case '\0':
				return out.data;
			default:
				appendStringInfoChar(&out, *p);
		}
	}
	return out.data;
}

/*
 * Who made a node, from its data: true if the data is a zksync backend's
 * owner data (else the node is another client's, and `o` is zeroed).
 */
bool
zksync_owner_parse(const char *data, ZkOwner *o)
{
	char	   *v;

	memset(o, 0, sizeof(*o));
	if (data == NULL || strncmp(data, "{\"host\":", 8) != 0)
		return false;
	o->host = zksync_json_field(data, "host");
	o->database = zksync_json_field(data, "database");
	o->application_name = zksync_json_field(data, "application_name");
	o->cluster = zksync_json_field(data, "cluster");
	o->backend_start = zksync_json_field(data, "backend_start");
	if ((v = zksync_json_field(data, "port")) != NULL)
		o->port = atoi(v);
	if ((v = zksync_json_field(data, "pid")) != NULL)
		o->pid = atoi(v);
	return o->pid > 0;
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
	uint8		b[16];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random GUID")));
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* variant 1 */
	snprintf(buf, len,
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
			 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/*
 * The data of every node we create: who made it, so an operator can see
 * which backend on which cluster holds a lock.  `extra` (may be NULL) is a
 * JSON member list appended inside the object, e.g. "\"participants\":3".
 */
char *
zksync_owner_data(const char *extra, int *len)
{
	static char *dbname = NULL;
	static char host[256];
	StringInfoData buf;

	if (dbname == NULL && IsTransactionState() && MyDatabaseId != InvalidOid)
	{
		char	   *d = get_database_name(MyDatabaseId);

		if (d)
			dbname = MemoryContextStrdup(TopMemoryContext, d);
	}
	if (host[0] == '\0' && gethostname(host, sizeof(host)) == 0)
		host[sizeof(host) - 1] = '\0';

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"host\":");
	escape_json(&buf, host);
	appendStringInfo(&buf, ",\"port\":%d,\"database\":", PostPortNumber);
	escape_json(&buf, dbname ? dbname : "");
	appendStringInfo(&buf, ",\"pid\":%d,\"application_name\":", MyProcPid);
	escape_json(&buf, application_name ? application_name : "");
	appendStringInfo(&buf, ",\"cluster\":\"%s\",\"backend_start\":",
					 zksync_cluster_id());
	escape_json(&buf, zksync_backend_start());
	if (extra)
		appendStringInfo(&buf, ",%s", extra);
	appendStringInfoChar(&buf, '}');
	*len = buf.len;
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
