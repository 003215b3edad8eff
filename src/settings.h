/*-------------------------------------------------------------------------
 * settings.h
 *	  zksync's settings (GUCs), defined in settings.c.
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_SETTINGS_H
#define ZKSYNC_SETTINGS_H

extern char *zksync_hosts;
extern char *zksync_root;
extern int	zksync_session_timeout;
extern int	zksync_connect_timeout;
extern char *zksync_auth;
extern bool zksync_synchronous_release;
extern int	zksync_max_holds;
extern char *zksync_lock_layout;
extern bool zksync_local_handoff;
extern int	zksync_local_locks_per_backend;

extern void zksync_settings_init(void);

#endif							/* ZKSYNC_SETTINGS_H */
