# Session locks end at once when the backend exits (the ZooKeeper session is
# closed, not left to expire), and pg_terminate_backend of a waiter or a
# holder leaves no node behind.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# The contenders' nodes (a wait past deadlock_timeout also publishes an
# ephemeral record under {root}/waits, which is not one of them).
sub lock_nodes { return grep { m{/locks/} } zk_ephemerals(); }

my $node = new_node('exit', session_timeout => 10000);

# a holder that disconnects: the lock is free well before the 10 s timeout
my $holder = $node->background_psql('postgres');
$holder->query_safe("SELECT zksync_write_lock('exit')");
my $waiter = $node->background_psql('postgres');
$waiter->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock('exit');\n");
ok(poll_until(sub { scalar(lock_nodes()) == 2 }), 'waiter queued');
my $t0 = time;
$holder->quit;
$waiter->query_safe('SELECT 1');
my $took = time - $t0;
cmp_ok($took, '<', 1.0, sprintf('waiter granted %.3f s after the holder exited', $took));
is($waiter->query_safe("SELECT state FROM zksync_locks()"), 'held', 'waiter holds it');

# pg_terminate_backend of a waiter: its node goes with it
my $victim = $node->background_psql('postgres', on_error_stop => 0);
$victim->query_until(qr/queued/, "\\echo queued\nSELECT pg_backend_pid();\nSELECT zksync_write_lock('exit');\n");
ok(poll_until(sub { scalar(lock_nodes()) == 2 }), 'second waiter queued');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Extension'");
ok(poll_until(sub { scalar(lock_nodes()) == 1 }), 'terminated waiter left no node');
$victim->{run}->finish;

# pg_terminate_backend of the holder frees at once
my $other = $node->background_psql('postgres');
$other->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock('exit');\n");
ok(poll_until(sub { scalar(lock_nodes()) == 2 }), 'third waiter queued');
my $pid = $waiter->query_safe('SELECT pg_backend_pid()');
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$other->query_safe('SELECT 1');
$took = time - $t0;
cmp_ok($took, '<', 1.0, sprintf('granted %.3f s after the holder was terminated', $took));
$waiter->{run}->finish;
$other->quit;
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'nothing left once all are gone');

# pg_terminate_backend while waiting on the ensemble's answer for a while:
# an xact lock waiter in a transaction
$holder = $node->background_psql('postgres');
$holder->query_safe("SELECT zksync_write_lock('exit2')");
$victim = $node->background_psql('postgres', on_error_stop => 0);
$victim->query_until(qr/queued/, "\\echo queued\nBEGIN;\nSELECT zksync_xact_write_lock('exit2');\n");
ok(poll_until(sub { scalar(lock_nodes()) == 2 }), 'xact waiter queued');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Extension'");
ok(poll_until(sub { scalar(lock_nodes()) == 1 }), 'terminated xact waiter left no node');
$victim->{run}->finish;
$holder->quit;
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'clean at the end');

$node->stop;
done_testing();
