-- Settings: check hooks refuse bad values with a clear message.
LOAD 'zksync';
SET zksync.hosts = '';
SET zksync.hosts = 'localhost';
SET zksync.hosts = 'localhost:0';
SET zksync.hosts = 'localhost:70000';
SET zksync.hosts = 'a:1,,b:2';
SET zksync.hosts = 'a b:2181';
SET zksync.hosts = 'localhost:2181/';
SET zksync.hosts = 'localhost:2181/x/../y';
SET zksync.root = '';
SET zksync.root = 'zksync';
SET zksync.root = '/';
SET zksync.root = '/zksync/';
SET zksync.root = '/a//b';
SET zksync.root = '/zookeeper';
SET zksync.root = E'/a\x01';
SET zksync.session_timeout = 10;
SET zksync.connect_timeout = 0;
SET zksync.local_handoff = 'sometimes';
SET zksync.lock_layout = 'kazoo';
SET zksync.lock_layout = '';
-- good values are taken
SET zksync.hosts = 'zk1.example:2181,[::1]:2182/chroot/app';
SET zksync.root = '/apps/zksync';
SET zksync.session_timeout = '30s';
SHOW zksync.session_timeout;
SHOW zksync.lock_layout;
SET zksync.lock_layout = 'GO';
SHOW zksync.lock_layout;
RESET zksync.lock_layout;
RESET zksync.hosts;
RESET zksync.root;
RESET zksync.session_timeout;
-- only superusers may point zksync elsewhere; anyone may set connect_timeout
CREATE ROLE zksync_guc_user;
SET ROLE zksync_guc_user;
SET zksync.hosts = 'localhost:2181';
SET zksync.root = '/elsewhere';
SET zksync.session_timeout = 5000;
SET zksync.lock_layout = 'go';
SET zksync.connect_timeout = 500;
SET zksync.local_handoff = off;
SHOW zksync.local_handoff;
RESET ROLE;
DROP ROLE zksync_guc_user;
-- the zksync prefix is reserved: a typo is an error, not a silent placeholder
SET zksync.host = 'x:1';
-- an unreachable ensemble is an ERROR of class 08 after connect_timeout
SET zksync.hosts = '127.0.0.1:1';
SET zksync.connect_timeout = 300;
\set VERBOSITY sqlstate
SELECT zksync_write_lock('unreachable');
\set VERBOSITY default
SELECT zksync_write_lock('unreachable');
SELECT state FROM zksync_session();
-- zksync.auth is a secret: a bad value is not echoed, and nobody can read
-- it back (not even members of pg_read_all_settings)
SET zksync.auth = 'no-colon-s3cret';
SET zksync.auth = 'zkuser:s3cret';
SHOW zksync.auth;
SELECT current_setting('zksync.auth');
CREATE ROLE zksync_settings_reader;
GRANT pg_read_all_settings TO zksync_settings_reader;
SET ROLE zksync_settings_reader;
SHOW zksync.auth;
SELECT count(*) FROM pg_settings WHERE name = 'zksync.auth';
RESET ROLE;
DROP ROLE zksync_settings_reader;
RESET zksync.auth;
SHOW zksync.auth;
