# Semaphores across two clusters: three backends (two clusters) against
# max_leases = 2 cycle leases; an independent witness (each holder records
# its time inside, compared afterwards on one machine clock) never sees
# more than two inside at once, and sees two at once now and then (it is
# a semaphore, not a mutex).  A cancelled wait leaves no node; a lease
# lost while its backend was stopped past the session timeout refuses
# COMMIT.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

my $root = zk_root();
my @clusters = (new_node('sem_a', session_timeout => 2000), new_node('sem_b', session_timeout => 2000));
$_->safe_psql('postgres', 'CREATE TABLE witness (pid int, t_in timestamptz, t_out timestamptz)')
  for @clusters;

my @sessions;
for my $node ($clusters[0], $clusters[0], $clusters[1])
{
	my $s = $node->background_psql('postgres');
	$s->query_until(qr/started/, q{\echo started
SET statement_timeout = '120s';
DO $$
DECLARE
  t0 timestamptz;
BEGIN
  FOR i IN 1..30 LOOP
    PERFORM zksync_semaphore_acquire('pool', 2);
    t0 := clock_timestamp();
    PERFORM pg_sleep(0.01);
    INSERT INTO witness VALUES (pg_backend_pid(), t0, clock_timestamp());
    PERFORM zksync_semaphore_release('pool');
  END LOOP;
END $$;
\echo churned
});
	push @sessions, $s;
}
$_->query_until(qr/churned/, '') for @sessions;
ok(1, 'three backends on two clusters cycled 30 leases each against max_leases 2');

# the most holders inside at once, from both clusters' records
my @events;
for my $node (@clusters)
{
	for my $line (split /\n/, $node->safe_psql('postgres',
		'SELECT extract(epoch FROM t_in), extract(epoch FROM t_out) FROM witness'))
	{
		my ($in, $out) = split /\|/, $line;
		push @events, [ $in, 1 ], [ $out, -1 ];
	}
}
# at equal times an exit sorts before an entry
@events = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @events;
my ($inside, $most) = (0, 0);
for my $e (@events)
{
	$inside += $e->[1];
	$most = $inside if $inside > $most;
}
is(scalar(@events), 180, 'the witness saw 90 leases');
ok($most <= 2, "never more than two inside at once (most: $most)");
is($most, 2, 'and two at once now and then: a semaphore, not a mutex');
ok(poll_until(sub { scalar(grep { m{/semaphores/pool/.+/_c_} } zk_nodes()) == 0 }),
	'no lease or mutex node left');

# a cancelled wait: two leases held, a third backend waits and is cancelled
my ($h1, $h2) = map { $clusters[0]->background_psql('postgres') } 1 .. 2;
$_->query_safe("SELECT zksync_semaphore_acquire('full', 2)") for $h1, $h2;
my $w = $clusters[1]->background_psql('postgres', on_error_stop => 0);
my $pid = $w->query_safe('SELECT pg_backend_pid()');
$w->query_until(qr/queued/, "\\echo queued\nSELECT zksync_semaphore_acquire('full', 2);\n");
ok( poll_until(sub {
		$clusters[1]->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND wait_event_type = 'Extension'") == 1
		  && scalar(grep { m{/semaphores/full/leases/_c_} } zk_nodes()) == 3 }),
	'the third backend waits, its lease node made');
$clusters[1]->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok( poll_until(sub {
		scalar(grep { m{/semaphores/full/leases/_c_} } zk_nodes()) == 2
		  && scalar(grep { m{/semaphores/full/locks/_c_} } zk_nodes()) == 0 }, 10),
	'after the cancel: two lease nodes, no mutex node');
like($w->query('SELECT count(*) FROM zksync_locks()'), qr/^0$/m, 'and the cancelled backend holds nothing');
$_->query_safe('SELECT zksync_unlock_all()') for $h1, $h2;

# a lease lost while its backend was stopped past the session timeout
my $x = $clusters[0]->background_psql('postgres', on_error_stop => 0);
my $xpid = $x->query_safe('SELECT pg_backend_pid()');
$x->query_safe('BEGIN');
$x->query_safe("SELECT zksync_xact_semaphore_acquire('lost', 1)");
$x->query_safe('INSERT INTO witness VALUES (0, now(), now())');
kill 'STOP', $xpid;
my $gone = poll_until(sub { scalar(grep { m{/semaphores/lost/leases/_c_} } zk_nodes()) == 0 }, 20);
kill 'CONT', $xpid;
ok($gone, 'the stopped backend\'s session expired: its lease node is gone');
is($clusters[0]->safe_psql('postgres', "SELECT zksync_semaphore_acquire('lost', 1, 5000)"), 't',
	'another backend takes the lease');
$x->query('COMMIT');
like($x->{stderr}, qr/cannot commit: a lease of zksync semaphore "lost" was lost/,
	'the stopped backend\'s COMMIT fails, naming the lease');
is($clusters[0]->safe_psql('postgres', 'SELECT count(*) FROM witness WHERE pid = 0'), '0',
	'and nothing it wrote is visible');
$_->quit for @sessions, $h1, $h2, $w, $x;
done_testing();
