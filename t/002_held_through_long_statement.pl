# A held lock stays held while the backend lives, whatever it does: through
# one statement that runs for more than three session timeouts, and while
# idle.  Another backend's try fails all along.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $timeout_ms = 2000;
my $node = new_node('long', session_timeout => $timeout_ms);

my $holder = $node->background_psql('postgres');
$holder->query_safe("SELECT zksync_write_lock('long')");
my $session = $holder->query_safe("SELECT session_id FROM zksync_session()");
my $granted = $holder->query_safe("SELECT timeout_ms FROM zksync_session()");
is($granted, $timeout_ms, 'the ensemble granted the asked session timeout');

# one statement longer than three session timeouts
my $sleep = 3.5 * $timeout_ms / 1000;
$holder->query_until(qr/sleeping/, "\\echo sleeping\nSELECT pg_sleep($sleep);\n");
my $start = time;
my ($tries, $won) = (0, 0);
while (time - $start < $sleep - 0.2)
{
	$tries++;
	$won++ if $node->safe_psql('postgres', "SELECT zksync_try_write_lock('long')") eq 't';
	sleep 0.25;
}
$holder->query_safe('SELECT 1');    # the sleep is over
ok($tries >= 10, "probed $tries times during the statement");
is($won, 0, 'no other backend got the lock during the long statement');
is($holder->query_safe("SELECT state FROM zksync_locks() WHERE name = 'long'"),
	'held', 'still held after the statement');
is($holder->query_safe("SELECT session_id FROM zksync_session()"),
	$session, 'same ZooKeeper session');
is(scalar(zk_ephemerals()), 1, 'the node is still in ZooKeeper');

# idle for three session timeouts
sleep 3 * $timeout_ms / 1000;
is($node->safe_psql('postgres', "SELECT zksync_try_write_lock('long')"),
	'f', 'still excluded after an idle spell of three session timeouts');
is($holder->query_safe("SELECT state FROM zksync_locks() WHERE name = 'long'"),
	'held', 'still held after idling');
$holder->query_safe("SELECT zksync_write_unlock('long')");
# the release reaches ZooKeeper within a round trip of the unlock
is($node->safe_psql('postgres', "SELECT zksync_try_write_lock('long', 5000)"),
	't', 'free once released');
$holder->quit;
$node->stop;
done_testing();
