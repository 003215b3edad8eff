/*-------------------------------------------------------------------------
 * shared.c
 *	  What this cluster's backends share in shared memory: the counters
 *	  behind zksync_stats and the entries behind zksync_local_locks
 *	  (docs/operations.md).
 *
 * Both are read without ZooKeeper, so that they answer while the
 * ensemble is down or frozen, which is when an operator needs them.
 *
 * The counters are atomics that any backend adds to; wait time is kept
 * in microseconds.  The local view is a table of fixed size
 * (zksync.local_locks_per_backend times the number of backends), one
 * entry per hold or wait, with a free list, under one LWLock: a backend
 * adds, changes and removes only its own entries, and removes what is
 * left of them when it exits.  An entry that does not fit is left out of
 * the view (counted as untracked); the hold itself works as usual.
 *
 * Everything here needs shared_preload_libraries = 'zksync'; loaded
 * later, the functions that write do nothing, and the SQL functions that
 * read call zksync_shared_require() for an ERROR that says so.
 *
 * What can go wrong: an entry left behind by a backend (its exit hook
 * removes them; a crash reinitialises shared memory), and a full table
 * (see above: the view is incomplete, never the locking).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "nls.h"
#include "layout.h"				/* ZKSYNC_NAME_MAX */
#include "settings.h"
#include "shared.h"

/* One hold or wait of one backend; pid 0 is a free entry */
typedef struct LocalEntry
{
	int			pid;
	int			next_free;		/* free list, -1 ends it */
	uint8		kind;			/* ZkLocalKind */
	uint8		state;			/* ZkLocalState */
	char		mode[16];
	TimestampTz since;
	int64		token;
	char		name[ZKSYNC_NAME_MAX + 1];
} LocalEntry;

typedef struct SharedState
{
	LWLock	   *lock;			/* the entries, free list and stats_reset */
	pg_atomic_uint64 counts[ZKSTAT_COUNT];
	pg_atomic_uint64 wait_time_us;
	TimestampTz stats_reset;
	int			nentries;
	int			free_head;
	LocalEntry	entries[FLEXIBLE_ARRAY_MEMBER];
} SharedState;

static SharedState *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* this backend has entries to remove at exit */
static bool exit_hook_set = false;
static int	my_entries = 0;

static int
entry_count(void)
{
	return Max(MaxBackends, 1) * zksync_local_locks_per_backend;
}

static Size
shared_size(void)
{
	return add_size(offsetof(SharedState, entries),
					mul_size(entry_count(), sizeof(LocalEntry)));
}

static void
shared_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("zksync", 1);
}

static void
shared_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("zksync", shared_size(), &found);
	if (!found)
	{
		int			n = entry_count();
		int			i;

		shared->lock = &(GetNamedLWLockTranche("zksync"))->lock;
		for (i = 0; i < ZKSTAT_COUNT; i++)
			pg_atomic_init_u64(&shared->counts[i], 0);
		pg_atomic_init_u64(&shared->wait_time_us, 0);
		shared->stats_reset = GetCurrentTimestamp();
		shared->nentries = n;
		for (i = 0; i < n; i++)
		{
			shared->entries[i].pid = 0;
			shared->entries[i].next_free = i + 1 < n ? i + 1 : -1;
		}
		shared->free_head = n > 0 ? 0 : -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init: ask for shared memory if we are preloaded */
void
zksync_shared_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shared_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shared_startup;
}

/* ERROR unless the shared state exists; `what` names the SQL object */
void
zksync_shared_require(const char *what)
{
	if (shared != NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("%s needs zksync in shared_preload_libraries", what),
			 errhint("Add 'zksync' to shared_preload_libraries and restart the server.")));
}

/* ---- counters ---- */

void
zksync_stat_count(ZkStat stat, int n)
{
	if (shared == NULL || n <= 0)
		return;
	pg_atomic_fetch_add_u64(&shared->counts[stat], (uint64) n);
}

