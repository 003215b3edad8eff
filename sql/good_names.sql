-- Names that are fine reach ZooKeeper and are held: 200 bytes, dots,
-- unicode outside the refused ranges.  (The refused ones are in bad_input,
-- which needs no ensemble.)
SELECT zksync_try_write_lock(repeat('x', 200));
SELECT zksync_try_write_lock('...');
SELECT zksync_try_write_lock('.hidden');
SELECT zksync_try_write_lock(E'caf\u00e9 \u2603 \uFFEF');
SELECT name, mode, session_count FROM zksync_locks() ORDER BY name;
SELECT zksync_unlock_all();
