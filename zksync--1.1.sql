-- zksync 1.1: ZooKeeper coordination recipes in SQL.
\echo Use "CREATE EXTENSION zksync" to load this file. \quit

-- Locks.  The functions are not STRICT: a NULL argument is an ERROR.

CREATE FUNCTION zksync_write_lock(name text) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_write_lock(text) IS
'Take the distributed write lock "name", waiting as long as needed (like pg_advisory_lock). Held until zksync_write_unlock, zksync_unlock_all, DISCARD ALL or backend exit.';

CREATE FUNCTION zksync_read_lock(name text) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_read_lock(text) IS
'Take the distributed read lock "name", shared with other readers, waiting as long as needed (like pg_advisory_lock_shared).';

CREATE FUNCTION zksync_xact_write_lock(name text) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_xact_write_lock(text) IS
'Take the distributed write lock "name" until the end of the transaction (like pg_advisory_xact_lock).';

CREATE FUNCTION zksync_xact_read_lock(name text) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_xact_read_lock(text) IS
'Take the distributed read lock "name" until the end of the transaction (like pg_advisory_xact_lock_shared).';

CREATE FUNCTION zksync_try_write_lock(name text, timeout_ms int DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_try_write_lock(text, int) IS
'Try to take the write lock "name", waiting at most timeout_ms (default 0: do not wait). Returns false if not granted; nothing is left queued.';

CREATE FUNCTION zksync_try_read_lock(name text, timeout_ms int DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_try_read_lock(text, int) IS
'Try to take the read lock "name", waiting at most timeout_ms (default 0). Returns false if not granted.';

CREATE FUNCTION zksync_try_xact_write_lock(name text, timeout_ms int DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_try_xact_write_lock(text, int) IS
'Try to take the write lock "name" until the end of the transaction, waiting at most timeout_ms.';

CREATE FUNCTION zksync_try_xact_read_lock(name text, timeout_ms int DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_try_xact_read_lock(text, int) IS
'Try to take the read lock "name" until the end of the transaction, waiting at most timeout_ms.';

CREATE FUNCTION zksync_write_unlock(name text) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_write_unlock(text) IS
'Release one session-level hold of the write lock "name". Returns false with a WARNING if this backend holds none (like pg_advisory_unlock).';

CREATE FUNCTION zksync_read_unlock(name text) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_read_unlock(text) IS
'Release one session-level hold of the read lock "name". Returns false with a WARNING if this backend holds none.';

CREATE FUNCTION zksync_unlock_all() RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_unlock_all() IS
'Release every session-level zksync lock of this backend (like pg_advisory_unlock_all).';

CREATE FUNCTION zksync_lock_token(name text) RETURNS bigint
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_lock_token(text) IS
'Fencing token of this backend''s hold on "name": the creation zxid of its node, strictly increasing from one write holder to the next. NULL if not held.';

-- Multi-locks: the same functions over an array of names, all or nothing.
-- A caller never keeps a place in one lock's queue while it waits in an
-- earlier one (names are taken in sorted order), so callers whose sets
-- overlap never deadlock on each other.

CREATE FUNCTION zksync_write_lock(names text[]) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_write_lock(text[]) IS
'Take the write locks of every name in the array, all or nothing, waiting as long as needed. Free names cost one ZooKeeper round trip together. Each name is then an ordinary session hold.';

CREATE FUNCTION zksync_read_lock(names text[]) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_read_lock(text[]) IS
'Take the read locks of every name in the array, all or nothing, waiting as long as needed.';

CREATE FUNCTION zksync_xact_write_lock(names text[]) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_xact_write_lock(text[]) IS
'Take the write locks of every name in the array until the end of the transaction, all or nothing.';

CREATE FUNCTION zksync_xact_read_lock(names text[]) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_xact_read_lock(text[]) IS
'Take the read locks of every name in the array until the end of the transaction, all or nothing.';

CREATE FUNCTION zksync_try_write_lock(names text[], timeout_ms int DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_try_write_lock(text[], int) IS
'Try to take the write locks of every name in the array within timeout_ms (default 0): true with all of them, false with none (nothing is left queued).';

CREATE FUNCTION zksync_try_read_lock(names text[], timeout_ms int DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_try_read_lock(text[], int) IS
'Try to take the read locks of every name in the array within timeout_ms: true with all of them, false with none.';

CREATE FUNCTION zksync_try_xact_write_lock(names text[], timeout_ms int DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_try_xact_write_lock(text[], int) IS
'Try to take the write locks of every name in the array until the end of the transaction, within timeout_ms: all or none.';

CREATE FUNCTION zksync_try_xact_read_lock(names text[], timeout_ms int DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_try_xact_read_lock(text[], int) IS
'Try to take the read locks of every name in the array until the end of the transaction, within timeout_ms: all or none.';

CREATE FUNCTION zksync_write_unlock(names text[]) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_write_unlock(text[]) IS
'Release one session-level hold of the write lock of each name. True if every name had one; a WARNING for each that had none.';

CREATE FUNCTION zksync_read_unlock(names text[]) RETURNS boolean
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_read_unlock(text[]) IS
'Release one session-level hold of the read lock of each name. True if every name had one; a WARNING for each that had none.';

-- Semaphores: Apache Curator's InterProcessSemaphoreV2 on
-- {zksync.root}/semaphores/{name}.  A NULL timeout_ms means no limit.

CREATE FUNCTION zksync_semaphore_acquire(name text, max_leases int, timeout_ms int DEFAULT NULL) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_semaphore_acquire_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_semaphore_acquire(text, int, int) IS
'Take one more lease of the semaphore "name": at most max_leases are held at once across every backend, cluster and client (Curator''s InterProcessSemaphoreV2 shares them). True with the lease; false if timeout_ms (NULL: no limit) runs out first, nothing left queued. Held until zksync_semaphore_release, zksync_unlock_all, DISCARD ALL or backend exit.';

CREATE FUNCTION zksync_xact_semaphore_acquire(name text, max_leases int, timeout_ms int DEFAULT NULL) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_xact_semaphore_acquire_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_xact_semaphore_acquire(text, int, int) IS
'Take one more lease of the semaphore "name" until the end of the transaction (savepoints as for locks).';

CREATE FUNCTION zksync_semaphore_release(name text) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_semaphore_release_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_semaphore_release(text) IS
'Release one session lease of the semaphore "name". Returns false with a WARNING if this backend holds none.';

CREATE FUNCTION zksync_semaphore_leases(name text,
    OUT node text, OUT sequence bigint, OUT granted boolean, OUT owner text)
RETURNS SETOF record
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_semaphore_leases(text) IS
'Every client''s leases (leases/...; the first max_leases are granted) and the acquirers queued for the semaphore''s mutex (locks/...), read from ZooKeeper; owner says who made each node (empty for other clients).';

-- Barriers.  A NULL timeout_ms means no limit.

CREATE FUNCTION zksync_barrier_set(name text) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_barrier_set_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_barrier_set(text) IS
'Set the barrier "name" (a persistent node: it outlives this backend). True if this call set it, false if it was already set.';

CREATE FUNCTION zksync_barrier_unset(name text) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_barrier_unset_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_barrier_unset(text) IS
'Remove the barrier "name", releasing every waiter. True if this call removed it, false if it was not set. Anyone may unset a barrier.';

CREATE FUNCTION zksync_barrier_is_set(name text) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_barrier_is_set_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_barrier_is_set(text) IS
'Is the barrier "name" set?';

CREATE FUNCTION zksync_barrier_wait(name text, timeout_ms int DEFAULT NULL) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_barrier_wait_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_barrier_wait(text, int) IS
'Wait until the barrier "name" is not set: true at once if it is not set, false if timeout_ms (NULL: no limit) runs out first.';

CREATE FUNCTION zksync_dbarrier_enter(name text, participants int, timeout_ms int DEFAULT NULL) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_dbarrier_enter_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_dbarrier_enter(text, int, int) IS
'Enter the double barrier "name" and wait until "participants" have entered: true then; false if timeout_ms (NULL: no limit) runs out first, having left again.';

CREATE FUNCTION zksync_dbarrier_exit(name text, timeout_ms int DEFAULT NULL) RETURNS boolean
AS 'MODULE_PATHNAME', 'zksync_dbarrier_exit_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_dbarrier_exit(text, int) IS
'Leave the double barrier "name" and wait until every participant has exited or disconnected: true then; false if timeout_ms (NULL: no limit) runs out first. Either way this backend has left.';

-- Introspection.

CREATE FUNCTION zksync_locks(
    OUT name text, OUT mode text, OUT session_count int, OUT xact_count int,
    OUT state text, OUT node text, OUT token bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_locks() IS
'This backend''s zksync holds: state is held, waiting or lost.';

CREATE FUNCTION zksync_lock_holders(name text,
    OUT mode text, OUT node text, OUT sequence bigint, OUT granted boolean,
    OUT owner text)
RETURNS SETOF record
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_lock_holders(text) IS
'Every contender for lock "name" as ZooKeeper sees it, from any cluster or client, in queue order; owner is the JSON a zksync backend stored in its node (empty for other clients).';

CREATE FUNCTION zksync_session(
    OUT state text, OUT session_id text, OUT server text, OUT timeout_ms int)
RETURNS record
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_session() IS
'This backend''s ZooKeeper session: state, id, server and the timeout the server granted.';

CREATE FUNCTION zksync_waits(
    OUT kind text, OUT name text, OUT mode text, OUT granted boolean,
    OUT wait_start timestamptz, OUT cluster text, OUT host text, OUT port int,
    OUT database text, OUT pid int, OUT application_name text,
    OUT session_id text, OUT node text)
RETURNS SETOF record
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_waits() IS
'Every contender of every zksync lock and semaphore, every set barrier and double-barrier participant, and every wait for a barrier, under zksync.root, from ZooKeeper, any cluster or client; the PostgreSQL columns are NULL for other clients.';

CREATE FUNCTION zksync_blocking(int,
    OUT kind text, OUT name text, OUT mode text, OUT cluster text,
    OUT host text, OUT port int, OUT pid int, OUT application_name text)
RETURNS SETOF record
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_blocking(int) IS
'The contenders, on any cluster or client, that block the zksync wait of the local backend with this pid, as pg_blocking_pids() does for local locks.';

-- Operations (1.1): counters and the local view, from shared memory, with
-- no ZooKeeper call (they answer while the ensemble is down).

CREATE FUNCTION zksync_stats(
    OUT acquired bigint, OUT waited bigint, OUT wait_time_ms double precision,
    OUT timeouts bigint, OUT cancelled bigint, OUT deadlocks bigint,
    OUT lost bigint, OUT sessions_expired bigint, OUT reconnects bigint,
    OUT handoffs bigint, OUT untracked bigint, OUT stats_reset timestamptz)
RETURNS record
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_stats() IS
'This cluster''s zksync counters since stats_reset, over every recipe, from shared memory (needs shared_preload_libraries = ''zksync'').';

CREATE VIEW zksync_stats AS SELECT * FROM zksync_stats();
COMMENT ON VIEW zksync_stats IS
'One row: this cluster''s zksync counters since stats_reset (zksync_stats_reset() sets them to zero).';

CREATE FUNCTION zksync_stats_reset() RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_stats_reset() IS
'Set this cluster''s zksync counters to zero and stats_reset to now.';

CREATE FUNCTION zksync_local_locks(
    OUT pid int, OUT kind text, OUT name text, OUT mode text,
    OUT granted boolean, OUT state text, OUT since timestamptz,
    OUT token bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION zksync_local_locks() IS
'Every zksync hold and wait of every backend of this cluster, from shared memory; state is held, waiting, lost or releasing.';

CREATE VIEW zksync_local_locks AS SELECT * FROM zksync_local_locks();
COMMENT ON VIEW zksync_local_locks IS
'Every zksync hold and wait of every backend of this cluster, from shared memory with no ZooKeeper call: the zksync counterpart of pg_locks.';

-- Nobody but the owner may coordinate until a DBA says so (see README).
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
           JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
           JOIN pg_extension e ON e.oid = d.refobjid
           WHERE e.extname = 'zksync' AND d.deptype = 'e'
  LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$$;

-- Monitoring roles read the counters and the local view, as they read
-- pg_stat_database and pg_locks; resetting stays with the owner.
GRANT EXECUTE ON FUNCTION zksync_stats() TO pg_monitor;
GRANT EXECUTE ON FUNCTION zksync_local_locks() TO pg_monitor;
GRANT SELECT ON zksync_stats TO pg_monitor;
GRANT SELECT ON zksync_local_locks TO pg_monitor;
