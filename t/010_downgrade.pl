# Downgrade: a backend holding the write lock gets the read lock at once.
# If another backend's writer queued between our write and read nodes, our
# write node is kept when the write hold ends, so that writer cannot slip
# in beside our read hold; it gets the lock when the read hold ends too.
# Without a writer in between, the write node goes at once and readers
# may join.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('downgrade');
sub sq { return $node->safe_psql('postgres', $_[0]); }
my $queue = "SELECT string_agg(mode || ':' || CASE WHEN granted THEN 't' ELSE 'f' END, ' ' ORDER BY sequence) FROM zksync_lock_holders('dg')";

my $a = $node->background_psql('postgres');
my $b = $node->background_psql('postgres');

# a writer queued between the two nodes
$a->query_safe("SELECT zksync_write_lock('dg')");
$b->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock('dg');\n");
ok(poll_until(sub { sq($queue) eq 'write:t write:f' }), 'B queued behind A\'s write node');
$a->query_safe("SELECT zksync_read_lock('dg')");
is(sq($queue), 'write:t write:f read:f', 'A\'s read node comes after B');
$a->query_safe("SELECT zksync_write_unlock('dg')");
is($a->query_safe("SELECT string_agg(mode || ':' || state, ',' ORDER BY mode) FROM zksync_locks()"),
	'read:held', 'A holds only the read lock now');
# give a wrongly released B every chance to show up as granted
sleep 0.5;
is(sq($queue), 'write:t write:f read:f', 'A\'s write node is retained: B still waits');
is(sq("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'"), 1,
	'B is still waiting');
$a->query_safe("SELECT zksync_read_unlock('dg')");
$b->query_safe('SELECT 1');
ok(poll_until(sub { sq($queue) eq 'write:t' }), 'B gets the lock once A\'s read hold ends');
$b->query_safe("SELECT zksync_write_unlock('dg')");

# no writer in between: the write node goes at once, readers join
$a->query_safe("SELECT zksync_write_lock('dg'); SELECT zksync_read_lock('dg')");
$a->query_safe("SELECT zksync_write_unlock('dg')");
ok(poll_until(sub { sq($queue) eq 'read:t' }), 'without a writer in between, only the read node stays');
is(sq("SELECT zksync_try_read_lock('dg')"), 't', 'another reader joins');
is(sq("SELECT zksync_try_write_lock('dg')"), 'f', 'a writer is still excluded');
$a->query_safe("SELECT zksync_read_unlock('dg')");

$_->quit for ($a, $b);
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'no node left');
$node->stop;
done_testing();
