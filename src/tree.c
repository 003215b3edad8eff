/*-------------------------------------------------------------------------
 * tree.c
 *	  The tree under zksync.root, and who may change it (zksync.auth).
 *
 * Without zksync.auth every node zksync makes is open to all, so Curator
 * and kazoo clients share the locks as they are, and nothing here runs.
 *
 * With zksync.auth, every node zksync makes carries its ACL: all rights for
 * its digest identity, READ for anyone (session.c).  That protects the
 * tree only if the directories above our nodes are protected too: whoever
 * may CREATE in a directory can put forged contenders, wait records or
 * deadlock marks there; whoever may DELETE in it can remove our nodes
 * (ZooKeeper checks DELETE on the parent); whoever may ADMIN it can change
 * its ACL to allow either.  So:
 *
 *	 - {root} and the fixed directories under it (zksync_fixed_dirs: locks,
 *	   semaphores, barriers, dbarriers, waits, deadlocks) are persistent
 *	   nodes with our ACL, made at a session's first call if missing.  Not
 *	   containers: the server reaps an emptied container, and anyone allowed
 *	   to create in its parent could then make it again with an ACL of their
 *	   choosing.  The fixed directories also keep {root} from ever being
 *	   empty, so DELETE on the parent of {root} (the world has it on "/")
 *	   cannot remove it either.
 *	 - The per-name directories below stay containers with our ACL: only
 *	   our identity can create in the fixed directories, so only it makes
 *	   them again.
 *	 - At a session's first call (again after a new session is opened, and
 *	   after zksync.root changed) the ACLs of {root} and of the fixed
 *	   directories are read, in one pipelined round trip.  The call fails
 *	   with SQLSTATE 42501, naming the node and the zkCli.sh commands that
 *	   fix it, if any identity but ours may CREATE, DELETE or ADMIN there,
 *	   or if ours may not READ, CREATE and DELETE there.  WRITE (setting
 *	   data) is allowed to others on these nodes: zksync reads no data from
 *	   them, and every node whose data it does read (semaphore counts,
 *	   barriers, wait records, marks) is one it made, with its ACL, below.
 *
 * A session that passed is remembered (its id and the root), so the lock
 * cycle asks nothing more.
 *
 * Left open on purpose: an ACL changed later in the session is seen by the
 * next session only (and only our identity may change one that passed);
 * per-name directories made before the fixed directories were protected
 * keep their own ACLs (the README says how to replace them).
 * docs/recipes.md, "The tree under zksync.auth".
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/sha1.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"

#include "nls.h"
#include "settings.h"
#include "session.h"
#include "tree.h"
#include "nodes.h"
#include "tree.h"

#define TREE_NODES		(1 + ZKSYNC_NFIXED_DIRS)

/* zksync needs these on {root} and the fixed directories */
#define NEEDED_PERMS	(ZOO_PERM_READ | ZOO_PERM_CREATE | ZOO_PERM_DELETE)
/* no other identity may have any of these there */
#define GUARDED_PERMS	(ZOO_PERM_CREATE | ZOO_PERM_DELETE | ZOO_PERM_ADMIN)

/* the session and root that passed the check (TopMemoryContext) */
static int64 checked_session = 0;
static char *checked_root = NULL;

/*
 * The digest identity of `auth` (user:password) as ZooKeeper stores it in
 * an ACL: user:base64(sha1(user:password)).  palloc'd.
 */
static char *
digest_id(const char *auth)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA1);
	uint8		hash[SHA1_DIGEST_LENGTH];
	char		b64[64];
	const char *colon = strchr(auth, ':');
	int			len;
	char	   *id;

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) auth, strlen(auth)) < 0 ||
		pg_cryptohash_final(ctx, hash, sizeof(hash)) < 0)
	{
		const char *why = ctx ? pg_cryptohash_error(ctx) : "out of memory";

		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the digest identity of zksync.auth"),
				 errdetail_internal("%s", why)));
	}
	pg_cryptohash_free(ctx);
	len = pg_b64_encode((const char *) hash, sizeof(hash), b64, sizeof(b64));
	explicit_bzero(hash, sizeof(hash));
	if (len < 0 || colon == NULL)
		elog(ERROR, "could not encode the digest identity of zksync.auth");
	id = psprintf("%.*s:%.*s", (int) (colon - auth), auth, len, b64);
	explicit_bzero(b64, sizeof(b64));
	return id;
}

