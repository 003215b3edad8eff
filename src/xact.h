/*-------------------------------------------------------------------------
 * xact.h
 *	  Transaction and savepoint scope of the recipes' holds, and DISCARD
 *	  ALL (xact.c).
 *
 * A recipe whose holds follow transaction scope registers its hooks; xact.c
 * calls no recipe by name.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_XACT_H
#define ZKSYNC_XACT_H

#include "held.h"

/* What a recipe's holds need from transaction scope */
typedef struct ZkScopeHooks
{
	void		(*check_commit) (void); /* PRE_COMMIT, PRE_PREPARE; may throw */
	bool		(*has_xact_holds) (void);	/* PREPARE is refused if so */
	void		(*end_xact_level) (int level);	/* holds of this savepoint
												 * level and deeper end; never
												 * throws */
	void		(*pass_up) (int level); /* RELEASE SAVEPOINT */
	void		(*end_session_holds) (void);	/* DISCARD ALL; never throws */
} ZkScopeHooks;

extern void zksync_xact_init(void);
extern void zksync_register_scope(const ZkScopeHooks *hooks);

/*
 * The parts of a recipe's commit check (check_commit) that every recipe
 * shares; docs/design.md, "The commit check asks the server".
 */
extern bool zksync_commit_must_confirm(bool any_held, bool any_xact_holds);
extern void zksync_confirm_held_nodes(ZkHeld *const *watches, int n);
extern LocalTransactionId zksync_current_lxid(void);
extern bool zksync_lost_during_xact(bool xact_level,
									LocalTransactionId lost_lxid);

#endif							/* ZKSYNC_XACT_H */
