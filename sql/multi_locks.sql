-- Multi-locks: the lock functions over an array of names, all or nothing.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s',
       current_database(), split_part(current_setting('unix_socket_directories'), ',', 1),
       current_setting('port')));
CREATE FUNCTION other(statement text) RETURNS text LANGUAGE sql AS $$
  SELECT t FROM dblink('other', statement) AS r(t text)
$$;
-- every name held, each an ordinary hold; duplicates count once
SELECT zksync_write_lock(ARRAY['m-b', 'm-a', 'm-b']);
SELECT name, mode, session_count, xact_count, state FROM zksync_locks() ORDER BY name;
SELECT (SELECT count(*) FROM zksync_lock_holders('m-a')) AS a_nodes,
       (SELECT count(*) FROM zksync_lock_holders('m-b')) AS b_nodes;
-- another backend is kept out of each
SELECT other('SELECT zksync_try_write_lock(''m-a'')') AS a, other('SELECT zksync_try_write_lock(''m-b'')') AS b;
-- stacking by array, unlock one by one and by array
SELECT zksync_write_lock(ARRAY['m-a', 'm-c']);
SELECT name, session_count FROM zksync_locks() ORDER BY name;
SELECT zksync_write_unlock('m-a');
SELECT zksync_write_unlock(ARRAY['m-a', 'm-b', 'm-c']);
SELECT count(*) FROM zksync_locks();
-- unlocking names not held: false, a WARNING for each
SELECT zksync_write_unlock(ARRAY['m-a', 'never']);
-- all or nothing: one name is taken elsewhere, so none is taken here
SELECT other('SELECT zksync_write_lock(''m-busy'')');
SELECT zksync_try_write_lock(ARRAY['m-free1', 'm-busy', 'm-free2']);
SELECT zksync_try_write_lock(ARRAY['m-free1', 'm-busy', 'm-free2'], 200);
SELECT count(*) FROM zksync_locks();
SELECT (SELECT count(*) FROM zksync_lock_holders('m-free1')) +
       (SELECT count(*) FROM zksync_lock_holders('m-free2')) AS nodes_left,
       (SELECT count(*) FROM zksync_lock_holders('m-busy')) AS busy_nodes;
-- lock_timeout bounds the whole call, and leaves nothing either
SET lock_timeout = '200ms';
\set VERBOSITY sqlstate
SELECT zksync_write_lock(ARRAY['m-free1', 'm-busy']);
\set VERBOSITY default
RESET lock_timeout;
SELECT count(*) FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('m-free1') AS nodes_left;
-- readers share: the other backend's read lock does not keep our readers out
SELECT other('SELECT zksync_read_lock(''m-shared'')');
SELECT zksync_try_read_lock(ARRAY['m-shared', 'm-free1']);
SELECT name, mode FROM zksync_locks() ORDER BY name;
SELECT zksync_read_unlock(ARRAY['m-shared', 'm-free1']);
-- once free, the names are taken together
SELECT other('SELECT zksync_write_unlock(''m-busy'')');
SELECT zksync_try_write_lock(ARRAY['m-free1', 'm-busy', 'm-free2']);
SELECT name FROM zksync_locks() ORDER BY name;
SELECT zksync_unlock_all();
-- transaction scope and savepoints, as for one name
BEGIN;
SELECT zksync_xact_write_lock(ARRAY['m-x1', 'm-x2']);
SAVEPOINT s;
SELECT zksync_try_xact_read_lock(ARRAY['m-x3', 'm-x4']);
SELECT name, xact_count FROM zksync_locks() ORDER BY name;
ROLLBACK TO s;
SELECT name, xact_count FROM zksync_locks() ORDER BY name;
COMMIT;
SELECT count(*) FROM zksync_locks();
-- downgrade inside an array; an upgrade is refused before anything is taken
SELECT zksync_write_lock('m-d');
SELECT zksync_read_lock(ARRAY['m-d', 'm-e']);
SELECT name, mode FROM zksync_locks() ORDER BY name, mode;
SELECT zksync_write_lock(ARRAY['m-f', 'm-e']);
SELECT name, mode FROM zksync_locks() ORDER BY name, mode;
SELECT zksync_unlock_all();
-- zksync.max_holds counts the new names of the array; nothing is taken past it
SET zksync.max_holds = 3;
SELECT zksync_write_lock(ARRAY['m-1', 'm-2', 'm-3', 'm-4']);
SELECT count(*) FROM zksync_locks();
SELECT zksync_write_lock(ARRAY['m-1', 'm-2', 'm-3']);
SELECT zksync_write_lock(ARRAY['m-1', 'm-2', 'm-3']);   -- stacking is free
SELECT zksync_unlock_all();
RESET zksync.max_holds;
-- bad arrays: each refused with a message that names the problem
SELECT zksync_write_lock('{}'::text[]);
SELECT zksync_write_lock(NULL::text[]);
SELECT zksync_write_lock(ARRAY['ok', NULL]);
SELECT zksync_try_write_lock(ARRAY['ok', '..']);
SELECT zksync_xact_read_lock(ARRAY[['a', 'b'], ['c', 'd']]);
SELECT zksync_write_unlock(ARRAY['ok', 'a/b']);
SELECT zksync_try_write_lock(ARRAY['ok'], -1);
SELECT count(*) FROM zksync_locks();
SELECT other('SELECT zksync_unlock_all()');
SELECT dblink_disconnect('other');
DROP FUNCTION other(text);
DROP EXTENSION dblink;
