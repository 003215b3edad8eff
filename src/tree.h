/*-------------------------------------------------------------------------
 * tree.h
 *	  The tree under zksync.root is ours under zksync.auth (tree.c).
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_TREE_H
#define ZKSYNC_TREE_H

extern void zksync_tree_init(void);

#endif							/* ZKSYNC_TREE_H */