/* ZOO_PERM_* bits as zkCli.sh writes them ("cdrwa") */
static char *
perms_text(int perms)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (perms & ZOO_PERM_CREATE)
		appendStringInfoChar(&buf, 'c');
	if (perms & ZOO_PERM_DELETE)
		appendStringInfoChar(&buf, 'd');
	if (perms & ZOO_PERM_READ)
		appendStringInfoChar(&buf, 'r');
	if (perms & ZOO_PERM_WRITE)
		appendStringInfoChar(&buf, 'w');
	if (perms & ZOO_PERM_ADMIN)
		appendStringInfoChar(&buf, 'a');
	if (buf.len == 0)
		appendStringInfoString(&buf, "none");
	return buf.data;
}

/*
 * Append text another client wrote (an ACL's scheme or id) so that it can
 * go into a message: printable ASCII as is, any other byte as \xNN, at
 * most 64 bytes of it.
 */
static void
append_foreign(StringInfo buf, const char *s)
{
	int			i;

	for (i = 0; s[i] && i < 64; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			appendStringInfoChar(buf, c);
		else
			appendStringInfo(buf, "\\x%02x", c);
	}
	if (s[i])
		appendStringInfoString(buf, "...");
}

/* One ACL entry as zkCli.sh's getAcl shows it: scheme:id:perms */
static void
append_entry(StringInfo buf, const ZkAcl *e)
{
	if (buf->len > 0)
		appendStringInfoString(buf, ", ");
	append_foreign(buf, e->scheme);
	appendStringInfoChar(buf, ':');
	append_foreign(buf, e->id);
	appendStringInfo(buf, ":%s", perms_text(e->perms));
}

/* The user of zksync.auth (user:password), palloc'd */
static char *
auth_user(const char *auth)
{
	return pnstrdup(auth, strchr(auth, ':') - auth);
}

/*
 * Check the ACL of `path`, one of the nodes zksync works in (see the file
 * header).  Throws 42501 if it is not ours.  The 42501 ERRORs share their
 * hint (written out at each, for gettext): the commands that give the node
 * (and what is under it) zksync's ACL.  zkCli.sh's "auth" scheme stands for
 * the identity added with addauth, so the hint never shows the digest,
 * which ZooKeeper itself hides from everyone without ADMIN.
 */
static void
check_acl(const char *path, const ZkAcl *acl, int n, const char *ours,
		  const char *auth)
{
	StringInfoData others;
	StringInfoData all;
	int			mine = 0;
	int			i;

	initStringInfo(&others);
	initStringInfo(&all);
	for (i = 0; i < n; i++)
	{
		bool		is_ours = (strcmp(acl[i].scheme, "digest") == 0 &&
							   strcmp(acl[i].id, ours) == 0);
		bool		is_world = (strcmp(acl[i].scheme, "world") == 0 &&
								strcmp(acl[i].id, "anyone") == 0);

		append_entry(&all, &acl[i]);
		if (is_ours || is_world)
			mine |= acl[i].perms;
		if (!is_ours && (acl[i].perms & GUARDED_PERMS))
			append_entry(&others, &acl[i]);
	}
	if (others.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("ZooKeeper node \"%s\" may be changed by clients other than zksync",
						path),
				 errdetail("Its ACL grants %s; with zksync.auth set, no identity but zksync's (digest user \"%s\") may create, delete or administer there.",
						   others.data, auth_user(auth)),
				 errhint("Give it zksync's ACL: in zkCli.sh, run \"addauth digest %s:PASSWORD\" with the password of zksync.auth, then \"setAcl -R %s auth::cdrwa,world:anyone:r\".",
						 auth_user(auth), path)));
	if ((mine & NEEDED_PERMS) != NEEDED_PERMS)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("zksync may not create and delete nodes under ZooKeeper node \"%s\"",
						path),
				 errdetail("Its ACL is %s, which gives zksync's identity (digest user \"%s\") the rights \"%s\"; zksync needs read, create and delete (\"cdr\").",
						   all.len > 0 ? all.data : "empty",
						   auth_user(auth), perms_text(mine)),
				 errhint("Give it zksync's ACL: in zkCli.sh, run \"addauth digest %s:PASSWORD\" with the password of zksync.auth, then \"setAcl -R %s auth::cdrwa,world:anyone:r\".",
						 auth_user(auth), path)));
}

/*
 * Make the missing ones of `paths` ({root} first, then the fixed
 * directories): persistent, with our ACL (zk_ensure_parents makes {root}
 * and what is above it persistent under zksync.auth).  A node someone
 * else made meanwhile is fine: the caller reads every ACL again.
 */
