/*-------------------------------------------------------------------------
 * nodes.c
 *	  ZooKeeper node operations shared by the recipes (locks, semaphores,
 *	  barriers): they ride out connection loss.
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
 * reaches the client.  A node we know of is released; a create whose
 * outcome is unknown is handed to the connection layer, whose threads
 * delete the node once the reply comes, or find it by its GUID after a
 * reconnect.  It waits for that at most ZKSYNC_ABANDON_WAIT_MS and only
 * while connected, so a cancel is answered within a second even while the
 * ensemble is unreachable; the rest goes on in the background, and if the
 * session ends first, the node goes with it.  Nothing is left behind to
 * block others.
 *
 * Parents are container nodes (ZOO_CONTAINER): the server removes them once
 * they are empty, so lock and barrier directories do not pile up.  Under
 * zksync.auth, {root} and its fixed directories are persistent (tree.c).
 *
 * What can go wrong: a connection lost mid-call is waited out on the same
 * session (zk_call_retrying) or, past zksync.connect_timeout or with the
 * session gone, an ERROR; a create whose directory keeps being reaped is
 * tried a bounded number of times.  docs/recipes.md, "Protected creates
 * and abandonment", tells why.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "nls.h"
#include "session.h"
#include "releases.h"
#include "held.h"
#include "nodes.h"

/*
 * Create `dir` and its parents as containers; under zksync.auth, {root},
 * what is above it and the fixed directories under it are persistent
 * instead (tree.c says why).  Existing ones are fine.  Returns ZOK or the
 * first other error.
 */
