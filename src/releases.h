/*-------------------------------------------------------------------------
 * releases.h
 *	  Deletes of our nodes that survive connection loss, and hunts for
 *	  creates abandoned mid-flight (releases.c).
 *-------------------------------------------------------------------------
 */
#ifndef RELEASES_H
#define RELEASES_H

#include "transport.h"

extern void zk_release_node(const char *path, int wait_ms, bool nothrow);
extern void zk_await_releases(int wait_ms, bool nothrow);
extern void zk_release_batch_begin(void);
extern void zk_release_batch_end(void);
extern void zk_abandon_create(ZkReq *create, const char *dir,
							  const char *guid, int wait_ms);
extern int	zk_pending_releases(char ***paths);
extern int	zk_leaving_nodes(char ***prefixes, int max);

#endif							/* RELEASES_H */
