/*-------------------------------------------------------------------------
 * zksync.h
 *	  What crosses files in zksync.
 *
 * The files and what each owns, from the top down (a file calls only the
 * ones below it; the lower layers offer registration instead of calling a
 * recipe by name):
 *
 *	 zksync.c		_PG_init and every SQL-callable function: check the
 *					arguments, make one call down, form the result rows
 *	 lock.c			the read-write lock recipe: its grant rule, waits,
 *					multi-locks, releases, downgrade (lock.h)
 *	 locktable.c	the lock's hold table: counts by scope and savepoint
 *					level, lost holds, the commit check, zksync_locks()
 *					(shared with lock.c through lock_int.h)
 *	 semaphore.c	counting semaphores in Curator's layout (semaphore.h)
 *	 barrier.c		barriers and double barriers (barrier.h)
 *	 queue.c		the contender queue every waiting recipe shares: create,
 *					list, ask the recipe's grant rule, watch one node, wait,
 *					hand-off, remove on any failed wait; the first-in-queue
 *					rule, the max_holds and lock_timeout checks (queue.h)
 *	 handoff.c		passing a released write lock to a waiting backend of
 *					this cluster through shared memory (handoff.h)
 *	 xact.c			transaction/subtransaction callbacks and DISCARD ALL, for
 *					the recipes that register (ZkScopeHooks), and the commit
 *					check's common part (xact.h)
 *	 waits.c		every wait in view (zksync_waits, zksync_blocking,
 *					the holders and leases views), the wait in progress and
 *					log_lock_waits, for the queues the recipes register
 *					(ZkQueueKind)
 *	 deadlock.c		deadlock detection through ZooKeeper: wait records,
 *					the wait graph, its cycles (docs/waits.md)
 *	 marks.c		deadlock marks and their verification
 *	 tree.c			under zksync.auth: {root} and its fixed directories
 *					made persistent with our ACL, their ACLs checked once
 *					per session (42501 if other clients may change them)
 *					(tree.h)
 *	 nodes.c		node operations that ride out connection loss: the retry
 *					helper, protected (GUID) creates, abandonment, parents
 *					(nodes.h)
 *	 releases.c		deletes of our nodes that survive connection loss
 *					(hold-back, batching), hunts for abandoned creates
 *	 held.c			watches on the nodes this backend holds
 *	 session.c		the session: connect, replace, known alive, expiry and
 *					the recipes registered for it, error mapping
 *	 transport.c	requests, their completions, the wait loop
 *	 watchdog.c		the watchdog thread (ZOOKEEPER-4537 pokes, queued
 *					sends) and the client's log ring
 *					(these five are the only files that share memory with
 *					the client's threads: transport_int.h, docs/transport.md)
 *	 layout.c		where nodes live and how they are named (the grammar),
 *					owner data, reading what other clients wrote
 *	 settings.c		every GUC and its check hook
 *	 names.c		validation of names, hosts and root
 *-------------------------------------------------------------------------
 */
#ifndef ZKSYNC_H
#define ZKSYNC_H

#include "postgres.h"

#include <zookeeper/zookeeper.h>

#include "utils/timestamp.h"

/*
 * Our messages are looked up in zksync's own catalog (nls.mk), bound in
 * _PG_init, as PostgreSQL's own modules do.
 */
#undef TEXTDOMAIN
#define TEXTDOMAIN PG_TEXTDOMAIN("zksync")
#undef _
#define _(x) dgettext(TEXTDOMAIN, x)

#include "layout.h"
#include "names.h"
#include "settings.h"

/* ---------------------------------------------------------------------
 * the connection layer: transport.c, session.c, releases.c, held.c,
 * watchdog.c (docs/transport.md)
 * ---------------------------------------------------------------------
 */
#include "transport.h"
#include "session.h"
#include "releases.h"
#include "held.h"

#include "nodes.h"

#include "tree.h"

/* ---------------------------------------------------------------------
 * waits.c, deadlock.c: every wait in view, and deadlocks through ZooKeeper
 * ---------------------------------------------------------------------
 */
#include "waits.h"

#include "queue.h"
#include "lock.h"
#include "semaphore.h"
#include "barrier.h"
#include "xact.h"
#include "handoff.h"

#endif							/* ZKSYNC_H */
