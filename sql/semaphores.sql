-- Semaphores: at most max_leases leases at once; a backend may hold several.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s',
       current_database(), split_part(current_setting('unix_socket_directories'), ',', 1),
       current_setting('port')));
CREATE FUNCTION other(statement text) RETURNS text LANGUAGE sql AS $$
  SELECT t FROM dblink('other', statement) AS r(t text)
$$;
SELECT zksync_semaphore_acquire('sem', 3) AS first, zksync_semaphore_acquire('sem', 3) AS second;
SELECT other('SELECT zksync_semaphore_acquire(''sem'', 3, 0)') AS other_third;
-- full: nobody else gets one, within a timeout or at once
SELECT zksync_semaphore_acquire('sem', 3, 200) AS fourth;
SELECT other('SELECT zksync_semaphore_acquire(''sem'', 3, 0)') AS other_fourth;
-- every lease, from ZooKeeper; this backend's leases in zksync_locks()
SELECT count(*) AS leases, bool_and(granted) AS all_granted, count(*) FILTER (WHERE owner <> '') AS ours
FROM zksync_semaphore_leases('sem');
SELECT name, mode, session_count, xact_count, state FROM zksync_locks();
-- a release makes room for one more, anywhere
SELECT zksync_semaphore_release('sem');
SELECT other('SELECT zksync_semaphore_acquire(''sem'', 3, 0)') AS other_again;
SELECT zksync_semaphore_acquire('sem', 3, 0) AS full_again;
-- a count that disagrees is an ERROR naming both
SELECT zksync_semaphore_acquire('sem', 4, 0);
-- releasing what is not held: false and a WARNING
SELECT zksync_semaphore_release('not-held');
SELECT other('SELECT zksync_unlock_all()');
SELECT zksync_unlock_all();
SELECT count(*) FROM zksync_semaphore_leases('sem');
SELECT count(*) FROM zksync_locks();
-- transaction leases end with the transaction, and with ROLLBACK TO
BEGIN;
SELECT zksync_xact_semaphore_acquire('xsem', 2);
SAVEPOINT s;
SELECT zksync_xact_semaphore_acquire('xsem', 2);
SELECT count(*) FROM zksync_locks();
ROLLBACK TO s;
SELECT count(*) FROM zksync_locks();
-- a transaction lease cannot be released early
SELECT zksync_semaphore_release('xsem');
COMMIT;
SELECT count(*) FROM zksync_locks();
SELECT count(*) FROM zksync_semaphore_leases('xsem');
-- DISCARD ALL ends session leases
SELECT zksync_semaphore_acquire('dsem', 1);
DISCARD ALL;
SELECT count(*) FROM zksync_locks();
-- leases count toward zksync.max_holds
SET zksync.max_holds = 2;
SELECT zksync_write_lock('one-lock');
SELECT zksync_semaphore_acquire('msem', 5);
SELECT zksync_semaphore_acquire('msem', 5);
SELECT zksync_unlock_all();
RESET zksync.max_holds;
-- bad input
SELECT zksync_semaphore_acquire('sem', 0);
SELECT zksync_semaphore_acquire('sem', NULL);
SELECT zksync_semaphore_acquire(NULL, 1);
SELECT zksync_semaphore_acquire('a/b', 1);
SELECT zksync_semaphore_acquire('sem', 1, -5);
SELECT zksync_semaphore_release(NULL);
SELECT count(*) FROM zksync_semaphore_leases('never-used');
SELECT dblink_disconnect('other');
DROP FUNCTION other(text);
DROP EXTENSION dblink;
