-- Bounded footprint (SPEC point 18): one backend holds or waits with at
-- most zksync.max_holds nodes; past it, SQLSTATE 53400 with a hint, and
-- nothing is taken.  Stacking is free.
SHOW zksync.max_holds;
SET zksync.max_holds = 3;
SELECT zksync_write_lock('mh1'), zksync_write_lock('mh2'), zksync_read_lock('mh3');
\set VERBOSITY sqlstate
SELECT zksync_write_lock('mh4');
SELECT zksync_try_write_lock('mh4');
SELECT zksync_xact_write_lock('mh4');
\set VERBOSITY default
SELECT zksync_write_lock('mh4');
-- nothing half-taken: no hold, no node
SELECT name, mode, session_count, state FROM zksync_locks() ORDER BY name, mode;
SELECT count(*) FROM zksync_lock_holders('mh4');
-- taking a held lock again is free
SELECT zksync_write_lock('mh1'), zksync_read_lock('mh3');
SELECT name, mode, session_count FROM zksync_locks() ORDER BY name, mode;
-- a downgrade is a node of its own
SELECT zksync_read_lock('mh1');
-- a loop over rows stops at the bound, and the transaction takes nothing
BEGIN;
SELECT count(zksync_xact_write_lock('row-' || i)) FROM generate_series(1, 100) AS i;
ROLLBACK;
SELECT count(*) FROM zksync_locks();
-- after a release there is room again
SELECT zksync_write_unlock('mh2');
SELECT zksync_write_lock('mh4');
SELECT zksync_unlock_all();
SELECT count(*) FROM zksync_locks();
RESET zksync.max_holds;
-- only superusers may change it
CREATE ROLE zksync_holds_user;
SET ROLE zksync_holds_user;
SET zksync.max_holds = 1000000;
RESET ROLE;
DROP ROLE zksync_holds_user;
SET zksync.max_holds = 0;