/* A wait that began at `start` is over: waited, and its time */
void
zksync_stat_wait(TimestampTz start)
{
	TimestampTz now;

	if (shared == NULL || start == 0)
		return;
	now = GetCurrentTimestamp();
	pg_atomic_fetch_add_u64(&shared->counts[ZKSTAT_WAITED], 1);
	if (now > start)
		pg_atomic_fetch_add_u64(&shared->wait_time_us, (uint64) (now - start));
}

void
zksync_stats_read(ZkStats *out)
{
	int			i;

	zksync_shared_require("zksync_stats");
	for (i = 0; i < ZKSTAT_COUNT; i++)
		out->counts[i] = pg_atomic_read_u64(&shared->counts[i]);
	out->wait_time_ms = pg_atomic_read_u64(&shared->wait_time_us) / 1000.0;
	LWLockAcquire(shared->lock, LW_SHARED);
	out->stats_reset = shared->stats_reset;
	LWLockRelease(shared->lock);
}

void
zksync_stats_reset_all(void)
{
	int			i;

	zksync_shared_require("zksync_stats_reset");
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < ZKSTAT_COUNT; i++)
		pg_atomic_write_u64(&shared->counts[i], 0);
	pg_atomic_write_u64(&shared->wait_time_us, 0);
	shared->stats_reset = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

/* ---- the local view ---- */

/* Free entry i (the lock held exclusively) */
static void
free_entry_locked(int i)
{
	shared->entries[i].pid = 0;
	shared->entries[i].next_free = shared->free_head;
	shared->free_head = i;
}

/* before_shmem_exit: whatever entries of ours are left go */
static void
remove_mine(int code, Datum arg)
{
	int			i;

	if (shared == NULL || my_entries == 0)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < shared->nentries; i++)
		if (shared->entries[i].pid == MyProcPid)
			free_entry_locked(i);
	LWLockRelease(shared->lock);
	my_entries = 0;
}

/*
 * A hold or wait of this backend begins: its entry, or ZKLOCAL_NONE if
 * there is no room (counted) or no shared memory.  Never throws.
 */
int
zksync_local_add(ZkLocalKind kind, const char *name, const char *mode,
				 ZkLocalState state)
{
	LocalEntry *e;
	int			i;

	if (shared == NULL || MyProcPid == 0)
		return ZKLOCAL_NONE;
	if (!exit_hook_set)
	{
		before_shmem_exit(remove_mine, (Datum) 0);
		exit_hook_set = true;
	}
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	i = shared->free_head;
	if (i < 0)
	{
		LWLockRelease(shared->lock);
		pg_atomic_fetch_add_u64(&shared->counts[ZKSTAT_UNTRACKED], 1);
		return ZKLOCAL_NONE;
	}
	e = &shared->entries[i];
	shared->free_head = e->next_free;
	e->pid = MyProcPid;
	e->next_free = -1;
	e->kind = (uint8) kind;
	e->state = (uint8) state;
	strlcpy(e->mode, mode, sizeof(e->mode));
	strlcpy(e->name, name, sizeof(e->name));
	e->since = GetCurrentTimestamp();
	e->token = 0;
	LWLockRelease(shared->lock);
	my_entries++;
	return i;
}

/* Is `slot` an entry of this backend? */
static bool
mine(int slot)
{
	return shared != NULL && slot >= 0 && slot < shared->nentries &&
		shared->entries[slot].pid == MyProcPid;
}

/*
 * Entry `slot` is now in `state` (since now, if that is a change), with
 * `token` (0: keep the one it has).  Never throws.
 */
void
zksync_local_set(int slot, ZkLocalState state, int64 token)
{
	LocalEntry *e;

	if (!mine(slot))
		return;
	e = &shared->entries[slot];
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (e->state != (uint8) state)
	{
		e->state = (uint8) state;
		e->since = GetCurrentTimestamp();
	}
	if (token != 0)
		e->token = token;
	LWLockRelease(shared->lock);
}

