-- A role granted EXECUTE on the lock functions takes and releases a lock in
-- ZooKeeper.  (Who may call what is in privileges, which needs no ensemble.)
CREATE ROLE zksync_app;
GRANT EXECUTE ON FUNCTION zksync_try_write_lock(text, int), zksync_write_unlock(text),
      zksync_locks() TO zksync_app;
SET ROLE zksync_app;
SELECT zksync_try_write_lock('priv');
SELECT name, mode, state FROM zksync_locks();
RESET ROLE;
SELECT mode, granted FROM zksync_lock_holders('priv');
SET ROLE zksync_app;
SELECT zksync_write_unlock('priv');
-- anything not granted stays refused
SELECT zksync_read_lock('priv');
RESET ROLE;
SELECT count(*) FROM zksync_lock_holders('priv');
REVOKE EXECUTE ON FUNCTION zksync_try_write_lock(text, int), zksync_write_unlock(text),
       zksync_locks() FROM zksync_app;
DROP ROLE zksync_app;
