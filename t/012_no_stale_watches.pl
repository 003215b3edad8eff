# No watch is left on a path that is gone.  An exists watch set on a node
# that is already deleted stays in the server (and is re-sent by the
# client on every reconnect) until a node of that name is created again,
# which for a GUID-named lock node is never.  zksync waits for a node to
# go with a data watch, which ZooKeeper does not set on a missing node.
# Checked with ZooKeeper's own watch table (wchp, every server): after a
# barrier wait on a barrier that is not set, and after backends of two
# clusters churned one lock (each wait races the release of the node it
# is about to watch), every watched path under our root still exists.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = zk_root();
my $a = new_node('watch_a', session_timeout => 10000);
my $b = new_node('watch_b', session_timeout => 10000);

# path => the sessions watching it, under our root, from all servers
sub watched { return zk_watches("$root/"); }

# the session of a backend that stays open, so its watches stay too
my $waiter = $a->background_psql('postgres');
is($waiter->query_safe("SELECT zksync_barrier_wait('never-set', 1000)"), 't',
	'a barrier that is not set: the wait returns at once');
is($waiter->query_safe("SELECT zksync_barrier_is_set('never-set')"), 'f', 'still not set');
my $w = watched();
ok(!exists $w->{"$root/barriers/never-set"}, 'and no watch is left on its path')
  or diag explain $w;

# churn: three backends per cluster, hand-off off so that every wait goes
# through a ZooKeeper watch; each cycles the lock 60 times
my @sessions;
for my $node ($a, $b)
{
	for my $i (1 .. 3)
	{
		my $s = $node->background_psql('postgres');
		$s->query_safe("SET zksync.local_handoff = off");
		$s->query_until(qr/started/, qq{\\echo started
DO \$\$ BEGIN FOR i IN 1..60 LOOP PERFORM zksync_write_lock('churn'); PERFORM zksync_write_unlock('churn'); END LOOP; END \$\$;
\\echo churned
});
		push @sessions, $s;
	}
}
for my $s (@sessions)
{
	$s->query_until(qr/churned/, "");
}
ok(1, '6 backends on two clusters cycled one lock 60 times each');

# the sessions are open and idle: whatever they watch must exist
$w = watched();
my %exists = map { $_ => 1 } zk_nodes();
my @stale = grep { !$exists{$_} } keys %$w;
is(scalar(@stale), 0, 'no watch on a node that is gone, with every session still open')
  or diag explain \@stale;
note sprintf('%d watched paths under the root after the churn', scalar(keys %$w));

$_->quit for @sessions, $waiter;
done_testing();
