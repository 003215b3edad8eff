-- Barriers in one backend: set, unset, is_set, wait with and without timeout.
SELECT zksync_barrier_is_set('gate');
SELECT zksync_barrier_wait('gate');          -- not set: true at once
SELECT zksync_barrier_wait('gate', 0);
SELECT zksync_barrier_set('gate');           -- this call set it
SELECT zksync_barrier_set('gate');           -- already set
SELECT zksync_barrier_is_set('gate');
SELECT zksync_barrier_wait('gate', 0);       -- set: false at once
SELECT zksync_barrier_wait('gate', 150);     -- set: false after the timeout
SELECT zksync_barrier_unset('gate');         -- this call removed it
SELECT zksync_barrier_unset('gate');         -- it was not set
SELECT zksync_barrier_is_set('gate');
SELECT zksync_barrier_wait('gate', 150);
-- a barrier outlives the transaction that set it, also one that rolls back
BEGIN;
SELECT zksync_barrier_set('gate2');
ROLLBACK;
SELECT zksync_barrier_is_set('gate2');
SELECT zksync_barrier_unset('gate2');
-- a barrier and a lock of the same name are different things
SELECT zksync_barrier_set('same');
SELECT zksync_try_write_lock('same');
SELECT zksync_write_unlock('same');
SELECT zksync_barrier_unset('same');
-- double barrier of one: enter and exit pass at once
SELECT zksync_dbarrier_enter('solo', 1);
SELECT zksync_dbarrier_exit('solo');
-- an enter that times out returns false, having left
SELECT zksync_dbarrier_enter('pair', 2, 200);
SELECT zksync_dbarrier_exit('pair');         -- not entered any more: ERROR
-- misuse
\set VERBOSITY sqlstate
SELECT zksync_barrier_set(NULL);
SELECT zksync_barrier_unset(NULL);
SELECT zksync_barrier_is_set(NULL);
SELECT zksync_barrier_wait(NULL);
SELECT zksync_barrier_wait('gate', -1);
SELECT zksync_barrier_set('a/b');
SELECT zksync_barrier_wait('..', 10);
SELECT zksync_dbarrier_enter(NULL, 2);
SELECT zksync_dbarrier_enter('x', NULL);
SELECT zksync_dbarrier_enter('x', 2, -5);
SELECT zksync_dbarrier_enter('', 2);
SELECT zksync_dbarrier_exit(NULL);
SELECT zksync_dbarrier_exit('x', -1);
\set VERBOSITY default
SELECT zksync_dbarrier_enter('x', 0);
SELECT zksync_dbarrier_enter('x', -3);
SELECT zksync_dbarrier_exit('never-entered');
SELECT zksync_dbarrier_enter('twice', 1);
SELECT zksync_dbarrier_enter('twice', 1);
SELECT zksync_dbarrier_exit('twice');
SELECT zksync_dbarrier_exit('twice');
