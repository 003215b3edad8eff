/*-------------------------------------------------------------------------
 * nodes.c
 *	  ZooKeeper node operations shared by the recipes (locks, barriers).
 *
 * Protected create.  A recipe node is created EPHEMERAL_SEQUENTIAL under a
 * name that carries a fresh GUID: {dir}/_c_{guid}-{suffix}{seq}, the
 * "protected" names of Apache Curator.  If the connection drops while the
 * create is in flight we cannot know whether the node was made; after the
 * client reconnects (same session) we list the children, look for the
 * GUID, and accept the node only if its ephemeralOwner is our session
 * (ZooKeeper recipes, "Recoverable Errors and the GUID").
 *
 * Abandonment.  When a wait is interrupted (cancel, statement_timeout) the
 * recipe calls zk_protected_abandon() from PG_CATCH, before the error
 * reaches the client.  It finds the node (from the create's reply if it
 * arrives within zksync.connect_timeout, else by the GUID) and deletes it.
 * If it cannot tell whether a node of ours exists, it ends the session:
 * the server then drops every ephemeral node of ours, so nothing is left
 * behind to block others.
 *
 * Parents are container nodes (ZOO_CONTAINER): the server removes them once
 * they are empty, so lock and barrier directories do not pile up.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "zksync.h"

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
	char		host[256];
	StringInfoData buf;

	if (dbname == NULL && IsTransactionState() && MyDatabaseId != InvalidOid)
	{
		char	   *d = get_database_name(MyDatabaseId);

		if (d)
			dbname = MemoryContextStrdup(TopMemoryContext, d);
	}
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"host\":");
	escape_json(&buf, host);
	appendStringInfo(&buf, ",\"port\":%d,\"database\":", PostPortNumber);
	escape_json(&buf, dbname ? dbname : "");
	appendStringInfo(&buf, ",\"pid\":%d,\"application_name\":", MyProcPid);
	escape_json(&buf, application_name ? application_name : "");
	if (extra)
		appendStringInfo(&buf, ",%s", extra);
	appendStringInfoChar(&buf, '}');
	*len = buf.len;
	return buf.data;
}

/*
 * Create `dir` and its parents as containers.  Existing ones are fine.
 * Returns ZOK or the first other error.
 */
int
zk_ensure_parents(const char *dir)
{
	ZkReq	   *reqs[16];
	int			n = 0;
	int			rc = ZOK;
	int			i;
	const char *p;

	for (p = strchr(dir + 1, '/');; p = strchr(p + 1, '/'))
	{
		char	   *prefix = p ? pnstrdup(dir, p - dir) : pstrdup(dir);

		if (n == lengthof(reqs))
			break;
		reqs[n++] = zk_create(prefix, "", 0, ZOO_CONTAINER);
		pfree(prefix);
		if (p == NULL)
			break;
	}
	for (i = 0; i < n; i++)
	{
		int			r = zk_call(reqs[i]);

		if (r != ZOK && r != ZNODEEXISTS && rc == ZOK)
			rc = r;
	}
	for (i = 0; i < n; i++)
		zk_release(reqs[i]);
	return rc;
}

/*
 * After a connection error: wait for the client to reconnect (same
 * session).  Throws if it cannot within zksync.connect_timeout or the
 * session is gone.
 */
void
zk_reconnect_or_error(const char *doing, const char *path)
{
	int			rc = zk_await_reconnect(false);

	if (rc != ZOK)
		zk_report_error(rc, doing, path);
}

/*
 * Children of `dir`, retrying connection errors on the same session.
 * Returns the done request (rc ZOK or ZNONODE); other errors throw.
 */
ZkReq *
zk_children_retrying(const char *dir)
{
	for (;;)
	{
		ZkReq	   *g = zk_get_children(dir);
		int			rc = zk_call(g);

		if (rc == ZOK || rc == ZNONODE)
			return g;
		zk_release(g);
		if (zk_is_connection_error(rc))
			zk_reconnect_or_error("get_children", dir);
		else
			zk_report_error(rc, "get_children", dir);
	}
}

/*
 * Find the child of `dir` with our GUID and check that it belongs to this
 * session.  Fills pn->node and pn->czxid; returns true if found.
 */
