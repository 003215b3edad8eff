/*-------------------------------------------------------------------------
 * handoff.c
 *	  Passing a write lock to a waiting backend of the same cluster without
 *	  waiting for ZooKeeper.
 *
 * In the recipe a waiter is granted when the node it watches is gone and
 * no other contender is ahead of it.  When that node is a *granted write
 * node* of a backend of this cluster, the holder can tell the waiter
 * directly, through shared memory, at the moment it releases, instead of
 * the waiter learning it from ZooKeeper a commit and a round trip later:
 *
 *	 - A write node that was granted had no contender below it then, and no
 *	   node can be created below it later (sequence numbers only grow).
 *	 - A waiting writer watches its immediate predecessor, so nothing lies
 *	   between that node and its own; a waiting reader watches the nearest
 *	   lower writer, so only readers lie between.
 *
 * So once the holder has released that node, the waiter's own node is
 * first (a writer) or behind readers only (a reader): exactly what the
 * waiter would conclude after the delete commits and it reads the
 * children.  Everyone else still goes by ZooKeeper: the holder's node is
 * deleted as usual, the waiter's node stays in the queue, and a contender
 * of another cluster or client queued behind the waiter keeps waiting for
 * the waiter's node.  The order of grants is unchanged.
 *
 * A releasing backend also records the node in its slot, for a waiter that
 * learns of the node only after it was released (its delete is still on the
 * way to ZooKeeper).  A waiter takes such a grant only while its own
 * session is connected, and only for the node it registered; a hand-off
 * that arrives after the wait ended is ignored.  Nothing here waits or throws: releases in commit and
 * abort callbacks use it too.
 *
 * The slots live in shared memory, one per backend, so this works only
 * when zksync is in shared_preload_libraries; otherwise every grant comes
 * from ZooKeeper.  zksync.local_handoff = off makes a backend's waits take
 * grants from ZooKeeper only.  docs/recipes.md, "Hand-off".
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "common/hashfn.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "layout.h"
#include "settings.h"
#include "handoff.h"

/* Longest zksync.hosts for which backends hand locks to each other (bytes) */
#define ZKSYNC_HOSTS_MAX	256


typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_WAITING,				/* waiting for `node` to be released */
	SLOT_HANDED					/* its holder released it: granted */
} SlotState;

typedef struct HandoffSlot
{
	slock_t		mutex;
	/* the wait of this backend */
	SlotState	state;
	uint32		hash;			/* of node and ensemble */
	Latch	   *latch;
	char		ensemble[ZKSYNC_HOSTS_MAX]; /* zksync.hosts of the session */
	char		node[ZKSYNC_PATH_MAX];	/* full path of the watched node */
	/* the granted write node this backend released last */
	uint32		released_hash;
	char		released_ensemble[ZKSYNC_HOSTS_MAX];
	char		released[ZKSYNC_PATH_MAX];
} HandoffSlot;

/*
 * Ahead of the slots: how many are registered (waiting or handed), so a
 * release looks at the slots only while somebody waits.
 */
typedef struct HandoffHeader
{
	pg_atomic_uint32 registered;
} HandoffHeader;

static HandoffHeader *header = NULL;
static HandoffSlot *slots = NULL;
static int	nslots = 0;
static HandoffSlot *my_slot = NULL;
static bool exit_hook_set = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
slots_size(void)
{
	return add_size(MAXALIGN(sizeof(HandoffHeader)),
					mul_size(MaxBackends, sizeof(HandoffSlot)));
}

static void
handoff_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(slots_size());
}

static void
handoff_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	header = ShmemInitStruct("zksync hand-off slots", slots_size(), &found);
	slots = (HandoffSlot *) ((char *) header + MAXALIGN(sizeof(HandoffHeader)));
	if (!found)
	{
		memset(header, 0, slots_size());
		pg_atomic_init_u32(&header->registered, 0);
		for (i = 0; i < MaxBackends; i++)
			SpinLockInit(&slots[i].mutex);
	}
	nslots = MaxBackends;
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init: reserve the slots if we are being preloaded. */
void
zksync_handoff_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = handoff_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = handoff_shmem_startup;
}

static uint32
key_hash(const char *node, const char *ensemble)
{
	return hash_bytes((const unsigned char *) node, strlen(node)) ^
		hash_bytes((const unsigned char *) ensemble, strlen(ensemble));
}

/* Do node and ensemble fit a slot?  Longer ones are never handed off. */
static bool
key_fits(const char *node, const char *ensemble)
{
	return strlen(node) < ZKSYNC_PATH_MAX && strlen(ensemble) < ZKSYNC_HOSTS_MAX;
}

static bool
slots_usable(void)
{
	return slots != NULL && MyBackendId != InvalidBackendId &&
		MyBackendId <= nslots;
}

