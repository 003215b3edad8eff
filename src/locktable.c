/*-------------------------------------------------------------------------
 * locktable.c
 *	  This backend's table of read-write lock holds: their counts by scope
 *	  and savepoint level, lost holds, the commit check, zksync_locks().
 *
 * A hold is one (lock, mode) this backend holds or waits for (lock_int.h).
 * It counts session-level and transaction-level acquisitions apart, as
 * advisory locks do; lock.c deletes its node when both counts reach zero.
 * Transaction-level acquisitions are counted per subtransaction nesting
 * level, for ROLLBACK TO SAVEPOINT and RELEASE: stacking costs constant
 * memory per (lock, mode, level), so a million calls in one transaction
 * cost what one does.
 *
 * What can go wrong.  The session expires, or another client deletes a
 * node we hold: the hold becomes "lost" (hold_forget_session, lost_nodes,
 * registered with the session layer), is never reported as held again,
 * and a transaction that relied on it cannot commit (holds_check_commit,
 * which asks the server: docs/design.md, "The commit check asks the
 * server").  Nothing here throws outside the commit check and the
 * explicit reports of a lost hold; the scope callbacks never throw.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "nls.h"
#include "session.h"
#include "releases.h"
#include "held.h"
#include "nodes.h"
#include "lock.h"
#include "lock_int.h"
#include "xact.h"
#include "shared.h"

HTAB	   *holds = NULL;
int			n_xact_holds = 0;

/*
 * The key's directory is a string in a buffer sized for the longest path:
 * hash, compare and copy its characters only, not the whole buffer (a
 * lock cycle looks its hold up four to six times).
 */
static uint32
hold_key_hash(const void *key, Size keysize)
{
	const HoldKey *k = key;

	return hash_combine(hash_bytes((const unsigned char *) k->dir, strlen(k->dir)),
						(uint32) (unsigned char) k->mode);
}

static int
hold_key_match(const void *key1, const void *key2, Size keysize)
{
	const HoldKey *a = key1;
	const HoldKey *b = key2;

	return a->mode != b->mode || strcmp(a->dir, b->dir) != 0;
}

static void *
hold_key_copy(void *dest, const void *src, Size keysize)
{
	HoldKey    *d = dest;
	const HoldKey *s = src;

	d->mode = s->mode;
	strlcpy(d->dir, s->dir, sizeof(d->dir));
	return dest;
}

static void
init_holds(void)
{
	HASHCTL		ctl;

	if (holds)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(HoldKey);
	ctl.entrysize = sizeof(Hold);
	ctl.hash = hold_key_hash;
	ctl.match = hold_key_match;
	ctl.keycopy = hold_key_copy;
	ctl.hcxt = TopMemoryContext;
	holds = hash_create("zksync holds", 64, &ctl,
						HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
						HASH_KEYCOPY | HASH_CONTEXT);
}

static void
make_key(HoldKey *key, const char *dir, char mode)
{
	strlcpy(key->dir, dir, sizeof(key->dir));
	key->mode = mode;
}

Hold *
hold_find(const char *dir, char mode)
{
	HoldKey		key;

	init_holds();
	make_key(&key, dir, mode);
	return (Hold *) hash_search(holds, &key, HASH_FIND, NULL);
}

void
hold_remove(Hold *hold)
{
	zksync_local_remove(hold->local);
	zk_held_drop(hold->watch);
	hold->watch = NULL;
	if (hold->xact_count > 0)
		n_xact_holds--;
	if (hold->levels)
		pfree(hold->levels);
	hash_search(holds, &hold->key, HASH_REMOVE, NULL);
}

/*
 * Count one more acquisition.  A transaction-level one is counted at the
 * current savepoint level; growing the level array is the only thing that
 * can fail here, and it fails before anything changes.
 */
void
hold_add_count(Hold *hold, bool xact)
{
	int			level;

	if (!xact)
	{
		hold->session_count++;
		return;
	}
	level = GetCurrentTransactionNestLevel();
	if (hold->nlevels > 0 && hold->levels[hold->nlevels - 1].level == level)
		hold->levels[hold->nlevels - 1].count++;
	else
	{
		if (hold->nlevels == hold->maxlevels)
		{
			hold->levels = repalloc(hold->levels,
									sizeof(XactLevel) * hold->maxlevels * 2);
			hold->maxlevels *= 2;
		}
		hold->levels[hold->nlevels].level = level;
		hold->levels[hold->nlevels].count = 1;
		hold->nlevels++;
	}
	if (hold->xact_count++ == 0)
		n_xact_holds++;
}

