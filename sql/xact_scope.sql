-- Transaction and savepoint scope follow advisory locks.
BEGIN;
SELECT zksync_xact_write_lock('x1');
SELECT zksync_try_xact_read_lock('x2');
SELECT name, mode, session_count, xact_count FROM zksync_locks() ORDER BY name;
-- transaction holds cannot be released early
SELECT zksync_write_unlock('x1');
COMMIT;
SELECT count(*) FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('x1');
BEGIN;
SELECT zksync_xact_write_lock('x1');
ROLLBACK;
SELECT count(*) FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('x1');
-- a session hold and a transaction hold of the same lock share one node
BEGIN;
SELECT zksync_write_lock('both');
SELECT zksync_xact_write_lock('both');
SELECT session_count, xact_count FROM zksync_locks();
COMMIT;
SELECT session_count, xact_count FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('both');
SELECT zksync_write_unlock('both');
SELECT count(*) FROM zksync_lock_holders('both');
-- savepoints: ROLLBACK TO ends what the savepoint took, RELEASE passes it up
BEGIN;
SELECT zksync_xact_write_lock('sp0');
SAVEPOINT a;
SELECT zksync_xact_write_lock('sp1');
SELECT zksync_xact_write_lock('sp0');
SELECT name, xact_count FROM zksync_locks() ORDER BY name;
ROLLBACK TO SAVEPOINT a;
SELECT name, xact_count FROM zksync_locks() ORDER BY name;
SELECT count(*) FROM zksync_lock_holders('sp1');
SAVEPOINT b;
SELECT zksync_xact_write_lock('sp2');
SAVEPOINT c;
SELECT zksync_xact_read_lock('sp3');
RELEASE SAVEPOINT c;
RELEASE SAVEPOINT b;
SAVEPOINT d;
SELECT name, xact_count FROM zksync_locks() ORDER BY name;
ROLLBACK TO SAVEPOINT d;   -- sp2 and sp3 now belong to the top transaction
SELECT name, xact_count FROM zksync_locks() ORDER BY name;
COMMIT;
SELECT count(*) FROM zksync_locks();
SELECT (SELECT count(*) FROM zksync_lock_holders('sp0')) +
       (SELECT count(*) FROM zksync_lock_holders('sp2')) +
       (SELECT count(*) FROM zksync_lock_holders('sp3')) AS nodes_left;
-- a session lock taken in a rolled-back transaction stays (as advisory locks do)
BEGIN;
SELECT zksync_write_lock('sess-in-xact');
ROLLBACK;
SELECT name, session_count FROM zksync_locks();
SELECT zksync_write_unlock('sess-in-xact');
-- an error inside a PL/pgSQL exception block ends that block's holds
DO $$
BEGIN
  BEGIN
    PERFORM zksync_xact_write_lock('plpgsql');
    RAISE EXCEPTION 'boom';
  EXCEPTION WHEN others THEN
    RAISE NOTICE 'caught; holds now: %', (SELECT count(*) FROM zksync_locks());
  END;
END $$;
-- PREPARE TRANSACTION with transaction holds is refused
BEGIN;
SELECT zksync_xact_write_lock('prep');
PREPARE TRANSACTION 'zksync_prep';
SELECT count(*) FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('prep');
-- without zksync transaction holds, PREPARE works
BEGIN;
CREATE TEMP TABLE IF NOT EXISTS nothing(x int);
ROLLBACK;
BEGIN;
SELECT 1;
PREPARE TRANSACTION 'zksync_prep_ok';
COMMIT PREPARED 'zksync_prep_ok';