static bool
find_own_node(ZkProtected *pn)
{
	ZkReq	   *g = zk_children_retrying(pn->dir);
	int			i;
	bool		found = false;

	for (i = 0; g->rc == ZOK && i < g->nchildren && !found; i++)
	{
		ZkReq	   *e;
		char		path[ZKSYNC_PATH_MAX];

		if (strstr(g->children[i], pn->guid) == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", pn->dir, g->children[i]);
		e = zk_exists(path, false);
		if (zk_call(e) == ZOK && e->stat.ephemeralOwner == zk_session_id())
		{
			strlcpy(pn->node, path, sizeof(pn->node));
			pn->czxid = e->stat.czxid;
			found = true;
		}
		zk_release(e);
	}
	zk_release(g);
	return found;
}

/*
 * Create our node {dir}/_c_{guid}-{suffix}{seq}.  If `children` is not
 * NULL, a listing of `dir` is pipelined behind the create (the server
 * answers in order, so it includes our node) and returned there, not yet
 * waited for; it is NULL if the create had to be retried.
 *
 * pn must stay valid until the node is deleted or zk_protected_abandon()
 * has run: the caller's PG_CATCH uses it.  May throw.
 */
void
zk_protected_create(ZkProtected *pn, const char *dir, const char *suffix,
					const char *data, int datalen, ZkReq **children)
{
	char		prefix[ZKSYNC_PATH_MAX];
	int			attempts = 0;

	memset(pn, 0, sizeof(*pn));
	zksync_make_guid(pn->guid, sizeof(pn->guid));
	strlcpy(pn->dir, dir, sizeof(pn->dir));
	pn->active = true;
	snprintf(prefix, sizeof(prefix), "%s/_c_%s-%s", dir, pn->guid, suffix);
	if (children)
		*children = NULL;

	while (pn->node[0] == '\0')
	{
		int			rc;
		ZkReq	   *g = NULL;

		if (++attempts > 10)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not create a node under \"%s\" after %d attempts",
							dir, attempts - 1)));
		pn->create = zk_create(prefix, data, datalen, ZOO_EPHEMERAL_SEQUENTIAL);
		if (children)
			g = zk_get_children(dir);
		rc = zk_call(pn->create);
		if (rc == ZOK)
		{
			strlcpy(pn->node, pn->create->path, sizeof(pn->node));
			pn->czxid = pn->create->stat.czxid;
		}
		zk_release(pn->create);
		pn->create = NULL;
		if (rc == ZOK)
		{
			if (children)
				*children = g;
			break;
		}
		zk_release(g);
		if (rc == ZNONODE)
		{
			rc = zk_ensure_parents(dir);
			if (zk_is_connection_error(rc))
				zk_reconnect_or_error("create", dir);
			else if (rc != ZOK)
				zk_report_error(rc, "create", dir);
		}
		else if (zk_is_connection_error(rc))
		{
			/* did the create happen?  The GUID tells. */
			zk_reconnect_or_error("create", prefix);
			find_own_node(pn);
		}
		else
			zk_report_error(rc, "create", prefix);
	}
}

/*
 * Delete one of our nodes.  Connection errors are retried on the same
 * session.  With `nothrow` (abort and commit callbacks, PG_CATCH), gives up
 * after zksync.connect_timeout and returns false; the caller must then end
 * the session so that the node cannot outlive its purpose.
 */
bool
zk_delete_node(const char *path, bool nothrow)
{
	TimestampTz deadline = 0;

	if (nothrow)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   zksync_connect_timeout);
	for (;;)
	{
		ZkReq	   *d;
		int			rc;

		if (!zk_session_usable())
			return true;		/* the session and its nodes are gone */
		d = zk_delete(path);
		if (zk_wait(d, 0, deadline, nothrow) == ZKW_TIMEOUT)
		{
			zk_release(d);
			return false;
		}
		rc = d->rc;
		zk_release(d);
		if (rc == ZOK || rc == ZNONODE || rc == ZSESSIONEXPIRED)
			return true;
		if (zk_is_connection_error(rc))
		{
			rc = zk_await_reconnect(nothrow);
			if (rc == ZSESSIONEXPIRED)
				return true;
			if (rc == ZOK)
				continue;
			if (nothrow)
				return false;
			zk_report_error(rc, "delete", path);
		}
		if (nothrow)
		{
			ereport(WARNING,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not delete ZooKeeper node \"%s\": %s",
							path, zerror(rc))));
			return false;
		}
		zk_report_error(rc, "delete", path);
	}
}

/*
 * Remove the node of a protected create whose purpose ended by an ERROR.
 * Never throws; call it with interrupts held.
 */
void
zk_protected_abandon(ZkProtected *pn)
{
	TimestampTz deadline;

	if (!pn->active)
		return;
	pn->active = false;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   zksync_connect_timeout);

	/* a create still in flight: wait a little for its reply */
	if (pn->node[0] == '\0' && pn->create)
	{
		if (zk_wait(pn->create, 0, deadline, true) == ZKW_DONE &&
			pn->create->rc == ZOK && pn->create->path)
			strlcpy(pn->node, pn->create->path, sizeof(pn->node));
	}
	zk_release(pn->create);
	pn->create = NULL;

	if (pn->node[0] == '\0' && zk_session_usable())
	{
		/* reply unknown: look for our GUID */
		ZkReq	   *g = zk_get_children(pn->dir);
		ZkWaitResult r = zk_wait(g, 0, deadline, true);

		if (r == ZKW_DONE && g->rc == ZOK)
		{
			int			i;

			for (i = 0; i < g->nchildren; i++)
				if (strstr(g->children[i], pn->guid))
					snprintf(pn->node, sizeof(pn->node), "%s/%s",
							 pn->dir, g->children[i]);
		}
		else if (r != ZKW_DONE || g->rc != ZNONODE)
		{
			/* we cannot tell whether a node of ours exists: end the session */
			zk_release(g);
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not check ZooKeeper for an abandoned node under \"%s\"; closing the session",
							pn->dir)));
			zk_reset_session();
			return;
		}
		zk_release(g);
	}
	if (pn->node[0] != '\0' && !zk_delete_node(pn->node, true))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not delete abandoned node \"%s\"; closing the session",
						pn->node)));
		zk_reset_session();
	}
}