void
hold_report_lost(char mode, const char *name, bool node_deleted)
{
	if (node_deleted && mode == 'w')
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("zksync write lock \"%s\" was lost", name),
				 errdetail("Another client deleted its node while this backend held the lock; another client may have taken the lock."),
				 errhint("Release it with zksync_unlock_all() or by ending the transaction.")));
	if (node_deleted)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("zksync read lock \"%s\" was lost", name),
				 errdetail("Another client deleted its node while this backend held the lock; another client may have taken the lock."),
				 errhint("Release it with zksync_unlock_all() or by ending the transaction.")));
	if (mode == 'w')
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("zksync write lock \"%s\" was lost", name),
				 errdetail("Its ZooKeeper session expired, or could not be confirmed alive and was closed; another client may have taken the lock."),
				 errhint("Release it with zksync_unlock_all() or by ending the transaction.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("zksync read lock \"%s\" was lost", name),
			 errdetail("Its ZooKeeper session expired, or could not be confirmed alive and was closed; another client may have taken the lock."),
			 errhint("Release it with zksync_unlock_all() or by ending the transaction.")));
}

void
hold_error_if_lost(Hold *hold)
{
	if (hold->state == HOLD_LOST)
		hold_report_lost(hold->key.mode, hold->name, hold->node_deleted);
}

/* A new hold of `dir` in `mode`, waiting; nothing counted yet. */
Hold *
hold_new(const char *dir, char mode, const char *name)
{
	XactLevel  *levels = MemoryContextAlloc(TopMemoryContext,
											sizeof(XactLevel) * 4);
	HoldKey		key;
	Hold	   *hold;
	bool		found;

	init_holds();
	make_key(&key, dir, mode);
	hold = (Hold *) hash_search(holds, &key, HASH_ENTER, &found);
	memset(((char *) hold) + sizeof(HoldKey), 0, sizeof(Hold) - sizeof(HoldKey));
	strlcpy(hold->name, name, sizeof(hold->name));
	hold->state = HOLD_WAITING;
	hold->local = zksync_local_add(ZKLOCAL_LOCK, name, MODE_NAME(mode),
								   ZKLOCAL_WAITING);
	hold->levels = levels;
	hold->maxlevels = 4;
	return hold;
}

/* The hold's node is granted: it is held from now on. */
void
hold_set_held(Hold *hold)
{
	hold->state = HOLD_HELD;
	zksync_local_set(hold->local, ZKLOCAL_HELD, hold->token);
}

/*
 * The hold's node is being released and the hold goes: its entry stays,
 * as releasing, until the release is applied (zksync_local_released()).
 * Never throws.
 */
void
hold_keep_releasing(Hold *hold)
{
	zksync_local_releasing(hold->local);
	hold->local = ZKLOCAL_NONE;
}

/*
 * Take the counts of savepoint level `nest_level` and deeper off a hold's
 * level array (they are its last entries) and return their sum; the
 * caller adjusts xact_count.
 */
int
hold_pop_levels(Hold *hold, int nest_level)
{
	int			n = 0;

	while (hold->nlevels > 0 &&
		   hold->levels[hold->nlevels - 1].level >= nest_level)
		n += hold->levels[--hold->nlevels].count;
	return n;
}

/* RELEASE SAVEPOINT: the subtransaction's holds pass to its parent. */
void
holds_pass_up(int nest_level)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;

	if (n_xact_holds == 0)
		return;
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		int			moved = hold_pop_levels(hold, nest_level);

		if (moved == 0)
			continue;
		/* merge into the parent's level, which is now the last, if any */
		if (hold->nlevels > 0 &&
			hold->levels[hold->nlevels - 1].level == nest_level - 1)
			hold->levels[hold->nlevels - 1].count += moved;
		else
		{
			/* the array had room for the level(s) just taken off it */
			hold->levels[hold->nlevels].level = nest_level - 1;
			hold->levels[hold->nlevels].count = moved;
			hold->nlevels++;
		}
	}
}

bool
holds_have_xact(void)
{
	return n_xact_holds > 0;
}

