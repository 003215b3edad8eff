# Multi-locks across two clusters: backends take random sets of four
# names, in random order, all or nothing, many times over.  No two callers
# deadlock (every backend finishes), and no two holders of one name
# overlap (each holder records its time inside, on its own cluster; the
# intervals are compared afterwards, on one machine clock).  A cancelled
# array wait, and one whose session is lost in the middle, leave no node
# and no partial hold.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = zk_root();
my @clusters = (new_node('multi_a', session_timeout => 2000), new_node('multi_b', session_timeout => 2000));
$_->safe_psql('postgres',
	'CREATE TABLE witness (name text, pid int, t_in timestamptz, t_out timestamptz)')
  for @clusters;

my $cycles = 40;
my @sessions;
for my $node (@clusters)
{
	for my $i (1 .. 3)
	{
		my $s = $node->background_psql('postgres');
		# half the backends wait through ZooKeeper only
		$s->query_safe("SET zksync.local_handoff = off") if $i == 3;
		$s->query_until(qr/started/, qq{\\echo started
SET statement_timeout = '120s';
DO \$\$
DECLARE
  names text[];
  t0 timestamptz;
BEGIN
  FOR i IN 1..$cycles LOOP
    SELECT array_agg(n ORDER BY random()) INTO names
      FROM unnest(ARRAY['a', 'b', 'c', 'd']) AS n WHERE random() < 0.6;
    CONTINUE WHEN names IS NULL;
    PERFORM zksync_write_lock(names);
    t0 := clock_timestamp();
    PERFORM pg_sleep(0.002);
    INSERT INTO witness SELECT n, pg_backend_pid(), t0, clock_timestamp() FROM unnest(names) AS n;
    PERFORM zksync_write_unlock(names);
  END LOOP;
END \$\$;
\\echo churned
});
		push @sessions, $s;
	}
}
my $done = 0;
for my $s (@sessions)
{
	$s->query_until(qr/churned/, "");
	$done++;
}
is($done, 6, "6 backends on two clusters took overlapping sets in random orders $cycles times each, none stuck");

# the intervals of every holder of each name, from both clusters
my %by_name;
my $rows = 0;
for my $node (@clusters)
{
	for my $line (split /\n/, $node->safe_psql('postgres',
		"SELECT name, pid, extract(epoch FROM t_in), extract(epoch FROM t_out) FROM witness"))
	{
		my ($name, $pid, $in, $out) = split /\|/, $line;
		push @{ $by_name{$name} }, [ $in, $out, $node->name . "/$pid" ];
		$rows++;
	}
}
my $overlaps = 0;
for my $name (keys %by_name)
{
	my @iv = sort { $a->[0] <=> $b->[0] } @{ $by_name{$name} };
	for my $k (1 .. $#iv)
	{
		if ($iv[$k][0] < $iv[ $k - 1 ][1])
		{
			$overlaps++;
			diag "overlap on $name: $iv[$k-1][2] until $iv[$k-1][1], $iv[$k][2] from $iv[$k][0]";
		}
	}
}
ok($rows > 50, "the witness saw $rows holds");
is($overlaps, 0, 'no two holders of a name overlapped');
ok(poll_until(sub { scalar(grep { m{/locks/} && m{/_c_} } zk_nodes()) == 0 }),
	'no node left after the churn');

# a cancelled array wait: it held a and b, and waited for c
my $x = $clusters[0]->background_psql('postgres');
# the cancelled backend must live on, or its session's end would hide a leak
my $y = $clusters[0]->background_psql('postgres', on_error_stop => 0);
$x->query_safe("SELECT zksync_write_lock('c')");
my $pid = $y->query_safe('SELECT pg_backend_pid()');
$y->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock(ARRAY['a', 'b', 'c']);\n");
ok( poll_until(sub {
		$clusters[0]->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND wait_event_type = 'Extension'") == 1
		  && scalar(grep { m{/locks/[ab]/_c_} } zk_nodes()) == 2 }),
	'the array wait holds a and b and waits for c');
$clusters[0]->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok(poll_until(sub { scalar(grep { m{/locks/[abc]/_c_} } zk_nodes()) == 1 }, 10),
	'after the cancel only the holder of c has a node');
# query, not query_safe: the cancelled statement's ERROR comes first
like($y->query('SELECT count(*) FROM zksync_locks()'), qr/^0$/m, 'and the cancelled backend holds nothing');

# a lost session in the middle: it held a and b, waited for c, and was
# stopped past its session timeout
my $z = $clusters[1]->background_psql('postgres', on_error_stop => 0);
my $zpid = $z->query_safe('SELECT pg_backend_pid()');
$z->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock(ARRAY['a', 'b', 'c']);\n");
ok( poll_until(sub {
		$clusters[1]->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $zpid AND wait_event_type = 'Extension'") == 1
		  && scalar(grep { m{/locks/[ab]/_c_} } zk_nodes()) == 2 }),
	'another array wait holds a and b and waits for c');
kill 'STOP', $zpid;
my $expired = poll_until(sub { scalar(grep { m{/locks/[ab]/_c_} } zk_nodes()) == 0 }, 20);
kill 'CONT', $zpid;
ok($expired, 'stopped past its session timeout, its nodes went with the session');
$x->query_safe("SELECT zksync_unlock_all()");
like($z->query('SELECT count(*) FROM zksync_locks()'), qr/^0$/m,
	'the call failed and the backend holds nothing, not a partial set');
like($z->{stderr}, qr/expired|disappeared/, 'it was told the session expired');
ok(poll_until(sub { scalar(grep { m{/locks/[abc]/_c_} } zk_nodes()) == 0 }, 10), 'no node left');
$_->quit for @sessions, $x, $y, $z;
done_testing();