int
zk_ensure_parents(const char *dir)
{
	ZkReq	   *reqs[16];
	int			n = 0;
	int			rc = ZOK;
	int			i;
	const char *p;
	bool		auth = zk_session_auth()[0] != '\0';

	for (p = strchr(dir + 1, '/');; p = strchr(p + 1, '/'))
	{
		char	   *prefix = p ? pnstrdup(dir, p - dir) : pstrdup(dir);

		if (n == lengthof(reqs))
			break;
		reqs[n++] = zk_create(prefix, "", 0,
							  auth && zksync_path_is_fixed(prefix) ?
							  ZOO_PERSISTENT : ZOO_CONTAINER);
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
		zk_req_free(reqs[i]);
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

/* Send one call; a synced listing is a sync with the listing behind it. */
static ZkReq *
send_op(ZkOp op, const char *path, const char *data, int len, int flags)
{
	switch (op)
	{
		case ZKOP_EXISTS:
			return zk_exists(path, false);
		case ZKOP_EXISTS_WATCH:
			return zk_exists(path, true);
		case ZKOP_GET:
			return zk_get(path, false);
		case ZKOP_GET_WATCH:
			return zk_get(path, true);
		case ZKOP_CHILDREN:
			return zk_get_children(path);
		case ZKOP_CHILDREN_WATCH:
			return zk_get_children_watch(path);
		case ZKOP_SYNCED_CHILDREN:
			{
				ZkReq	   *s = zk_sync(path);
				ZkReq	   *g = zk_get_children(path);

				/*
				 * the server answers in order: the sync's fate is the
				 * listing's
				 */
				zk_req_free(s);
				return g;
			}
		case ZKOP_CREATE:
			return zk_create(path, data, len, flags);
		case ZKOP_DELETE:
			return zk_delete(path);
	}
	return NULL;				/* not reached */
}

/* The name of an operation for zk_report_error() */
static const char *
op_name(ZkOp op)
{
	switch (op)
	{
		case ZKOP_CHILDREN:
		case ZKOP_CHILDREN_WATCH:
		case ZKOP_SYNCED_CHILDREN:
			return "get_children";
		case ZKOP_CREATE:
			return "create";
		case ZKOP_DELETE:
			return "delete";
		default:
			return "get";
	}
}

/*
 * Do one ZooKeeper call, riding out connection loss: send it, wait, and
 * while it fails on a connection error, wait for the client to reconnect
 * (same session) and send it again.  Returns the done request, whose rc is
 * anything but a connection error; the caller releases it.  `*resent`
 * (may be NULL) says whether it was sent more than once: a create or
 * delete whose first reply was lost may have happened then.  Throws if no
 * reconnect comes within zksync.connect_timeout or the session is gone,
 * and on interrupts.  `data`, `len` and `flags` are for ZKOP_CREATE.
 */
ZkReq *
zk_call_retrying(ZkOp op, const char *path, const char *data, int len,
				 int flags, bool *resent)
{
	if (resent)
		*resent = false;
	for (;;)
	{
		ZkReq	   *r = send_op(op, path, data, len, flags);
		int			rc = zk_call(r);

		if (!zk_is_connection_error(rc))
			return r;
		zk_req_free(r);
		zk_reconnect_or_error(op_name(op), path);
		if (resent)
			*resent = true;
	}
}

/*
 * Children of `dir`, riding out connection loss.  Returns the done request
 * (rc ZOK or ZNONODE); other errors throw.
 */
ZkReq *
zk_children_retrying(const char *dir)
{
	ZkReq	   *g = zk_call_retrying(ZKOP_CHILDREN, dir, NULL, 0, 0, NULL);

	if (zk_req_rc(g) != ZOK && zk_req_rc(g) != ZNONODE)
	{
		int			rc = zk_req_rc(g);

		zk_req_free(g);
		zk_report_error(rc, "get_children", dir);
	}
	return g;
}

/*
 * After a create's reply was lost: find the children of `dir` with our
 * GUID.  A sync goes first, so that a create of ours that the leader has
 * applied but our server has not yet seen is not missed (else we would
 * make a second node and wait behind our own orphan).  Every child with
 * our GUID is ours: the lowest that this session owns becomes pn->node
 * (with pn->czxid); any other is released.  Returns true if one was found.
 */
static bool
find_own_node(ZkProtected *pn)
{
	char	  **mine;
	char	   *prefix;
	int			n = 0,
				i;
	bool		found = false;
	ZkReq	   *g;

	g = zk_call_retrying(ZKOP_SYNCED_CHILDREN, pn->dir, NULL, 0, 0, NULL);
	if (zk_req_rc(g) != ZOK && zk_req_rc(g) != ZNONODE)
	{
		int			rc = zk_req_rc(g);

		zk_req_free(g);
		zk_report_error(rc, "get_children", pn->dir);
	}
	mine = palloc(sizeof(char *) * (zk_req_nchildren(g) + 1));
	prefix = psprintf("_c_%s-", pn->guid);
	for (i = 0; zk_req_rc(g) == ZOK && i < zk_req_nchildren(g); i++)
		if (strncmp(zk_req_children(g)[i], prefix, strlen(prefix)) == 0 &&
			zksync_node_sequence(zk_req_children(g)[i]) >= 0)
			mine[n++] = pstrdup(zk_req_children(g)[i]);
	zk_req_free(g);
	zksync_sort_by_sequence(mine, n);

	for (i = 0; i < n; i++)
	{
		char	   *path = zksync_child_path(pn->dir, mine[i]);

		if (!found && strlen(path) < sizeof(pn->node))
		{
			ZkReq	   *e = zk_exists(path, false);

			if (zk_call(e) == ZOK && zk_req_ephemeral_owner(e) == zk_session_id())
			{
				strlcpy(pn->node, path, sizeof(pn->node));
				pn->czxid = zk_req_czxid(e);
				found = true;
			}
			zk_req_free(e);
			if (found)
				continue;
		}
		/* a second node of ours (an earlier attempt): it must not stay */
		zk_release_node(path, 0, false);
	}
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
	zksync_protected_prefix(prefix, sizeof(prefix), dir, pn->guid, suffix);
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
		zk_sends_begin();		/* the create and its listing travel together */
		pn->create = zk_create(prefix, data, datalen, ZOO_EPHEMERAL_SEQUENTIAL);
		if (children)
		{
			/*
			 * The server answers in order, so once the listing is answered
			 * the create is too: one wake-up for both.
			 */
			g = zk_get_children_watched(dir);
			zk_sends_end();
			zk_wait(g, 0, false);
		}
		else
			zk_sends_end();
		rc = zk_call(pn->create);
		if (rc == ZOK)
		{
			strlcpy(pn->node, zk_req_path(pn->create), sizeof(pn->node));
			pn->czxid = zk_req_czxid(pn->create);
		}
		zk_req_free(pn->create);
		pn->create = NULL;
		if (rc == ZOK)
		{
			if (children)
				*children = g;
			break;
		}
		zk_req_free(g);
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

/* Creates per multi: a multi is one request, which the server caps in size. */
#define CREATES_PER_MULTI	500

/*
 * One round of create_each(): wait for the creates sent (cr[i]), keep the
 * nodes made (each with a listing sent behind), and for a create that met
 * its directory missing, send that directory's create in its place.
 * Returns how many met their directory missing; *lost is set if a reply
 * was lost to a connection error.  May throw on other errors.
 */
static int
collect_creates(ZkProtected *pns, int k, ZkReq **cr, char **prefixes,
				char **dirs, ZkReq **children, bool *lost)
{
	int			missing = 0;
	int			i;

	zk_sends_begin();			/* listings go out together between waits */
	for (i = 0; i < k; i++)
	{
		int			rc;

		if (cr[i] == NULL)
			continue;
		rc = zk_call(cr[i]);
		if (rc == ZOK)
		{
			strlcpy(pns[i].node, zk_req_path(cr[i]), ZKSYNC_PATH_MAX);
			children[i] = zk_get_children_watched(dirs[i]);
		}
		else if (rc == ZNONODE)
		{
			missing++;
			zk_req_free(cr[i]);
			cr[i] = zk_create(dirs[i], "", 0, ZOO_CONTAINER);	/* again */
			continue;
		}
		else if (zk_is_connection_error(rc))
			*lost = true;
		else
			zk_report_error(rc, "create", prefixes[i]);
		zk_req_free(cr[i]);
		cr[i] = NULL;
	}
	zk_sends_end();
	return missing;
}

/*
 * Wait for the directories create_each() made again (or found made by
 * others); one whose parent went too has its parents made again.
 */
static void
collect_remade_dirs(int k, ZkReq **cr, char **dirs)
{
	int			i;

	for (i = 0; i < k; i++)
		if (cr[i])
		{
			int			rc = zk_call(cr[i]);

			zk_req_free(cr[i]);
			cr[i] = NULL;
			if (rc == ZNONODE)
				zk_ensure_parents(dirs[i]);
		}
}

/*
 * Create the nodes of pns (k of them, made from `prefixes` under `dirs`)
 * one by one, all sent at once, each with a listing of its directory sent
 * behind it (children[i]).  A create that meets its directory missing
 * makes the directory again and is sent again; a lost reply is settled by
 * the GUID.  A directory made anew is not reaped before it has had a
 * child, so every round makes progress.  May throw.
 */
static void
create_each(ZkProtected *pns, int k, char **prefixes, char **dirs,
			const char *data, int datalen, ZkReq **children)
{
	ZkReq	  **cr = palloc0(sizeof(ZkReq *) * k);
	int			rounds = 0;

	for (;;)
	{
		int			missing;
		bool		lost = false;
		int			i;

		if (++rounds > 20)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg_plural("could not create the node of %d lock after %d rounds",
								   "could not create the nodes of %d locks after %d rounds",
								   k, k, rounds - 1)));
		zk_sends_begin();
		for (i = 0; i < k; i++)
			if (pns[i].node[0] == '\0')
				cr[i] = zk_create(prefixes[i], data, datalen,
								  ZOO_EPHEMERAL_SEQUENTIAL);
		zk_sends_end();
		missing = collect_creates(pns, k, cr, prefixes, dirs, children, &lost);
		collect_remade_dirs(k, cr, dirs);
		if (lost)
		{
			/* did the creates happen?  The GUIDs tell. */
			zk_reconnect_or_error("create", dirs[0]);
			for (i = 0; i < k; i++)
				if (pns[i].node[0] == '\0' && find_own_node(&pns[i]))
					children[i] = zk_get_children_watched(dirs[i]);
		}
		else if (missing == 0)
			return;
	}
}

/*
 * Make those of the k directories `dirs` that do not exist (containers):
 * the existence checks all at once, then the creates all at once.  Never
 * throws for what ZooKeeper answers; the caller's next try tells.
 */
static void
make_missing_dirs(char **dirs, int k)
{
	ZkReq	  **r = palloc(sizeof(ZkReq *) * k);
	bool		parent_gone = false;
	int			i;

	zk_sends_begin();
	for (i = 0; i < k; i++)
		r[i] = zk_exists(dirs[i], false);
	for (i = 0; i < k; i++)
	{
		int			rc = zk_call(r[i]);

		zk_req_free(r[i]);
		r[i] = rc == ZNONODE ? zk_create(dirs[i], "", 0, ZOO_CONTAINER) : NULL;
	}
	zk_sends_end();
	for (i = 0; i < k; i++)
		if (r[i])
		{
			parent_gone |= zk_call(r[i]) == ZNONODE;
			zk_req_free(r[i]);
		}
	pfree(r);
	if (parent_gone)
	{
		/*
		 * their parent went too (the root's first use): make it; the next try
		 * makes them
		 */
		char	   *parent = pnstrdup(dirs[0], strrchr(dirs[0], '/') - dirs[0]);

		zk_ensure_parents(parent);
		pfree(parent);
	}
}

/*
 * After a multi's reply was lost: all or none of its k creates happened,
 * and the first directory tells which.  True if they did (every pns[i]
 * found by its GUID); false if none did.  ERROR if only some are found.
 */
static bool
settle_lost_multi(ZkProtected *pns, int k, char **dirs)
{
	int			i;

	if (!find_own_node(&pns[0]))
		return false;
	for (i = 1; i < k; i++)
		if (!find_own_node(&pns[i]))
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not find the node of \"%s\" made by an interrupted multi",
							dirs[i])));
	return true;
}