/*
 * The nodes the hold table keeps on the session (a lost hold counts until
 * it is dropped; it is rare and short-lived, and the count stays O(1)).
 */
static int
hold_nodes(void)
{
	return holds ? (int) hash_get_num_entries(holds) : 0;
}

/* A held hold is lost: never reported as held again. */
static void
mark_lost(Hold *hold, bool node_deleted)
{
	hold->state = HOLD_LOST;
	hold->node_deleted = node_deleted;
	zksync_local_set(hold->local, ZKLOCAL_LOST, 0);
	zksync_stat_count(ZKSTAT_LOST, 1);
	hold->lost_lxid = zksync_current_lxid();
	zk_held_drop(hold->watch);
	hold->watch = NULL;
}

/*
 * The session expired or was closed: every node is gone.  Holds become
 * lost (never reported as held again); waits in progress are dropped.
 */
static void
hold_forget_session(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;

	if (holds == NULL)
		return;
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		if (hold->state == HOLD_WAITING)
			hold_remove(hold);
		else if (hold->state == HOLD_HELD)
			mark_lost(hold, false);
	}
}

/* Another client deleted the node of a held hold: say so (WARNING). */
static void
warn_node_deleted(Hold *hold)
{
	if (hold->key.mode == 'w')
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("zksync write lock \"%s\" is lost", hold->name),
				 errdetail("Another client deleted node \"%s\" while this backend held the lock; another client may hold it now.",
						   hold->node),
				 errhint("A transaction that relied on the lock cannot commit. Release it with zksync_unlock_all() or by ending the transaction.")));
	else
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("zksync read lock \"%s\" is lost", hold->name),
				 errdetail("Another client deleted node \"%s\" while this backend held the lock; another client may hold it now.",
						   hold->node),
				 errhint("A transaction that relied on the lock cannot commit. Release it with zksync_unlock_all() or by ending the transaction.")));
}

/*
 * Some held nodes were found gone: each hold whose node another client
 * deleted is lost, exactly as after an expiry, and the backend hears of it
 * now.  Never throws (WARNINGs only).
 */
static void
lost_nodes(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;

	if (holds == NULL)
		return;
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
		if (hold->state == HOLD_HELD && zk_held_gone(hold->watch))
		{
			warn_node_deleted(hold);
			mark_lost(hold, true);
		}
}

/* Refuse COMMIT: `bad` is a lost hold the transaction relied on. */
static void
refuse_commit(Hold *bad)
{
	if (bad->node_deleted && bad->key.mode == 'w')
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("cannot commit: zksync write lock \"%s\" was lost during the transaction",
						bad->name),
				 errdetail("Another client deleted the lock's node while this backend held it; another client may have taken the lock."),
				 errhint("The transaction is rolled back. Release the lost lock with zksync_unlock_all() or take it again.")));
	if (bad->node_deleted)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("cannot commit: zksync read lock \"%s\" was lost during the transaction",
						bad->name),
				 errdetail("Another client deleted the lock's node while this backend held it; another client may have taken the lock."),
				 errhint("The transaction is rolled back. Release the lost lock with zksync_unlock_all() or take it again.")));
	if (bad->key.mode == 'w')
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("cannot commit: zksync write lock \"%s\" was lost during the transaction",
						bad->name),
				 errdetail("The ZooKeeper session that held it expired or could not be confirmed alive; another client may have taken the lock."),
				 errhint("The transaction is rolled back. Release the lost lock with zksync_unlock_all() or take it again.")));
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("cannot commit: zksync read lock \"%s\" was lost during the transaction",
					bad->name),
			 errdetail("The ZooKeeper session that held it expired or could not be confirmed alive; another client may have taken the lock."),
			 errhint("The transaction is rolled back. Release the lost lock with zksync_unlock_all() or take it again.")));
}

/*
 * Pre-commit: refuse to commit a transaction that relied on a lock that is
 * lost: any transaction hold, or a session hold held during it.  When the
 * transaction relied on holds that are held, the server confirms them
 * first (xact.c's zksync_confirm_held_nodes; docs/design.md, "The commit
 * check asks the server"); a hold already known lost refuses the commit
 * in any case.  Also run before PREPARE TRANSACTION.
 */
