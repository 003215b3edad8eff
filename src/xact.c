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
 * no-throw paths of lock.c: the deletes are queued until applied, the wait
 * for them is bounded (ZKSYNC_RELEASE_WAIT_MS), and if memory runs out
 * the session is closed rather than a node left behind.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "zksync.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			zksync_check_lost_for_commit();
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* the same lost-lock check as COMMIT, before the refusal */
			zksync_check_lost_for_commit();
			if (zksync_have_xact_holds())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that holds zksync transaction-level locks"),
						 errdetail("The locks live in this backend's ZooKeeper session, which a prepared transaction outlives.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			zksync_release_xact_holds(1, true);
			zk_release_all();
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

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			zksync_release_xact_holds(level, true);
			zk_release_all();
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			zksync_reassign_xact_holds(level);
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

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (IsA(parsetree, DiscardStmt) &&
		((DiscardStmt *) parsetree)->target == DISCARD_ALL)
		zksync_release_session_holds(true);
}

void
zksync_xact_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = zksync_ProcessUtility;
}