static void
make_missing(char **paths, const bool *missing)
{
	ZkReq	   *r[TREE_NODES];
	int			i;

	if (missing[0])
	{
		int			rc = zk_ensure_parents(paths[0]);

		if (zk_is_connection_error(rc))
			return;				/* the caller's next read waits it out */
		if (rc != ZOK)
			zk_report_error(rc, "create", paths[0]);
	}
	for (i = 1; i < TREE_NODES; i++)
		r[i] = missing[i] ? zk_create(paths[i], "", 0, ZOO_PERSISTENT) : NULL;
	for (i = 1; i < TREE_NODES; i++)
	{
		int			rc;

		if (r[i] == NULL)
			continue;
		rc = zk_call(r[i]);
		zk_req_free(r[i]);
		r[i] = NULL;
		if (rc != ZOK && rc != ZNODEEXISTS && !zk_is_connection_error(rc))
		{
			int			bad = i;

			for (i++; i < TREE_NODES; i++)
				zk_req_free(r[i]);
			zk_report_error(rc, "create", paths[bad]);
		}
	}
}

/*
 * Read the ACLs of {root} and the fixed directories, making the missing
 * ones, and throw 42501 unless all are zksync's.  A few round trips on a
 * fresh root, one otherwise.
 */
static void
check_tree(const char *auth)
{
	char	   *paths[TREE_NODES];
	char	   *ours = digest_id(auth);
	int			round;
	int			i;

	paths[0] = pstrdup(zksync_root);
	for (i = 0; i < ZKSYNC_NFIXED_DIRS; i++)
		paths[i + 1] = psprintf("%s/%s", zksync_root, zksync_fixed_dirs[i]);

	for (round = 0;; round++)
	{
		ZkReq	   *r[TREE_NODES];
		int			rc[TREE_NODES];
		ZkAcl	   *acl[TREE_NODES];
		int			nacl[TREE_NODES];
		bool		missing[TREE_NODES];
		bool		any_missing = false;
		int			lost = -1;

		if (round > 5)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not make the directories of zksync.root \"%s\" after %d attempts",
							paths[0], round)));
		for (i = 0; i < TREE_NODES; i++)
			r[i] = zk_get_acl(paths[i]);
		for (i = 0; i < TREE_NODES; i++)
		{
			int			j;

			rc[i] = zk_call(r[i]);
			missing[i] = rc[i] == ZNONODE;
			any_missing |= missing[i];
			if (zk_is_connection_error(rc[i]) && lost < 0)
				lost = i;
			nacl[i] = rc[i] == ZOK ? zk_req_nacl(r[i]) : 0;
			acl[i] = palloc(sizeof(ZkAcl) * Max(nacl[i], 1));
			for (j = 0; j < nacl[i]; j++)
			{
				acl[i][j].perms = zk_req_acl(r[i])[j].perms;
				acl[i][j].scheme = pstrdup(zk_req_acl(r[i])[j].scheme);
				acl[i][j].id = pstrdup(zk_req_acl(r[i])[j].id);
			}
		}
		for (i = 0; i < TREE_NODES; i++)
			zk_req_free(r[i]);
		if (lost >= 0)
		{
			zk_reconnect_or_error("get", paths[lost]);
			continue;
		}
		/* in order, {root} first: the first node that is wrong is named */
		for (i = 0; i < TREE_NODES; i++)
		{
			if (rc[i] == ZOK)
				check_acl(paths[i], acl[i], nacl[i], ours, auth);
			else if (rc[i] == ZNOAUTH)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("could not read the ACL of ZooKeeper node \"%s\"",
								paths[i]),
						 errdetail("Its ACL gives zksync's identity (digest user \"%s\") neither read nor administer rights.",
								   auth_user(auth)),
						 errhint("Give it zksync's ACL: in zkCli.sh, run \"addauth digest %s:PASSWORD\" with the password of zksync.auth, then \"setAcl -R %s auth::cdrwa,world:anyone:r\".",
								 auth_user(auth), paths[i])));
			else if (rc[i] != ZNONODE)
				zk_report_error(rc[i], "get", paths[i]);
		}
		if (!any_missing)
			break;
		make_missing(paths, missing);
	}
	explicit_bzero(ours, strlen(ours));
	pfree(ours);
}

/*
 * The session check (registered with session.c, run by every
 * zk_connect() on a connected session): under zksync.auth, check the tree
 * once per session and root.  Costs nothing once passed.  May throw.
 */
static void
tree_session_check(void)
{
	const char *auth = zk_session_auth();
	int64		session = zk_session_id();

	if (auth[0] == '\0')
		return;
	if (session == checked_session && checked_root != NULL &&
		strcmp(checked_root, zksync_root) == 0)
		return;
	check_tree(auth);
	if (checked_root)
		pfree(checked_root);
	checked_root = MemoryContextStrdup(TopMemoryContext, zksync_root);
	checked_session = session;
}

/* _PG_init: hook the check into every connect */
void
zksync_tree_init(void)
{
	zk_register_session_check(tree_session_check);
}