void
holds_check_commit(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;
	Hold	   *bad = NULL;
	ZkHeld	  **watches;
	int			nheld = 0;

	if (holds == NULL || hash_get_num_entries(holds) == 0)
		return;
	zk_read_news();				/* a watch that fired since the statement
								 * began */
	zk_notice_session_end();	/* an expiry the client knows of: lost */
	watches = palloc(sizeof(ZkHeld *) * hash_get_num_entries(holds));
	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
		if (hold->state == HOLD_HELD)
			watches[nheld++] = hold->watch;
	if (zksync_commit_must_confirm(nheld > 0, n_xact_holds > 0))
		zksync_confirm_held_nodes(watches, nheld);
	pfree(watches);

	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		if (hold->state == HOLD_LOST && bad == NULL &&
			zksync_lost_during_xact(hold->xact_count > 0, hold->lost_lxid))
			bad = hold;
	}
	if (bad)
		refuse_commit(bad);
}

/*
 * A node created in a batch with releases (releases.c) comes back
 * without its stat, so its token (czxid) is read when first asked for.
 * A connection error is waited out on the same session (or thrown after
 * zksync.connect_timeout), never reported as "no token".
 */
static void
fill_tokens(void)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;
	bool		connected = false;

	hash_seq_init(&seq, holds);
	while ((hold = hash_seq_search(&seq)) != NULL)
	{
		ZkReq	   *e;

		if (hold->state != HOLD_HELD || hold->token != 0 || hold->node[0] == '\0')
			continue;
		if (!connected)
		{
			zk_connect();
			connected = true;
		}
		e = zk_call_retrying(ZKOP_EXISTS, hold->node, NULL, 0, 0, NULL);
		if (zk_req_rc(e) == ZOK && zk_req_ephemeral_owner(e) == zk_session_id())
		{
			hold->token = zk_req_czxid(e);
			zksync_local_set(hold->local, ZKLOCAL_HELD, hold->token);
		}
		zk_req_free(e);
	}
}

/*
 * A pending release of a lock node under the current zksync.root, as a
 * row: the hold has ended, its delete is not applied yet.  False for any
 * other path (a barrier's, another root's).
 */
static bool
releasing_row(const char *path, ZkLockInfo *r)
{
	char	   *prefix = zksync_recipe_dir(ZKSYNC_LOCKS, "");
	size_t		plen = strlen(prefix);
	const char *name = path + plen;
	const char *slash;

	if (strncmp(path, prefix, plen) != 0 ||
		(slash = strchr(name, '/')) == NULL ||
		slash - name > ZKSYNC_NAME_MAX)
		return false;
	memset(r, 0, sizeof(*r));
	memcpy(r->name, name, slash - name);
	r->name[slash - name] = '\0';
	r->mode = zksync_node_is_reader(slash + 1) ? "read" : "write";
	r->state = "releasing";
	strlcpy(r->node, path, sizeof(r->node));
	return true;
}

/* Copy the hold table, and the releases still on their way, for zksync_locks(). */
int
zksync_lock_snapshot(ZkLockInfo **rows)
{
	HASH_SEQ_STATUS seq;
	Hold	   *hold;
	int			n = 0;
	char	  **pending;
	int			npending,
				i;

	if (holds)
		fill_tokens();
	npending = zk_pending_releases(&pending);
	*rows = palloc0(sizeof(ZkLockInfo) *
					((holds ? hash_get_num_entries(holds) : 0) + npending + 1));
	if (holds)
	{
		hash_seq_init(&seq, holds);
		while ((hold = hash_seq_search(&seq)) != NULL)
		{
			ZkLockInfo *r = &(*rows)[n++];

			strlcpy(r->name, hold->name, sizeof(r->name));
			r->mode = MODE_NAME(hold->key.mode);
			r->session_count = hold->session_count;
			r->xact_count = hold->xact_count;
			r->state = hold->state == HOLD_HELD ? "held" :
				hold->state == HOLD_LOST ? "lost" : "waiting";
			strlcpy(r->node, hold->node, sizeof(r->node));
			r->token = hold->token;
			r->has_token = hold->token != 0 && hold->state == HOLD_HELD;
		}
	}
	for (i = 0; i < npending; i++)
		if (releasing_row(pending[i], &(*rows)[n]))
			n++;
	return n;
}

/* From zksync_lock_init: hear of the session's end and of deleted nodes */
void
holds_init(void)
{
	zk_register_session_user(hold_nodes, hold_forget_session, lost_nodes);
}
