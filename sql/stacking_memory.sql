-- Holds cost like advisory locks (SPEC point 16): stacking costs constant
-- memory per (name, mode, scope, savepoint level), a million stacked calls
-- in one transaction work, and the memory is back when it ends.
CREATE TEMP TABLE mem AS
  SELECT sum(total_bytes) AS before FROM pg_backend_memory_contexts;
BEGIN;
SELECT count(zksync_xact_write_lock('many')) FROM generate_series(1, 1000000);
SELECT name, mode, session_count, xact_count, state FROM zksync_locks();
-- three names interleaved: three holds
SELECT count(zksync_xact_read_lock('m' || (i % 3))) FROM generate_series(1, 300000) AS i;
SELECT name, xact_count FROM zksync_locks() ORDER BY name;
-- savepoints: counted per level, rolled back or passed up as a whole
SAVEPOINT a;
SELECT count(zksync_xact_write_lock('many')) FROM generate_series(1, 100000);
SELECT xact_count FROM zksync_locks() WHERE name = 'many';
ROLLBACK TO a;
SELECT xact_count FROM zksync_locks() WHERE name = 'many';
SAVEPOINT b;
SELECT count(zksync_xact_write_lock('many')) FROM generate_series(1, 100000);
SAVEPOINT c;
SELECT count(zksync_xact_write_lock('in-c')) FROM generate_series(1, 1000);
RELEASE SAVEPOINT c;
RELEASE SAVEPOINT b;
SELECT name, xact_count FROM zksync_locks() WHERE name IN ('many', 'in-c') ORDER BY name;
COMMIT;
SELECT count(*) FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('many');
-- memory is back (within 1 MB of where it was; the stack used to keep
-- about 600 bytes per call, 118 MB for 200000)
SELECT (SELECT sum(total_bytes) FROM pg_backend_memory_contexts) - before < 1024 * 1024
       AS memory_returned
FROM mem;
