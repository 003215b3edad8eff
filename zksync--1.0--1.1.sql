-- zksync 1.0 to 1.1: ALTER EXTENSION zksync UPDATE TO '1.1'.
\echo Use "ALTER EXTENSION zksync UPDATE TO '1.1'" to load this file. \quit

-- 1.1 shows barriers, double-barrier participants and barrier waits too.
COMMENT ON FUNCTION zksync_waits() IS
'Every contender of every zksync lock and semaphore, every set barrier and double-barrier participant, and every wait for a barrier, under zksync.root, from ZooKeeper, any cluster or client; the PostgreSQL columns are NULL for other clients.';

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

-- As a fresh 1.1 install: nobody but the owner may call the new functions
-- until a DBA says so; monitoring roles read the counters and the view.
REVOKE EXECUTE ON FUNCTION zksync_stats() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION zksync_stats_reset() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION zksync_local_locks() FROM PUBLIC;

-- Monitoring roles read the counters and the local view, as they read
-- pg_stat_database and pg_locks; resetting stays with the owner.
GRANT EXECUTE ON FUNCTION zksync_stats() TO pg_monitor;
GRANT EXECUTE ON FUNCTION zksync_local_locks() TO pg_monitor;
GRANT SELECT ON zksync_stats TO pg_monitor;
GRANT SELECT ON zksync_local_locks TO pg_monitor;
