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

/* What a recipe's holds need from transaction scope */
typedef struct ZkScopeHooks
{
	void		(*check_commit) (void); /* PRE_COMMIT, PRE_PREPARE; may throw */
	bool		(*has_xact_holds) (void);	/* PREPARE is refused if so */
	void		(*end_xact_level) (int level);	/* holds of this savepoint
												 * level and deeper end;
												 * never throws */
	void		(*pass_up) (int level); /* RELEASE SAVEPOINT */
	void		(*end_session_holds) (void);	/* DISCARD ALL; never throws */
} ZkScopeHooks;

extern void zksync_xact_init(void);
extern void zksync_register_scope(const ZkScopeHooks *hooks);

#endif							/* ZKSYNC_XACT_H */
