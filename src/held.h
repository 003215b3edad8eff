/*-------------------------------------------------------------------------
 * held.h
 *	  Watches on the nodes this backend holds (held.c).
 *-------------------------------------------------------------------------
 */
#ifndef HELD_H
#define HELD_H

/* A node this backend holds, watched until dropped */
typedef struct ZkHeld ZkHeld;

extern ZkHeld *zk_held_watch(const char *path);
extern struct ZkReq *zk_get_children_watched(const char *dir);
extern void zk_held_drop(ZkHeld *h);
extern bool zk_held_gone(const ZkHeld *h);
extern bool zk_held_confirm(const ZkHeld *h, int timeout_ms);
extern bool zk_sync_held(int timeout_ms);

#endif							/* HELD_H */
