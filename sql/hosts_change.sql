-- zksync.hosts changes with an ensemble: after an unreachable one, RESET
-- reaches the configured ensemble again; a changed setting applies to the
-- next session, not to the one that holds locks.  (The check hooks and the
-- unreachable ERROR itself are in gucs, which needs no ensemble.)
SET zksync.hosts = '127.0.0.1:1';
SET zksync.connect_timeout = 300;
\set VERBOSITY sqlstate
SELECT zksync_write_lock('unreachable');
\set VERBOSITY default
RESET zksync.hosts;
RESET zksync.connect_timeout;
SELECT zksync_try_write_lock('reachable-again');
SELECT state FROM zksync_session();
SELECT zksync_unlock_all();
-- a changed zksync.hosts applies to the next session: while this backend
-- holds a lock it keeps its session, and the lock stays held
SELECT zksync_write_lock('kept-across-change');
CREATE TEMP TABLE s AS SELECT session_id FROM zksync_session();
SET zksync.hosts = '127.0.0.1:1';
SET zksync.connect_timeout = 300;
SELECT zksync_try_write_lock('still-same-session');
SELECT session_id = (SELECT session_id FROM s) AS same_session FROM zksync_session();
SELECT name, state FROM zksync_locks() ORDER BY name;
SELECT zksync_unlock_all();
-- nothing held any more: the next call uses the new setting
\set VERBOSITY sqlstate
SELECT zksync_try_write_lock('now-unreachable');
\set VERBOSITY default
RESET zksync.hosts;
RESET zksync.connect_timeout;
SELECT zksync_try_write_lock('back');
SELECT zksync_unlock_all();