/* A backend that ends inside a wait (FATAL) leaves no waiting slot. */
static void
handoff_at_exit(int code, Datum arg)
{
	zksync_handoff_unregister();
}

/*
 * This backend is about to wait for `node` (full path), a write node that
 * blocks it, on the ensemble `ensemble`.  Returns false if hand-offs are
 * off or unavailable (the wait then goes by ZooKeeper alone).
 */
bool
zksync_handoff_register(const char *node, const char *ensemble)
{
	HandoffSlot *s;
	uint32		h;
	int			i;

	if (!zksync_local_handoff || !slots_usable() || !key_fits(node, ensemble))
		return false;
	if (!exit_hook_set)
	{
		before_shmem_exit(handoff_at_exit, 0);
		exit_hook_set = true;
	}
	h = key_hash(node, ensemble);
	s = &slots[MyBackendId - 1];
	pg_atomic_fetch_add_u32(&header->registered, 1);	/* a full barrier */
	SpinLockAcquire(&s->mutex);
	strcpy(s->node, node);
	strcpy(s->ensemble, ensemble);
	s->hash = h;
	s->latch = MyLatch;
	s->state = SLOT_WAITING;
	SpinLockRelease(&s->mutex);
	my_slot = s;

	/*
	 * Its holder may have released it already (we learnt of the node from a
	 * listing taken before).  A release records the node before it looks for
	 * waiters, and we registered before looking for the record, each with a
	 * full barrier in between (the peeks below and in the release are
	 * unlocked), so between the two of us the hand-off is not missed. Were it
	 * missed, ZooKeeper would still grant the lock, later.
	 */
	pg_memory_barrier();
	for (i = 0; i < nslots; i++)
	{
		HandoffSlot *o = &slots[i];
		bool		match;

		if (o == s || o->released_hash != h)
			continue;			/* unlocked peek; rechecked below */
		SpinLockAcquire(&o->mutex);
		match = o->released_hash == h && strcmp(o->released, node) == 0 &&
			strcmp(o->released_ensemble, ensemble) == 0;
		SpinLockRelease(&o->mutex);
		if (match)
		{
			SpinLockAcquire(&s->mutex);
			if (s->state == SLOT_WAITING)
				s->state = SLOT_HANDED;
			SpinLockRelease(&s->mutex);
			break;
		}
	}
	return true;
}

/* Has the node we registered for been handed to us? */
bool
zksync_handoff_received(void)
{
	bool		handed;

	if (my_slot == NULL)
		return false;
	SpinLockAcquire(&my_slot->mutex);
	handed = my_slot->state == SLOT_HANDED;
	SpinLockRelease(&my_slot->mutex);
	return handed;
}

/*
 * The wait is over, however it ended: free the slot.  Returns whether the
 * node had been handed to us by then.  Never throws.
 */
bool
zksync_handoff_unregister(void)
{
	bool		handed;

	if (my_slot == NULL)
		return false;
	SpinLockAcquire(&my_slot->mutex);
	handed = my_slot->state == SLOT_HANDED;
	my_slot->state = SLOT_FREE;
	my_slot->latch = NULL;
	SpinLockRelease(&my_slot->mutex);
	my_slot = NULL;
	pg_atomic_fetch_sub_u32(&header->registered, 1);
	return handed;
}

/*
 * We are releasing `node` (full path), a write node of ours that was
 * granted: hand it to every backend of this cluster waiting for it.
 * Never throws.
 */
void
zksync_handoff_release(const char *node, const char *ensemble)
{
	uint32		h;
	int			i;

	if (!slots_usable() || !key_fits(node, ensemble))
		return;
	h = key_hash(node, ensemble);

	/* first the record, for a waiter that registers after this */
	{
		HandoffSlot *me = &slots[MyBackendId - 1];

		SpinLockAcquire(&me->mutex);
		strcpy(me->released, node);
		strcpy(me->released_ensemble, ensemble);
		me->released_hash = h;
		SpinLockRelease(&me->mutex);
	}
	pg_memory_barrier();		/* see zksync_handoff_register() */

	/*
	 * then the waiters already registered, if any: one that counts itself in
	 * after this read sees our record when it looks (the count is taken
	 * before its own barrier)
	 */
	if (pg_atomic_read_u32(&header->registered) == 0)
		return;
	for (i = 0; i < nslots; i++)
	{
		HandoffSlot *s = &slots[i];
		Latch	   *wake = NULL;

		if (s->state != SLOT_WAITING || s->hash != h)
			continue;			/* unlocked peek; rechecked below */
		SpinLockAcquire(&s->mutex);
		if (s->state == SLOT_WAITING && s->hash == h &&
			strcmp(s->node, node) == 0 && strcmp(s->ensemble, ensemble) == 0)
		{
			s->state = SLOT_HANDED;
			wake = s->latch;
		}
		SpinLockRelease(&s->mutex);
		if (wake)
			SetLatch(wake);
	}
}
