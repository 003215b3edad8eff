/*-------------------------------------------------------------------------
 * lock_int.h
 *	  What the two files of the read-write lock share, and nobody else
 *	  sees: the hold table (locktable.c) that the recipe (lock.c) fills.
 *
 * Names declared here carry no public prefix and are hidden from the
 * symbol table of the loaded library.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_LOCK_INT_H
#define ZKSYNC_LOCK_INT_H

#include "held.h"
#include "layout.h"				/* ZKSYNC_NAME_MAX, ZKSYNC_PATH_MAX */

#include "utils/hsearch.h"

#pragma GCC visibility push(hidden)

typedef struct HoldKey
{
	char		dir[ZKSYNC_PATH_MAX];	/* {root}/locks/{name} */
	char		mode;			/* 'w' or 'r' */
} HoldKey;

typedef enum HoldState
{
	HOLD_WAITING,
	HOLD_HELD,
	HOLD_LOST
} HoldState;

/* Transaction-level acquisitions of one hold at one savepoint level */
typedef struct XactLevel
{
	int			level;			/* subtransaction nesting level */
	int			count;
} XactLevel;

/*
 * One (lock, mode) this backend holds or waits for.  Per backend there is
 * at most one node per (lock, mode); the counts say how often it was
 * taken at session and at transaction level.
 */
typedef struct Hold
{
	HoldKey		key;			/* hash key: must be first */
	char		name[ZKSYNC_NAME_MAX + 1];
	char		node[ZKSYNC_PATH_MAX];	/* our node, "" until known */
	char		retained[ZKSYNC_PATH_MAX];	/* write node kept for a
											 * downgrade, or "" */
	int			session_count;
	int			xact_count;		/* sum of the levels' counts */
	/* xact_count by savepoint level, ascending; TopMemoryContext */
	XactLevel  *levels;
	int			nlevels;
	int			maxlevels;
	HoldState	state;
	bool		node_deleted;	/* lost: another client deleted the node */
	ZkHeld	   *watch;			/* the node's watch while held */
	int64		token;			/* czxid of the node */
	LocalTransactionId lost_lxid;	/* transaction running when lost */
	int			local;			/* its entry in zksync_local_locks */
} Hold;

/* The hold table (NULL until first used); TopMemoryContext */
extern HTAB *holds;

/* holds with xact_count > 0, so that most callbacks have nothing to scan */
extern int	n_xact_holds;

#define MODE_CHAR(m)	((m) == ZKLOCK_WRITE ? 'w' : 'r')
#define MODE_NAME(c)	((c) == 'w' ? "write" : "read")

extern Hold *hold_find(const char *dir, char mode);
extern Hold *hold_new(const char *dir, char mode, const char *name);
extern void hold_remove(Hold *hold);
extern void hold_set_held(Hold *hold);
extern void hold_keep_releasing(Hold *hold);
extern void hold_add_count(Hold *hold, bool xact);
extern int	hold_pop_levels(Hold *hold, int nest_level);
extern void hold_report_lost(char mode, const char *name, bool node_deleted)
			pg_attribute_noreturn();
extern void hold_error_if_lost(Hold *hold);

extern bool holds_have_xact(void);
extern void holds_pass_up(int nest_level);
extern void holds_check_commit(void);
extern void holds_init(void);

#pragma GCC visibility pop

#endif							/* ZKSYNC_LOCK_INT_H */
