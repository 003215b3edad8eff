# No herd: with 20 backends waiting for one write lock, ZooKeeper's own
# watch table (the wchp four-letter word, from every server) shows each
# waiter watching only its predecessor: no node watched by two sessions.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('herd');
my $root = zk_root();
my $n = 20;

my $holder = $node->background_psql('postgres');
$holder->query_safe("SELECT zksync_write_lock('herd')");
my @waiters;
for my $i (1 .. $n)
{
	my $s = $node->background_psql('postgres');
	$s->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock('herd');\n");
	push @waiters, $s;
	# queued in this order, so that the waiters can be released in it below
	poll_until(sub {
		$node->safe_psql('postgres', "SELECT count(*) FROM zksync_lock_holders('herd')") == $i + 1 });
}
ok( poll_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'")
			  == $n;
		}),
	"$n backends wait");

# watches under our lock, per path, from all servers, but for the owner's
# own watch on the node it holds or waits with (a held node is watched by
# its holder, so that a delete by another client is noticed)
sub watchers
{
	my $w = zk_watches("$root/locks/herd/");
	my $owners = zk_owners("$root/locks/herd");
	for my $path (keys %$w)
	{
		delete $w->{$path}{ $owners->{$path} } if defined $owners->{$path};
		delete $w->{$path} unless %{ $w->{$path} };
	}
	return $w;
}

my $w;
ok(poll_until(sub { $w = watchers(); scalar(keys %$w) == $n }),
	"$n lock nodes are watched") or diag explain $w;
my @crowded = grep { scalar(keys %{ $w->{$_} }) > 1 } keys %$w;
is(scalar(@crowded), 0, 'no node is watched by more than one session')
  or diag explain { map { $_ => $w->{$_} } @crowded };
my %sessions = map { %{ $w->{$_} } } keys %$w;
is(scalar(keys %sessions), $n, "$n different sessions watch");

# the holder's node is watched by exactly one waiter, and the newest node
# by nobody
# (only the lock's: a wait past deadlock_timeout also publishes itself
# under $root/waits, for deadlock detection)
my @nodes = sort { substr($a, -10) <=> substr($b, -10) } zk_ephemerals("$root/locks/herd");
is(scalar(@nodes), $n + 1, 'holder plus waiters in ZooKeeper');
ok(exists $w->{ $nodes[0] }, 'the holder is watched');
my $own = zk_owners("$root/locks/herd");
ok(exists zk_watches("$root/locks/herd/")->{ $nodes[0] }{ $own->{ $nodes[0] } },
	'and the holder watches its own node');
ok(!exists $w->{ $nodes[-1] }, 'the last waiter is watched by nobody');

# release: the waiters go through one by one
$holder->query_safe("SELECT zksync_write_unlock('herd')");
for my $s (@waiters)
{
	# whoever holds it now lets go; order is checked in 001_fifo_order
	poll_until(sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM zksync_lock_holders('herd') WHERE granted") == 1 });
}
$_->query_safe("SELECT zksync_write_unlock('herd')") for @waiters;
$_->quit for (@waiters, $holder);
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'all nodes gone');
$node->stop;
done_testing();
