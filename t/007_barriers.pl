# Barriers across backends: one unset releases every waiter; a barrier
# outlives the backend that set it; of two racing setters exactly one wins.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('barrier');
sub sq { return $node->safe_psql('postgres', $_[0]); }
sub extension_waits
{
	return sq("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'");
}

# five waiters, one unset
is(sq("SELECT zksync_barrier_set('gate')"), 't', 'barrier set');
my @waiters = map { $node->background_psql('postgres') } 1 .. 5;
$_->query_until(qr/waiting/, "\\echo waiting\nSELECT zksync_barrier_wait('gate');\n") for @waiters;
ok(poll_until(sub { extension_waits() == 5 }), 'five backends wait on the barrier');
is(sq("SELECT zksync_barrier_unset('gate')"), 't', 'one unset');
ok(poll_until(sub { extension_waits() == 0 }), 'all five are released');
$_->quit for @waiters;

# a waiter with a timeout gives up with false while the barrier stays set
sq("SELECT zksync_barrier_set('gate')");
is(sq("SELECT zksync_barrier_wait('gate', 300)"), 'f', 'wait with timeout returns false');

# the barrier outlives the backend that set it
my $setter = $node->background_psql('postgres');
$setter->query_safe("SELECT zksync_barrier_set('outlives')");
$setter->quit;
is(sq("SELECT zksync_barrier_is_set('outlives')"), 't', 'still set after the setter disconnected');
is(sq("SELECT zksync_barrier_wait('outlives', 200)"), 'f', 'and still holds waiters');
is(sq("SELECT zksync_barrier_unset('outlives')"), 't', 'anyone may unset it');
sq("SELECT zksync_barrier_unset('gate')");

# racing setters: both released by one unset of 'go', both set 'race'
for my $round (1 .. 5)
{
	sq("SELECT zksync_barrier_set('go')");
	my @racers = map { $node->background_psql('postgres') } 1 .. 2;
	$_->query_until(qr/ready/,
		"\\echo ready\nSELECT zksync_barrier_wait('go'); SELECT zksync_barrier_set('race');\n")
	  for @racers;
	poll_until(sub { extension_waits() == 2 });
	sq("SELECT zksync_barrier_unset('go')");
	my @won = map { (split /\n/, $_->query_safe('SELECT 1'))[-2] } @racers;
	is(join(',', sort @won), 'f,t', "round $round: exactly one racer set the barrier");
	sq("SELECT zksync_barrier_unset('race')");
	$_->quit for @racers;
}

# an interrupted wait ends cleanly
sq("SELECT zksync_barrier_set('gate')");
my ($out, $err) = ('', '');
$node->psql('postgres', "SET statement_timeout = '200ms'; SELECT zksync_barrier_wait('gate')",
	stdout => \$out, stderr => \$err);
like($err, qr/statement timeout/, 'statement_timeout ends a barrier wait');
sq("SELECT zksync_barrier_unset('gate')");

is(scalar(zk_ephemerals()), 0, 'no ephemeral node left');
is(join(',', grep { m{/barriers/} } zk_nodes()), '', 'no barrier left set');
$node->stop;
done_testing();
