-- Stacking, downgrade, upgrade, unlock and introspection in one backend.
-- (Exclusion between backends is in the isolation specs.)
SELECT zksync_write_lock('stack');
SELECT zksync_write_lock('stack');
SELECT zksync_xact_write_lock('stack');   -- autocommit: ends with the statement
SELECT name, mode, session_count, xact_count, state, node IS NOT NULL AS has_node,
       token > 0 AS has_token
FROM zksync_locks();
-- one node per (name, mode), whatever the count
SELECT mode, granted, owner::json->>'database' AS db FROM zksync_lock_holders('stack');
SELECT zksync_write_unlock('stack');
SELECT session_count FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('stack');
SELECT zksync_write_unlock('stack');
SELECT count(*) FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('stack');
-- unlocking what is not held: false and a WARNING
SELECT zksync_write_unlock('stack');
SELECT zksync_read_unlock('never-taken');
-- downgrade: holding write, read is granted at once; both nodes exist
SELECT zksync_write_lock('grade');
SELECT zksync_read_lock('grade');
SELECT mode, session_count, state FROM zksync_locks() ORDER BY mode;
SELECT mode, granted FROM zksync_lock_holders('grade') ORDER BY sequence;
-- dropping the write hold leaves the read hold, alone
SELECT zksync_write_unlock('grade');
SELECT mode, session_count, state FROM zksync_locks() ORDER BY mode;
SELECT mode, granted FROM zksync_lock_holders('grade') ORDER BY sequence;
-- upgrade from read to write would wait for itself: ERROR, at once
SELECT zksync_write_lock('grade');
SELECT zksync_try_write_lock('grade', 1000);
SELECT zksync_xact_write_lock('grade');
-- the read hold is intact after the refused upgrade
SELECT mode, session_count, state FROM zksync_locks() ORDER BY mode;
SELECT zksync_read_unlock('grade');
SELECT count(*) FROM zksync_lock_holders('grade');
-- readers stack too
SELECT zksync_read_lock('r'), zksync_read_lock('r'), zksync_try_read_lock('r');
SELECT mode, session_count FROM zksync_locks();
-- zksync_unlock_all ends every session hold
SELECT zksync_write_lock('w1'), zksync_write_lock('w2');
SELECT zksync_unlock_all();
SELECT count(*) FROM zksync_locks();
SELECT (SELECT count(*) FROM zksync_lock_holders('r')) +
       (SELECT count(*) FROM zksync_lock_holders('w1')) +
       (SELECT count(*) FROM zksync_lock_holders('w2')) AS nodes_left;
-- DISCARD ALL too
SELECT zksync_write_lock('discard'), zksync_read_lock('discard2');
DISCARD ALL;
SELECT count(*) FROM zksync_locks();
SELECT count(*) FROM zksync_lock_holders('discard');
SELECT count(*) FROM zksync_lock_holders('discard2');
-- the fencing token is the creation zxid: it grows from holder to holder
SELECT zksync_lock_token('tok') IS NULL AS none_yet;
SELECT zksync_write_lock('tok');
CREATE TEMP TABLE tokens AS SELECT zksync_lock_token('tok') AS t;
SELECT zksync_write_unlock('tok');
SELECT zksync_write_lock('tok');
SELECT zksync_lock_token('tok') > (SELECT t FROM tokens) AS increased;
SELECT zksync_write_unlock('tok');
