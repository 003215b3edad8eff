-- Every bad name of the SPEC, and NULLs, give an ERROR with a SQLSTATE.
\set VERBOSITY sqlstate
SELECT zksync_write_lock('');
SELECT zksync_write_lock(repeat('x', 201));
SELECT zksync_write_lock(repeat('é', 101));   -- 202 bytes
SELECT zksync_write_lock('.');
SELECT zksync_write_lock('..');
SELECT zksync_write_lock('a/b');
SELECT zksync_write_lock('/');
SELECT zksync_write_lock(E'a\x01b');
SELECT zksync_write_lock(E'\x1f');
SELECT zksync_write_lock(E'a\x7f');
SELECT zksync_write_lock(E'\u0085');
SELECT zksync_write_lock(E'\u009f');
SELECT zksync_write_lock(E'\uE000');
SELECT zksync_write_lock(E'\uF8FF');
SELECT zksync_write_lock(E'\uFFF0');
SELECT zksync_write_lock(E'\uFFFF');
SELECT zksync_write_lock(E'lock \U0001F512');  -- a surrogate pair to ZooKeeper
-- NULL arguments are errors, never a silent NULL
SELECT zksync_write_lock(NULL);
SELECT zksync_read_lock(NULL);
SELECT zksync_xact_write_lock(NULL);
SELECT zksync_xact_read_lock(NULL);
SELECT zksync_try_write_lock(NULL);
SELECT zksync_try_read_lock(NULL, 10);
SELECT zksync_try_xact_write_lock('ok', NULL);
SELECT zksync_try_xact_read_lock(NULL, NULL);
SELECT zksync_write_unlock(NULL);
SELECT zksync_read_unlock(NULL);
SELECT zksync_lock_token(NULL);
SELECT * FROM zksync_lock_holders(NULL);
SELECT zksync_try_write_lock('ok', -1);
-- bad names are refused by every function that takes one
SELECT zksync_read_unlock('a/b');
SELECT zksync_lock_token('..');
SELECT * FROM zksync_lock_holders('');
\set VERBOSITY default
-- the message names the problem
SELECT zksync_write_lock('a/b');
SELECT zksync_write_lock(E'a\x01b');
SELECT zksync_try_write_lock('x', NULL);
