# 2000 lock cycles on one session: no stall (ZOOKEEPER-4537 would cost 2/3
# of the session timeout and a connection loss), same session throughout.
# Then the server this backend talks to is stopped: the next call goes on
# through another server on the same session, the held lock stays held,
# and the ZooKeeper client's own log lines stay out of the server log.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $timeout_ms = 10000;
my $node = new_node('cycles', session_timeout => $timeout_ms);
my $s = $node->background_psql('postgres');

my $session = $s->query_safe(
	"SELECT zksync_try_write_lock('warm'), zksync_write_unlock('warm'); SELECT session_id FROM zksync_session()");
$session = (split /\n/, $session)[-1];
my $worst = $s->query_safe(q{
DO $$
DECLARE t0 timestamptz; worst float8 := 0;
BEGIN
  FOR i IN 1..2000 LOOP
    t0 := clock_timestamp();
    PERFORM zksync_write_lock('cycles');
    PERFORM zksync_write_unlock('cycles');
    worst := greatest(worst, extract(epoch FROM clock_timestamp() - t0) * 1000);
  END LOOP;
  PERFORM set_config('zksync_test.worst', worst::text, false);
END $$;
SELECT current_setting('zksync_test.worst')::float8::int;
});
note "worst of 2000 cycles: $worst ms";
cmp_ok($worst, '<', $timeout_ms / 2, "no cycle stalled (worst $worst ms)");
is($s->query_safe("SELECT session_id FROM zksync_session()"), $session,
	'same session after 2000 cycles');

# stop the server we are connected to, with a lock held
$s->query_safe("SELECT zksync_write_lock('kept')");
my $server = $s->query_safe("SELECT server FROM zksync_session()");
my ($port) = $server =~ /:(\d+)$/;
my @ports = map { /:(\d+)$/ ? $1 : () } split /,/, zk_hosts();
my ($index) = grep { $ports[$_] == $port } 0 .. $#ports;
ok(defined $index, "connected to ensemble member at $server");
is(system(zk_script(), 'stop1', $index + 1), 0, 'that server is stopped');
is($s->query_safe("SELECT zksync_try_write_lock('after-stop', 5000)"), 't',
	'a lock call goes through another server');
isnt($s->query_safe("SELECT server FROM zksync_session()"), $server, 'moved to another server');
is($s->query_safe("SELECT session_id FROM zksync_session()"), $session, 'on the same session');
is($s->query_safe("SELECT string_agg(name || ':' || state, ',' ORDER BY name) FROM zksync_locks()"),
	'after-stop:held,kept:held', 'both locks held');
is($node->safe_psql('postgres', "SELECT zksync_try_write_lock('kept')"), 'f',
	'the lock held across the move still excludes others');
is(system(zk_script(), 'start1', $index + 1), 0, 'that server is back');
$s->query_safe('SELECT zksync_unlock_all()');
$s->quit;

my $log = slurp_file($node->logfile);
unlike($log, qr/ZOO_(INFO|WARN|ERROR|DEBUG)/, 'no ZooKeeper client lines in the server log');
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'no node left');
$node->stop;
done_testing();
