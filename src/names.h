/*-------------------------------------------------------------------------
 * names.h
 *	  Validation of what becomes part of a ZooKeeper path: names, hosts
 *	  and root (names.c).
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_NAMES_H
#define ZKSYNC_NAMES_H

/* What a name names, for its messages */
typedef enum ZkNameKind
{
	ZKNAME_LOCK,
	ZKNAME_BARRIER,
	ZKNAME_DBARRIER,
	ZKNAME_SEMAPHORE
} ZkNameKind;

/* Throws on a bad name; `element` is its 1-based place in an array, or 0 */
extern char *zksync_name_from_text(text *t, ZkNameKind kind, int element);

/* For check hooks: never throw; *why is a sentence for GUC_check_errdetail */
extern bool zksync_root_is_valid(const char *root, char **why);
extern bool zksync_hosts_are_valid(const char *hosts, char **why);

#endif							/* ZKSYNC_NAMES_H */