/*
 * Create the k nodes of one chunk (pns, from `prefixes` under `dirs`) in
 * one multi, with the listings pipelined behind (children[i], or NULL if
 * the chunk had to be made again).  Missing directories are made and the
 * multi sent again, at most three times; then the nodes are made one by
 * one (create_each).  May throw.
 */
static void
create_chunk(ZkProtected *pns, int k, char **prefixes, char **dirs,
			 const char *data, int datalen, ZkReq **children)
{
	int			dir_tries = 0;
	int			attempts = 0;
	int			i;

	for (;;)
	{
		ZkReq	   *m;
		int			rc;

		if (++attempts > 10)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg_plural("could not create the node of %d lock after %d attempts",
								   "could not create the nodes of %d locks after %d attempts",
								   k, k, attempts - 1)));
		zk_sends_begin();		/* the multis and listings go out in full
								 * segments */
		m = zk_create_many(k, prefixes, data, datalen);
		for (i = 0; i < k; i++)
			children[i] = zk_get_children_watched(dirs[i]);
		zk_sends_end();
		rc = zk_call(m);
		if (rc == ZOK)
		{
			for (i = 0; i < k; i++)
				strlcpy(pns[i].node, zk_req_children(m)[i], ZKSYNC_PATH_MAX);
			zk_req_free(m);
			return;
		}
		zk_req_free(m);
		for (i = 0; i < k; i++)
		{
			zk_req_free(children[i]);
			children[i] = NULL;
		}
		if (rc == ZNONODE && dir_tries < 3)
		{
			/*
			 * Directories are missing (names never used, or reaped): find
			 * which, make them, all at once, and try the multi again.  (The C
			 * client cannot read the reply of a multi that makes containers,
			 * so they are made apart.)
			 */
			dir_tries++;
			make_missing_dirs(dirs, k);
		}
		else if (rc == ZNONODE)
		{
			/*
			 * A directory is missing: containers go once emptied, and the
			 * server reaps them one by one, so a multi may keep meeting
			 * another.  Make these nodes one by one instead, each directory
			 * again where needed.
			 */
			create_each(pns, k, prefixes, dirs, data, datalen, children);
			return;
		}
		else if (zk_is_connection_error(rc))
		{
			zk_reconnect_or_error("create", prefixes[0]);
			if (settle_lost_multi(pns, k, dirs))
				return;
		}
		else
			zk_report_error(rc, "create", prefixes[0]);
	}
}

