-- The upgrade path: CREATE EXTENSION zksync VERSION '1.0' followed by ALTER
-- EXTENSION zksync UPDATE gives exactly what a fresh install gives: the same
-- members, signatures, properties, view definitions, comments and
-- privileges.  Both installs are described the same way and compared; no
-- text is written here, so a changed comment needs no change to this test,
-- only the same change in the fresh install script and the upgrade script.
-- Needs no ensemble: nothing here calls ZooKeeper.
--
-- One row per (object, property): every member of the extension, from
-- pg_depend; for functions their arguments (names, types, defaults),
-- identity, result, kind, language, volatility, parallel safety,
-- strictness, security, cost, rows, settings, C symbol and library; for
-- views their definition, columns and options; owners and ACLs; comments on
-- every member and its columns; the initial privileges pg_dump takes as
-- the extension's own; and the extension's own row.
CREATE TEMP VIEW zksync_shape (object, property, value) AS
WITH members AS (
  SELECT d.classid, d.objid, d.objsubid,
         pg_describe_object(d.classid, d.objid, d.objsubid) AS object
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
  WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
    AND e.extname = 'zksync')
SELECT object, 'member', (pg_identify_object(classid, objid, objsubid)).type
FROM members
UNION ALL
SELECT m.object, v.property, v.value
FROM members m
JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
CROSS JOIN LATERAL (VALUES
  ('arguments', pg_get_function_arguments(p.oid)),
  ('identity', pg_get_function_identity_arguments(p.oid)),
  ('result', pg_get_function_result(p.oid)),
  ('kind', p.prokind::text),
  ('language', (SELECT l.lanname::text FROM pg_language l WHERE l.oid = p.prolang)),
  ('volatility', p.provolatile::text),
  ('parallel', p.proparallel::text),
  ('strict', p.proisstrict::text),
  ('security definer', p.prosecdef::text),
  ('leakproof', p.proleakproof::text),
  ('cost', p.procost::text),
  ('rows', p.prorows::text),
  ('settings', p.proconfig::text),
  ('symbol', p.prosrc),
  ('library', p.probin),
  ('owner', p.proowner::regrole::text),
  ('acl', p.proacl::text)) AS v(property, value)
UNION ALL
SELECT m.object, v.property, v.value
FROM members m
JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
CROSS JOIN LATERAL (VALUES
  ('relkind', c.relkind::text),
  ('definition', pg_get_viewdef(c.oid)),
  ('columns', (SELECT string_agg(format('%I %s', a.attname,
                                        format_type(a.atttypid, a.atttypmod)),
                                 ', ' ORDER BY a.attnum)
               FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)),
  ('options', c.reloptions::text),
  ('owner', c.relowner::regrole::text),
  ('acl', c.relacl::text)) AS v(property, value)
UNION ALL
SELECT pg_describe_object(ds.classoid, ds.objoid, ds.objsubid), 'comment', ds.description
FROM members m
JOIN pg_description ds ON ds.classoid = m.classid AND ds.objoid = m.objid
UNION ALL
SELECT pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
       'initial privileges (' || ip.privtype::text || ')', ip.initprivs::text
FROM members m
JOIN pg_init_privs ip ON ip.classoid = m.classid AND ip.objoid = m.objid
UNION ALL
SELECT 'extension zksync', v.property, v.value
FROM pg_extension e
CROSS JOIN LATERAL (VALUES
  ('version', e.extversion),
  ('schema', e.extnamespace::regnamespace::text),
  ('owner', e.extowner::regrole::text),
  ('relocatable', e.extrelocatable::text),
  ('configuration', e.extconfig::text),
  ('comment', obj_description(e.oid, 'pg_extension'))) AS v(property, value)
WHERE e.extname = 'zksync';

-- A fresh install of the default version, described.  (The suite's
-- --load-extension made one; it is made again so that nothing an earlier
-- test did to it counts.)
DROP EXTENSION zksync;
CREATE EXTENSION zksync;
CREATE TEMP TABLE fresh AS SELECT * FROM zksync_shape;
SELECT extversion FROM pg_extension WHERE extname = 'zksync';
-- what was described: every member has a comment and an ACL
SELECT m.value AS member, count(*) AS members, count(c.object) AS commented,
       count(a.value) AS with_acl
FROM fresh m
LEFT JOIN fresh c ON c.object = m.object AND c.property = 'comment'
LEFT JOIN fresh a ON a.object = m.object AND a.property = 'acl' AND a.value IS NOT NULL
WHERE m.property = 'member'
GROUP BY m.value ORDER BY m.value;

-- The released 1.0, then the update.
DROP EXTENSION zksync;
CREATE EXTENSION zksync VERSION '1.0';
-- the members the update has to add
SELECT object FROM fresh WHERE property = 'member'
EXCEPT
SELECT object FROM zksync_shape WHERE property = 'member'
ORDER BY object;
ALTER EXTENSION zksync UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'zksync';

-- No difference either way: nothing the fresh install has and the updated
-- one lacks, nothing the updated one has that the fresh one lacks.
SELECT 'fresh install only' AS side, * FROM (
  SELECT * FROM fresh EXCEPT SELECT * FROM zksync_shape) f
UNION ALL
SELECT 'upgrade only', * FROM (
  SELECT * FROM zksync_shape EXCEPT SELECT * FROM fresh) u
ORDER BY object, property, side;
