-- Unlocked means unlocked (SPEC point 13): with zksync.synchronous_release
-- on, the default, a release returns once ZooKeeper has applied the delete,
-- so another backend's try-lock right after it succeeds, with no retry
-- loop.  The other backend is a dblink connection to this database: it
-- never waits, so nothing is handed to it inside the cluster; it asks
-- ZooKeeper (its own session, possibly on another server).
SHOW zksync.synchronous_release;
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s',
       current_database(), split_part(current_setting('unix_socket_directories'), ',', 1),
       current_setting('port')));
-- one statement in the other backend, its one result as text
CREATE FUNCTION other(statement text) RETURNS text LANGUAGE sql AS $$
  SELECT t FROM dblink('other', statement) AS r(t text)
$$;
-- session unlock, 100 times: the other backend gets the lock every time
DO $$
DECLARE
  missed int := 0;
BEGIN
  FOR i IN 1..100 LOOP
    PERFORM zksync_write_lock('visible');
    PERFORM zksync_write_unlock('visible');
    IF other('SELECT zksync_try_write_lock(''visible'')')::boolean THEN
      PERFORM other('SELECT zksync_write_unlock(''visible'')');
    ELSE
      missed := missed + 1;
    END IF;
  END LOOP;
  RAISE NOTICE 'session unlock: the other backend missed the lock % times in 100', missed;
END $$;
-- the end of a transaction is a release too
CREATE FUNCTION xact_cycle() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM zksync_xact_write_lock('visible-xact');
END $$;
DO $$
DECLARE
  missed int := 0;
BEGIN
  FOR i IN 1..50 LOOP
    -- a transaction of its own in the other backend
    PERFORM other('SELECT xact_cycle()');
    IF other('SELECT count(*) FROM zksync_locks()') <> '0' THEN
      RAISE EXCEPTION 'the transaction hold outlived its transaction';
    END IF;
    IF zksync_try_write_lock('visible-xact') THEN
      PERFORM zksync_write_unlock('visible-xact');
    ELSE
      missed := missed + 1;
    END IF;
  END LOOP;
  RAISE NOTICE 'transaction end: this backend missed the lock % times in 50', missed;
END $$;
-- zksync_unlock_all() and DISCARD ALL (in the other backend) likewise
SELECT other('SELECT (zksync_write_lock(''v1''), zksync_read_lock(''v2''))');
SELECT other('SELECT zksync_unlock_all()');
SELECT zksync_try_write_lock('v1') AS v1, zksync_try_write_lock('v2') AS v2;
SELECT zksync_unlock_all();
SELECT other('SELECT zksync_write_lock(''v3'')');
SELECT dblink_exec('other', 'DISCARD ALL');
SELECT zksync_try_write_lock('v3') AS v3;
SELECT zksync_unlock_all();
-- a release that was applied leaves nothing in zksync_locks()
SELECT count(*) FROM zksync_locks();
-- anyone may turn it off (fire-and-forget releases), and it refuses non-booleans
SET zksync.synchronous_release = 'sometimes';
SET zksync.synchronous_release = off;
SELECT zksync_write_lock('async'), zksync_write_unlock('async');
RESET zksync.synchronous_release;
SELECT dblink_disconnect('other');
DROP FUNCTION other(text);
DROP EXTENSION dblink;
