-- The install script revokes EXECUTE from PUBLIC; a GRANT lets a role in.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_may
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'zksync'
ORDER BY 1, 2;
-- every function is documented, volatile and parallel unsafe
SELECT p.proname, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented,
       p.provolatile, p.proparallel, p.proisstrict
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'zksync'
ORDER BY 1;
CREATE ROLE zksync_app;
SET ROLE zksync_app;
SELECT zksync_try_write_lock('priv');
RESET ROLE;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO zksync_app;
SET ROLE zksync_app;
-- a call that stays in this backend (taking a lock is in granted_role,
-- which needs the ensemble)
SELECT count(*) FROM zksync_locks();
RESET ROLE;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM zksync_app;
DROP ROLE zksync_app;
