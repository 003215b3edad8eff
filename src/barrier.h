/*-------------------------------------------------------------------------
 * barrier.h
 *	  Barriers and double barriers (barrier.c, docs/recipes.md).
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_BARRIER_H
#define ZKSYNC_BARRIER_H

extern bool zksync_barrier_set(const char *name);
extern bool zksync_barrier_unset(const char *name);
extern bool zksync_barrier_is_set(const char *name);
extern bool zksync_barrier_wait(const char *name, int timeout_ms);
extern bool zksync_dbarrier_enter(const char *name, int participants,
								  int timeout_ms);
extern bool zksync_dbarrier_exit(const char *name, int timeout_ms);
extern void zksync_barrier_init(void);

#endif							/* ZKSYNC_BARRIER_H */
