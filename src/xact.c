/*-------------------------------------------------------------------------
 * xact.c
 *	  Transaction and savepoint scope of zksync locks, and DISCARD ALL.
 *
 * Transaction-level holds follow advisory locks: they end at COMMIT or
 * ROLLBACK; one taken inside a savepoint ends at ROLLBACK TO SAVEPOINT and
 * passes to the parent at RELEASE.  Session holds end at DISCARD ALL.
 *
 * Only the PRE_COMMIT and PRE_PREPARE events may throw: that is where a
 * transaction that relied on a lost lock is refused (PREPARE runs the same
 * check as COMMIT), and where PREPARE with transaction holds is refused (a
 * prepared transaction outlives the backend, its ZooKeeper session does
 * not).  The COMMIT and ABORT events run after the point of no return or
 * during error recovery, so the work there (releasing nodes) uses the
 * no-throw paths the recipes register (ZkScopeHooks): the deletes are
 * queued until applied, the wait for them is bounded
 * (ZKSYNC_RELEASE_WAIT_MS), and if memory runs out the session is closed
 * rather than a node left behind.
 *
 * Statements.  Every statement (ExecutorStart, ProcessUtility) first asks
 * the connection layer whether another client deleted a node this backend
 * holds; the recipes then mark those holds lost and warn, so a backend
 * hears of it at its next statement and not only at its next zksync call.
 *
 * The commit check's common part lives here too (zksync_confirm_held_nodes
 * and its helpers): each recipe lists its held nodes and names its own
 * lost hold; docs/design.md, "The commit check asks the server".
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "tcop/utility.h"

#include "nls.h"
#include "settings.h"
#include "transport.h"
#include "session.h"
#include "xact.h"
#include "xact.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;

/*
 * What the recipes registered (zksync_register_scope): this file calls no
 * recipe by name, so a new recipe adds its holds to transaction scope by
 * registering, in the manner of RegisterXactCallback.
 */
#define MAX_SCOPES 8
static const ZkScopeHooks *scopes[MAX_SCOPES];
static int	nscopes = 0;

void
zksync_register_scope(const ZkScopeHooks *hooks)
{
	if (nscopes == MAX_SCOPES)
		elog(ERROR, "too many zksync scope registrations");
	scopes[nscopes++] = hooks;
}

/*
 * Must a recipe's commit check ask the server?  Yes when the transaction
 * relied on a hold that is held now (`any_held`): any transaction-level
 * hold (`any_xact_holds`, lost or not), or a session hold while the
 * transaction wrote something.  A read-only transaction that only ran
 * under session holds makes nothing durable that they could have
 * protected, and must not wait for a cut-off ensemble: an autocommit
 * statement that stacks or unlocks a held session lock works at once
 * during an outage.
 */
bool
zksync_commit_must_confirm(bool any_held, bool any_xact_holds)
{
	return any_held &&
		(any_xact_holds || GetTopTransactionIdIfAny() != InvalidTransactionId);
}

/*
 * Confirm the recipe's held nodes (`watches`, n of them) for COMMIT: a
 * sync proves the session alive now and brings the news of any held node
 * that another client deleted before the COMMIT; then each node must be
 * known present, ours and watched (a getData still out is waited for, up
 * to the session timeout).  If the session or a node cannot be confirmed
 * in time, the session is closed, so that every hold is lost rather than
 * trusted; a deleted node makes its hold lost (zk_notice_lost_nodes).
 * Either way the recipe then finds its lost holds marked.  May throw on
 * interrupts.
 */
void
zksync_confirm_held_nodes(ZkHeld *const *watches, int n)
{
	int			i;

	if (!zk_sync_held(zksync_session_timeout))
	{
		zk_reset_session();		/* marks every hold lost, now */
		return;
	}
	for (i = 0; i < n; i++)
		if (!zk_held_confirm(watches[i], zksync_session_timeout) &&
			!zk_held_gone(watches[i]))
		{
			zk_reset_session(); /* marks every hold lost, now */
			break;
		}
	zk_notice_lost_nodes();
}

/* The running transaction, as a lost hold records it */
LocalTransactionId
zksync_current_lxid(void)
{
	return MyProc ? MyProc->lxid : InvalidLocalTransactionId;
}

/*
 * Does a lost hold refuse COMMIT?  A transaction-level one always; a
 * session-level one if it was lost during this transaction.
 */
bool
zksync_lost_during_xact(bool xact_level, LocalTransactionId lost_lxid)
{
	return xact_level ||
		(lost_lxid != InvalidLocalTransactionId && MyProc &&
		 lost_lxid == MyProc->lxid);
}

static void
xact_callback(XactEvent event, void *arg)
{
	int			i;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			for (i = 0; i < nscopes; i++)
				scopes[i]->check_commit();
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* the same lost-lock check as COMMIT, before the refusal */
			for (i = 0; i < nscopes; i++)
				scopes[i]->check_commit();
			for (i = 0; i < nscopes; i++)
				if (scopes[i]->has_xact_holds())
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot PREPARE a transaction that holds zksync transaction-level locks"),
							 errdetail("The locks live in this backend's ZooKeeper session, which a prepared transaction outlives.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			for (i = 0; i < nscopes; i++)
				scopes[i]->end_xact_level(1);
			zk_req_free_all();
			break;
		case XACT_EVENT_PREPARE:
			break;
	}
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			for (i = 0; i < nscopes; i++)
				scopes[i]->end_xact_level(level);
			zk_req_free_all();
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			for (i = 0; i < nscopes; i++)
				scopes[i]->pass_up(level);
			break;
		case SUBXACT_EVENT_START_SUB:
		case SUBXACT_EVENT_PRE_COMMIT_SUB:
			break;
	}
}

/* DISCARD ALL ends session holds, as it does for advisory locks. */
static void
zksync_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	int			i;

	/* a held node deleted by another client: say so before anything runs */
	zk_notice_lost_nodes();
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (IsA(parsetree, DiscardStmt) &&
		((DiscardStmt *) parsetree)->target == DISCARD_ALL)
		for (i = 0; i < nscopes; i++)
			scopes[i]->end_session_holds();
}

/*
 * Every statement first hears of held nodes that another client deleted
 * (a WARNING each; the holds are lost), so a session learns of it at its
 * next statement, whatever that is.  One mutex when nothing happened.
 */
static void
zksync_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	zk_notice_lost_nodes();
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

void
zksync_xact_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = zksync_ProcessUtility;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = zksync_ExecutorStart;
}