/*
 * Create one node {dirs[i]}/_c_{guid}-{suffix}{seq} in each of `n`
 * directories, under one GUID, in as few requests as can be: multis of up
 * to CREATES_PER_MULTI creates, each all or none, with a listing of each
 * directory pipelined behind (returned in children[i], not yet waited
 * for, or NULL if that chunk had to be made again).  A lost reply is
 * settled by the GUID, as for one create.  pns must stay valid until each
 * node is released or abandoned: the caller's PG_CATCH uses them.
 * May throw.
 */
void
zk_protected_create_many(ZkProtected *pns, int n, char **dirs,
						 const char *suffix, const char *data, int datalen,
						 ZkReq **children)
{
	char		guid[40];
	int			start;
	int			i;

	zksync_make_guid(guid, sizeof(guid));
	memset(pns, 0, sizeof(ZkProtected) * n);
	for (i = 0; i < n; i++)
	{
		strlcpy(pns[i].guid, guid, sizeof(pns[i].guid));
		strlcpy(pns[i].dir, dirs[i], sizeof(pns[i].dir));
		pns[i].active = true;
		children[i] = NULL;
	}
	for (start = 0; start < n; start += CREATES_PER_MULTI)
	{
		int			k = Min(n - start, CREATES_PER_MULTI);
		char	  **prefixes = palloc(sizeof(char *) * k);

		for (i = 0; i < k; i++)
		{
			prefixes[i] = palloc(ZKSYNC_PATH_MAX);
			zksync_protected_prefix(prefixes[i], ZKSYNC_PATH_MAX,
									dirs[start + i], guid, suffix);
		}
		create_chunk(&pns[start], k, prefixes, &dirs[start], data, datalen,
					 &children[start]);
	}
}

/*
 * Remove the node of a protected create whose purpose ended by an ERROR
 * (cancel, statement_timeout, lock_timeout, a lost connection).  If the
 * node is known, it is released; if the create's outcome is unknown, the
 * connection layer finds the node by its GUID and deletes it.  Either way
 * it waits at most `wait_ms` (ZKSYNC_ABANDON_WAIT_MS), and only while connected;
 * what is left goes on in the background, and goes with the session if
 * the session ends first.  Never throws; call it with interrupts held.
 */
void
zk_protected_abandon(ZkProtected *pn, int wait_ms)
{
	if (!pn->active)
		return;
	pn->active = false;
	if (pn->node[0] != '\0')
	{
		zk_req_free(pn->create);
		zk_release_node(pn->node, wait_ms, true);
	}
	else
		zk_abandon_create(pn->create, pn->dir, pn->guid, wait_ms);
	pn->create = NULL;
}