/* Entry `slot` now waits or holds in another mode.  Never throws. */
void
zksync_local_set_mode(int slot, const char *mode, ZkLocalState state)
{
	LocalEntry *e;

	if (!mine(slot))
		return;
	e = &shared->entries[slot];
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(e->mode, mode, sizeof(e->mode));
	e->state = (uint8) state;
	e->since = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

/* The hold or wait of entry `slot` is over.  Never throws. */
void
zksync_local_remove(int slot)
{
	if (!mine(slot))
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	free_entry_locked(slot);
	LWLockRelease(shared->lock);
	my_entries--;
}

/*
 * Entries whose release was sent but is not known to be applied yet:
 * "releasing" until zksync_local_released().  TopMemoryContext.
 */
static int *releasing = NULL;
static int	nreleasing = 0;
static int	maxreleasing = 0;

/*
 * The release of entry `slot` was sent: it shows as releasing until
 * zksync_local_released(), which removes it.  Never throws (without
 * memory to remember it, the entry goes at once).
 */
void
zksync_local_releasing(int slot)
{
	if (!mine(slot))
		return;
	if (nreleasing == maxreleasing)
	{
		int			newmax = maxreleasing ? maxreleasing * 2 : 16;
		int		   *more = MemoryContextAllocExtended(TopMemoryContext,
													  sizeof(int) * newmax,
													  MCXT_ALLOC_NO_OOM);

		if (more == NULL)
		{
			zksync_local_remove(slot);
			return;
		}
		if (releasing)
		{
			memcpy(more, releasing, sizeof(int) * nreleasing);
			pfree(releasing);
		}
		releasing = more;
		maxreleasing = newmax;
	}
	zksync_local_set(slot, ZKLOCAL_RELEASING, 0);
	releasing[nreleasing++] = slot;
}

/*
 * The releases sent are applied, or no longer waited for: their entries
 * go.  Never throws.
 */
void
zksync_local_released(void)
{
	while (nreleasing > 0)
		zksync_local_remove(releasing[--nreleasing]);
}

/*
 * Every entry of every backend, copied out under the lock (palloc'd, in
 * the current memory context).  Returns how many.
 */
int
zksync_local_read(ZkLocalRow **rows)
{
	ZkLocalRow *r;
	int			n = 0;
	int			max = 16;
	int			i;

	zksync_shared_require("zksync_local_locks");
	r = palloc(max * sizeof(ZkLocalRow));
	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nentries; i++)
	{
		LocalEntry *e = &shared->entries[i];

		if (e->pid == 0)
			continue;
		if (n == max)
		{
			max *= 2;
			r = repalloc(r, max * sizeof(ZkLocalRow));
		}
		r[n].pid = e->pid;
		r[n].kind = (ZkLocalKind) e->kind;
		r[n].state = (ZkLocalState) e->state;
		strlcpy(r[n].mode, e->mode, sizeof(r[n].mode));
		r[n].name = pstrdup(e->name);
		r[n].since = e->since;
		r[n].token = e->token;
		n++;
	}
	LWLockRelease(shared->lock);
	*rows = r;
	return n;
}

const char *
zksync_local_kind_name(ZkLocalKind kind)
{
	switch (kind)
	{
		case ZKLOCAL_LOCK:
			return "lock";
		case ZKLOCAL_SEMAPHORE:
			return "semaphore";
		case ZKLOCAL_BARRIER:
			return "barrier";
		case ZKLOCAL_DBARRIER:
			return "dbarrier";
	}
	return "?";
}

const char *
zksync_local_state_name(ZkLocalState state)
{
	switch (state)
	{
		case ZKLOCAL_WAITING:
			return "waiting";
		case ZKLOCAL_HELD:
			return "held";
		case ZKLOCAL_LOST:
			return "lost";
		case ZKLOCAL_RELEASING:
			return "releasing";
	}
	return "?";
}
