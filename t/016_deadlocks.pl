# Deadlocks that run through ZooKeeper, on two clusters of one ensemble.
# With deadlock_timeout = 200ms:
#
#  1. two jobs (one per cluster) take write locks a and b in opposite
#     orders: exactly one (the youngest wait, the one that closed the
#     cycle) gets 40P01 soon after the cycle forms, with both waits in its
#     DETAIL; the other gets its lock; nothing is left in ZooKeeper;
#  2. a cycle of three (a -> b -> c -> a) over both clusters: one 40P01,
#     the other two go on;
#  3. a cycle through a lock and a semaphore;
#  4. a cycle through a row lock of one cluster: the zksync waiter gets
#     40P01 and the UPDATE it blocked completes; and the same across two
#     clusters, where the victim cannot see the row lock itself and is
#     told through a mark;
#  5. log_lock_waits logs long zksync waits with the holder, and their end;
#  6. no false positive: twelve backends churn on three locks for ten
#     seconds with deadlock_timeout = 10ms (FIFO queues, hand-offs, arrays,
#     nested locks in one order, readers) and nobody gets 40P01;
#  7. a node on its way out (a release not yet applied, a create being
#     hunted) is no edge: another client's wait record says which of its
#     nodes are leaving, and a cycle through one of them is none; a node
#     of one's own that stays is one (a second lease of a semaphore of 1).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use ZkSyncJobs;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use IPC::Run;

my $root = zk_root();
my $timeout_s = 0.2;    # deadlock_timeout of both clusters
my $A = new_node('dl_a');
my $B = new_node('dl_b');
for my $node ($A, $B)
{
	$node->append_conf('postgresql.conf', "deadlock_timeout = '200ms'\nlog_lock_waits = on\n");
	$node->reload;
	ok(poll_until(sub { $node->safe_psql('postgres', 'SHOW deadlock_timeout') eq '200ms' }),
		$node->name . ': deadlock_timeout is 200ms');
}
my %cid = map { $_->name => $_->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()') }
  ($A, $B);
isnt($cid{dl_a}, $cid{dl_b}, 'the two clusters have different system identifiers');

# Jobs: background psql sessions whose statements run asynchronously
# (ZkSyncJobs.pm)


# Does $j wait for zksync lock or semaphore $name (its node made, not
# granted, and the backend waiting)?  Asked on its own cluster.
sub waits_for
{
	my ($j, $name) = @_;
	return $j->{node}->safe_psql('postgres', qq{
SELECT count(*) FROM pg_stat_activity a
 WHERE a.pid = $j->{pid} AND a.wait_event_type = 'Extension'
   AND EXISTS (SELECT 1 FROM zksync_waits() w
                WHERE w.pid = a.pid AND w.cluster = '$j->{cluster}'
                  AND w.name = '$name' AND NOT w.granted)}) == 1;
}

# Start the statement that closes a cycle in $closer, then wait until one
# of @jobs (the closer among them) gets 40P01.  Returns how long that took,
# in seconds, counted from before the statement was sent (undef: none did
# within 15 s).
sub close_cycle
{
	my ($closer, $sql, @jobs) = @_;
	my $t0 = time;
	start($closer, $sql);
	return undef unless poll_until(sub { grep { done($_) && deadlocked($_) } @jobs }, 15);
	return time - $t0;
}

# Was $took (from close_cycle) within $limit seconds?
sub in_time
{
	my ($took, $limit, $what) = @_;
	ok(defined $took && $took < $limit,
		sprintf('%s (%s s)', $what, defined $took ? sprintf('%.3f', $took) : 'none'));
	return;
}

# Nodes of this test's root under the lock and semaphore directories, and
# published waits and deadlock marks
sub contenders { return grep { m{^\Q$root\E/(locks|semaphores)/.*/_c_} } zk_nodes(); }
sub wait_records { return grep { m{^\Q$root\E/(waits|deadlocks)/.} } zk_nodes(); }

# What is left, for a failure's diagnostics
sub leftovers
{
	return join("\n", 'nodes:', zk_nodes(), 'zksync_waits():',
		$A->safe_psql('postgres', 'SELECT * FROM zksync_waits()'));
}

# The DETAIL line of a zksync wait, as the contract words it
sub zk_line
{
	my ($waiter, $what, $holder) = @_;
	return "Process $waiter->{pid} on cluster $waiter->{label} waits for zksync $what; "
	  . "blocked by process $holder->{pid} on cluster $holder->{label}.";
}

# Does the 40P01 of $j list exactly these lines, each once (in any order)?
sub detail_lists
{
	my ($j, @lines) = @_;
	my $err = error($j);
	my ($detail) = $err =~ /^DETAIL:  (.*?)\n(?:HINT|LOCATION|psql|[A-Z]+:  )/ms;
	if (!defined $detail)
	{
		diag "no DETAIL in: $err";
		return 0;
	}
	my @got = sort split /\n/, $detail;
	my @want = sort @lines;
	return 1 if join("\n", @got) eq join("\n", @want);
	diag "DETAIL:\n$detail\nwanted:\n" . join("\n", @want);
	return 0;
}

# ---------------------------------------------------------------------
# 1. Two jobs, two clusters, a and b in opposite orders
# ---------------------------------------------------------------------
{
	my $j1 = job($A, 'job1');
	my $j2 = job($B, 'job2');
	run($j1, "BEGIN; SELECT zksync_xact_write_lock('a')");
	run($j2, "BEGIN; SELECT zksync_xact_write_lock('b')");
	my $j1_session = run($j1, 'SELECT session_id FROM zksync_session()');
	like($j1_session, qr/^0x[0-9a-f]+$/, 'job1 has a ZooKeeper session');
	start($j1, "SELECT zksync_xact_write_lock('b')");
	ok(poll_until(sub { waits_for($j1, 'b') }), 'job1 (cluster A) holds a and waits for b');
	is( $A->safe_psql('postgres', "SELECT string_agg(concat_ws('|', kind, name, mode, cluster, pid, application_name), ';')
	                               FROM zksync_blocking($j1->{pid})"),
		"lock|b|write|$j2->{cluster}|$j2->{pid}|job2",
		'zksync_blocking() on A names job2 on cluster B as what job1 waits for');
	ok(poll_until(sub { grep { $_ eq "$root/waits/$j1_session" } zk_nodes() }),
		'past deadlock_timeout job1 has published its wait');

	my $took = close_cycle($j2, "SELECT zksync_xact_write_lock('a')", $j1, $j2);
	ok(poll_until(sub { done($j1) && done($j2) }, 30), 'both jobs\' lock calls ended');
	my @victims = grep { deadlocked($_) } ($j1, $j2);
	is(scalar(@victims), 1, 'exactly one job got 40P01 deadlock detected')
	  or diag "job1: " . error($j1) . "\njob2: " . error($j2);
	is(join(',', map { $_->{name} } @victims), 'job2', 'the victim is the youngest wait: job2, which closed the cycle');
	in_time($took, $timeout_s + 1, 'within deadlock_timeout + 1 s of the cycle forming');
	ok( detail_lists(
			$j2,
			zk_line($j1, 'write lock "b"', $j2),
			zk_line($j2, 'write lock "a"', $j1)),
		'its DETAIL lists both waits, with processes and clusters');
	is(error($j1), '', 'job1 got no error');
	settle($_) for $j1, $j2;
	is(run($j1, "SELECT string_agg(name || ':' || mode || ':' || state, ',' ORDER BY name) FROM zksync_locks()"),
		'a:write:held,b:write:held', 'job1 got b, before job2 even rolled back: it holds a and b');
	run($j2, 'ROLLBACK');
	is(run($j2, 'SELECT count(*) FROM zksync_locks()'), '0', 'job2, rolled back, holds nothing');
	run($j1, 'COMMIT');
	ok(poll_until(sub { !contenders() && !wait_records() }),
		'with both sessions still open, no contender, published wait or mark is left')
	  or diag leftovers();
	$_->{s}->quit for $j1, $j2;
	ok(poll_until(sub { !contenders() && !wait_records() }), 'nor once both sessions ended')
	  or diag leftovers();
}

# ---------------------------------------------------------------------
# 2. A cycle of three over two clusters: k1 -> k2 -> k3 -> k1
# ---------------------------------------------------------------------
{
	my $k1 = job($A, 'ring1');
	my $k2 = job($B, 'ring2');
	my $k3 = job($A, 'ring3');
	run($k1, "BEGIN; SELECT zksync_xact_write_lock('ring_a')");
	run($k2, "BEGIN; SELECT zksync_xact_write_lock('ring_b')");
	run($k3, "BEGIN; SELECT zksync_xact_write_lock('ring_c')");
	start($k1, "SELECT zksync_xact_write_lock('ring_b')");
	ok(poll_until(sub { waits_for($k1, 'ring_b') }), 'ring1 (A) waits for ring_b, held by ring2 (B)');
	start($k2, "SELECT zksync_xact_write_lock('ring_c')");
	ok(poll_until(sub { waits_for($k2, 'ring_c') }), 'ring2 (B) waits for ring_c, held by ring3 (A)');
	my $took = close_cycle($k3, "SELECT zksync_xact_write_lock('ring_a')", $k1, $k2, $k3);
	# k2 gets ring_c once k3's transaction aborted
	ok(poll_until(sub { done($k2) && done($k3) }, 30), 'ring2 and ring3 ended their lock calls');
	my @victims = grep { done($_) && deadlocked($_) } ($k1, $k2, $k3);
	is(join(',', map { $_->{name} } @victims), 'ring3',
		'exactly one 40P01, for the youngest wait (ring3)')
	  or diag join("\n", map { "$_->{name}: " . error($_) } $k1, $k2, $k3);
	in_time($took, $timeout_s + 1, 'within deadlock_timeout + 1 s of the cycle forming');
	ok( detail_lists(
			$k3,
			zk_line($k1, 'write lock "ring_b"', $k2),
			zk_line($k2, 'write lock "ring_c"', $k3),
			zk_line($k3, 'write lock "ring_a"', $k1)),
		'its DETAIL lists the three waits');
	is(error($k2), '', 'ring2 got ring_c');
	ok(!done($k1) && poll_until(sub { waits_for($k1, 'ring_b') }, 5),
		'ring1 still waits for ring2\'s ring_b (between its scans)');
	settle($_) for $k2, $k3;
	run($k3, 'ROLLBACK');
	run($k2, 'COMMIT');
	ok(poll_until(sub { done($k1) }, 30), 'once ring2 commits, ring1 gets ring_b');
	is(error($k1), '', 'without error');
	settle($k1);
	run($k1, 'COMMIT');
	ok(poll_until(sub { !contenders() && !wait_records() }), 'nothing left in ZooKeeper')
	  or diag leftovers();
	$_->{s}->quit for $k1, $k2, $k3;
}

# ---------------------------------------------------------------------
# 3. A lock and a semaphore
# ---------------------------------------------------------------------
{
	my $m1 = job($A, 'sem_holder');
	my $m2 = job($B, 'lock_holder');
	is(run($m1, "SELECT zksync_semaphore_acquire('sem', 1)"), 't', 'sem_holder (A) holds the only lease of sem');
	run($m2, "SELECT zksync_write_lock('lk')");
	start($m1, "SELECT zksync_write_lock('lk')");
	ok(poll_until(sub { waits_for($m1, 'lk') }), 'sem_holder waits for lock lk, held by lock_holder (B)');
	my $took = close_cycle($m2, "SELECT zksync_semaphore_acquire('sem', 1)", $m1, $m2);
	ok(done($m2) && deadlocked($m2), 'lock_holder, waiting for the lease, gets 40P01')
	  or diag "sem_holder: " . error($m1) . "\nlock_holder: " . error($m2);
	ok(!done($m1), 'sem_holder still waits: lock_holder\'s session lock outlives the error');
	in_time($took, $timeout_s + 1, 'within deadlock_timeout + 1 s of the cycle forming');
	ok( detail_lists(
			$m2,
			zk_line($m1, 'write lock "lk"', $m2),
			zk_line($m2, 'semaphore "sem"', $m1)),
		'its DETAIL lists the lock wait and the semaphore wait');
	is( scalar(grep { m{/semaphores/sem/leases/_c_} } contenders()) . '/'
		  . scalar(grep { m{/semaphores/sem/locks/_c_} } contenders()),
		'1/0', 'the victim left neither a lease nor a mutex node: only sem_holder\'s lease');
	settle($m2);
	is(run($m2, "SELECT string_agg(name || ':' || mode, ',') FROM zksync_locks()"), 'lk:write',
		'the victim holds its lock, and no lease');
	run($m2, "SELECT zksync_write_unlock('lk')");
	ok(poll_until(sub { done($m1) }, 30), 'once it lets go, sem_holder gets lk');
	is(error($m1), '', 'without error');
	settle($m1);
	run($m1, 'SELECT zksync_unlock_all()');
	ok(poll_until(sub { !contenders() && !wait_records() }), 'nothing left in ZooKeeper')
	  or diag leftovers();
	$_->{s}->quit for $m1, $m2;
}

# ---------------------------------------------------------------------
# 4. Through a row lock
# ---------------------------------------------------------------------
$_->safe_psql('postgres', 'CREATE TABLE acct (id int PRIMARY KEY, v int); INSERT INTO acct VALUES (1, 0)')
  for $A, $B;

# sub waits for a PostgreSQL lock that $holder's transaction holds
sub waits_for_pg
{
	my ($j, $holder) = @_;
	return $j->{node}->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $j->{pid} AND wait_event_type = 'Lock'
		   AND pg_blocking_pids(pid) = ARRAY[$holder->{pid}]") == 1;
}

# 4a. one cluster: p1 holds x, waits for p2's row; p2 waits for x
{
	my $p1 = job($A, 'row_waiter');
	my $p2 = job($A, 'row_holder');
	run($p2, 'BEGIN');
	run($p2, 'UPDATE acct SET v = v + 1 WHERE id = 1');
	my $xid = run($p2, 'SELECT pg_current_xact_id()');
	run($p1, "BEGIN; SELECT zksync_xact_write_lock('x')");
	start($p1, 'UPDATE acct SET v = v + 10 WHERE id = 1');
	ok(poll_until(sub { waits_for_pg($p1, $p2) }), 'row_waiter holds zksync x and waits for row_holder\'s row');
	my $took = close_cycle($p2, "SELECT zksync_xact_write_lock('x')", $p1, $p2);
	ok(done($p2) && deadlocked($p2), 'row_holder, waiting for zksync x, gets 40P01')
	  or diag "row_holder: " . error($p2);
	in_time($took, $timeout_s + 1, 'within deadlock_timeout + 1 s of the cycle forming');
	ok( detail_lists(
			$p2,
			zk_line($p2, 'write lock "x"', $p1),
			"Process $p1->{pid} on cluster $p1->{label} waits for ShareLock on transaction $xid; blocked by process $p2->{pid}."),
		'its DETAIL lists the zksync wait and the row lock wait');
	ok(poll_until(sub { done($p1) }, 30), 'row_waiter\'s UPDATE completes: row_holder\'s transaction has ended');
	is(error($p1), '', 'without error');
	settle($_) for $p1, $p2;
	run($p2, 'ROLLBACK');
	run($p1, 'COMMIT');
	is($A->safe_psql('postgres', 'SELECT v FROM acct WHERE id = 1'), '10',
		'row_waiter\'s update is in, row_holder\'s is not');
	ok(poll_until(sub { !contenders() && !wait_records() }), 'nothing left in ZooKeeper')
	  or diag leftovers();
	$_->{s}->quit for $p1, $p2;
}

# 4b. two clusters: q1 (A) holds x and waits for q2's row (A); q2 waits
# for y, held by q3 (B); q3 waits for x.  q3 is the youngest wait, and
# cannot see A's row lock: A's scan leaves it a mark.
{
	my $q1 = job($A, 'q1');
	my $q2 = job($A, 'q2');
	my $q3 = job($B, 'q3');
	run($q3, "BEGIN; SELECT zksync_xact_write_lock('y')");
	run($q1, "BEGIN; SELECT zksync_xact_write_lock('x')");
	run($q2, 'BEGIN');
	run($q2, 'UPDATE acct SET v = v + 1 WHERE id = 1');
	my $xid = run($q2, 'SELECT pg_current_xact_id()');
	start($q1, 'UPDATE acct SET v = v + 100 WHERE id = 1');
	ok(poll_until(sub { waits_for_pg($q1, $q2) }), 'q1 (A) holds x and waits for the row of q2 (A)');
	start($q2, "SELECT zksync_xact_write_lock('y')");
	ok(poll_until(sub { waits_for($q2, 'y') }), 'q2 waits for y, held by q3 (B)');
	my $took = close_cycle($q3, "SELECT zksync_xact_write_lock('x')", $q1, $q2, $q3);
	ok(poll_until(sub { done($q2) && done($q3) }, 30), 'q2 and q3 ended their lock calls');
	my @victims = grep { done($_) && deadlocked($_) } ($q1, $q2, $q3);
	is(join(',', map { $_->{name} } @victims), 'q3', 'exactly one 40P01, for the youngest wait (q3, on B)')
	  or diag join("\n", map { "$_->{name}: " . error($_) } $q1, $q2, $q3);
	# q2's scans (about every second) find the cycle and confirm it, q3
	# reads the mark at its next scan: two scan periods, and a second to
	# spare
	in_time($took, $timeout_s + 3, 'within deadlock_timeout + 3 s of the cycle forming');
	ok( detail_lists(
			$q3,
			zk_line($q3, 'write lock "x"', $q1),
			"Process $q1->{pid} on cluster $q1->{label} waits for ShareLock on transaction $xid; blocked by process $q2->{pid}.",
			zk_line($q2, 'write lock "y"', $q3)),
		'its DETAIL lists the three waits, the row lock of cluster A among them');
	is(error($q2), '', 'q2 got y');
	settle($_) for $q2, $q3;
	run($q3, 'ROLLBACK');
	ok(!done($q1), 'q1 still waits for q2\'s row');
	run($q2, 'COMMIT');
	ok(poll_until(sub { done($q1) }, 30), 'once q2 commits, q1\'s UPDATE completes');
	is(error($q1), '', 'without error');
	settle($q1);
	run($q1, 'COMMIT');
	is($A->safe_psql('postgres', 'SELECT v FROM acct WHERE id = 1'), '111', 'both updates are in');
	ok(poll_until(sub { !contenders() && !wait_records() }), 'nothing left in ZooKeeper, no mark either')
	  or diag leftovers();
	$_->{s}->quit for $q1, $q2, $q3;
}

# ---------------------------------------------------------------------
# 5. log_lock_waits
# ---------------------------------------------------------------------
{
	my $offset = -s $A->logfile;
	my $h = job($B, 'logged_holder');
	my $w = job($A, 'logged_waiter');
	run($h, "SELECT zksync_write_lock('logged')");
	start($w, "SELECT zksync_write_lock('logged')");
	ok(poll_until(sub { waits_for($w, 'logged') }), 'a backend of A waits for a lock held on B');
	my $still = qr/LOG:  process $w->{pid} still waiting for zksync write lock "logged" after (\d+\.\d{3}) ms\n[^\n]*DETAIL:  Blocked by process $h->{pid} on cluster \Q$h->{label}\E\.\n/;
	ok(poll_until(sub { slurp_file($A->logfile, $offset) =~ $still }, 10),
		'A\'s log: "still waiting for zksync write lock", DETAIL naming the holder\'s process and cluster (cluster_name and identifier)')
	  or diag slurp_file($A->logfile, $offset);
	my ($waited) = slurp_file($A->logfile, $offset) =~ $still;
	ok(defined $waited && $waited >= 200, 'logged at deadlock_timeout (' . ($waited // '?') . ' ms)');
	unlike(slurp_file($A->logfile, $offset), qr/acquired zksync write lock "logged"/, 'no "acquired" line yet');
	run($h, "SELECT zksync_write_unlock('logged')");
	ok(poll_until(sub { done($w) }, 30), 'the waiter gets the lock once the holder lets go');
	my $acquired = qr/LOG:  process $w->{pid} acquired zksync write lock "logged" after (\d+\.\d{3}) ms\n/;
	ok(poll_until(sub { slurp_file($A->logfile, $offset) =~ $acquired }, 10),
		'A\'s log: "acquired zksync write lock ... after"')
	  or diag slurp_file($A->logfile, $offset);
	my ($total) = slurp_file($A->logfile, $offset) =~ $acquired;
	ok(defined $total && defined $waited && $total >= $waited, 'after longer than it had waited when first logged');
	settle($w);
	run($w, 'SELECT zksync_unlock_all()');
	$_->{s}->quit for $h, $w;
	# the semaphore wait of part 3 was logged too
	like(slurp_file($B->logfile), qr/process \d+ still waiting for zksync semaphore "sem" after \d+\.\d{3} ms/,
		'B\'s log has part 3\'s semaphore wait');
}

# ---------------------------------------------------------------------
# 6. No false positive: twelve backends churn on three locks
# ---------------------------------------------------------------------
{
	my $seconds = 10;
	$_->safe_psql('postgres', 'CREATE TABLE churned (pid int, kind int, cycles int);
	                           CREATE TABLE deadlocks (pid int, kind int, detail text)')
	  for $A, $B;
	my %offset = map { $_->name => -s $_->logfile } $A, $B;
	my @sessions;
	for my $i (0 .. 11)
	{
		my $node = $i % 2 ? $B : $A;
		my $kind = int($i / 2) % 4;
		my $s = $node->background_psql('postgres');
		# a third of the backends wait through ZooKeeper only (no hand-off)
		$s->query_safe('SET zksync.local_handoff = off') if $i % 3 == 2;
		# kind 0: one write lock, mostly the same one (long FIFO queues,
		#         hand-offs); 1: all or nothing arrays in random orders;
		# 2: nested write locks, one by one in name order; 3: the same
		# with read and write locks mixed
		$s->query_until(qr/started/, qq{\\echo started
SET deadlock_timeout = '10ms';
SET statement_timeout = '120s';
DO \$\$
DECLARE
  names text[];
  modes text[];
  n text;
  k int;
  cycles int := 0;
  t_end timestamptz := clock_timestamp() + interval '$seconds s';
  d text;
BEGIN
  WHILE clock_timestamp() < t_end LOOP
    BEGIN
      IF $kind = 0 THEN
        n := CASE WHEN random() < 0.7 THEN 'churn_1' ELSE 'churn_' || (2 + (random() < 0.5)::int) END;
        PERFORM zksync_write_lock(n);
        PERFORM pg_sleep(0.001);
        PERFORM zksync_write_unlock(n);
      ELSE
        SELECT array_agg(x ORDER BY CASE WHEN $kind = 1 THEN random() ELSE 0 END, x) INTO names
          FROM unnest(ARRAY['churn_1', 'churn_2', 'churn_3']) AS x WHERE random() < 0.6;
        CONTINUE WHEN names IS NULL;
        IF $kind = 1 THEN
          PERFORM zksync_write_lock(names);
          PERFORM pg_sleep(0.001);
          PERFORM zksync_write_unlock(names);
        ELSE
          SELECT array_agg(CASE WHEN $kind = 3 AND random() < 0.5 THEN 'r' ELSE 'w' END) INTO modes
            FROM unnest(names);
          FOR k IN 1 .. array_length(names, 1) LOOP
            IF modes[k] = 'r' THEN
              PERFORM zksync_read_lock(names[k]);
            ELSE
              PERFORM zksync_write_lock(names[k]);
            END IF;
            PERFORM pg_sleep(0.0005);
          END LOOP;
          FOR k IN REVERSE array_length(names, 1) .. 1 LOOP
            IF modes[k] = 'r' THEN
              PERFORM zksync_read_unlock(names[k]);
            ELSE
              PERFORM zksync_write_unlock(names[k]);
            END IF;
          END LOOP;
        END IF;
      END IF;
      cycles := cycles + 1;
    EXCEPTION WHEN deadlock_detected THEN
      GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
      INSERT INTO deadlocks VALUES (pg_backend_pid(), $kind, d);
      PERFORM zksync_unlock_all();
    END;
  END LOOP;
  INSERT INTO churned VALUES (pg_backend_pid(), $kind, cycles);
END \$\$;
\\echo churned
});
		push @sessions, $s;
	}
	my $finished = 0;
	for my $s (@sessions)
	{
		$finished++ if $s->query_until(qr/churned/, '') =~ /churned/;
	}
	is($finished, 12, "12 backends on two clusters churned on 3 locks for $seconds s with deadlock_timeout = 10ms");
	my ($cycles, $false) = (0, 0);
	for my $node ($A, $B)
	{
		$cycles += $node->safe_psql('postgres', 'SELECT coalesce(sum(cycles), 0) FROM churned');
		$false += $node->safe_psql('postgres', 'SELECT count(*) FROM deadlocks');
		my $seen = $node->safe_psql('postgres',
			"SELECT string_agg(format('%s (kind %s): %s', pid, kind, detail), E'\\n') FROM deadlocks");
		diag $node->name . ": $seen" if $seen ne '';
	}
	is($A->safe_psql('postgres', 'SELECT count(*) FROM churned')
		  + $B->safe_psql('postgres', 'SELECT count(*) FROM churned'), 12, 'every backend finished its loop');
	ok($cycles > 120, "they took locks $cycles times");
	is($false, 0, 'nobody got 40P01');
	my $logged = 0;
	for my $node ($A, $B)
	{
		my $log = slurp_file($node->logfile, $offset{ $node->name });
		$logged += () = $log =~ /still waiting for zksync (?:write|read) lock "churn_\d"/g;
		unlike($log, qr/deadlock detected/, $node->name . '\'s log has no deadlock');
	}
	ok($logged > 10, "waits lasted past deadlock_timeout ($logged logged), so the detector scanned");
	ok(poll_until(sub { !contenders() && !wait_records() }), 'nothing left in ZooKeeper')
	  or diag leftovers();
	$_->quit for @sessions;
}

# ---------------------------------------------------------------------
# 7. A node on its way out is no edge
# ---------------------------------------------------------------------
# A kazoo session K poses as a backend of another cluster (pid 4242 on
# cluster 999): it has the first node of x7, and waits for y7 behind r1,
# which holds y7 and then asks for x7.  K's wait record, as zksync writes
# one, first lists none of its nodes as leaving: a deadlock, and r1 (the
# youngest wait) is the victim.  Then the record lists K's x7 node as on
# its way out (a delete not yet applied, as when a backend released it and
# locks again at once: the soak's case), or the prefix a hunted create's
# node starts with, or says there are too many to list: r1's wait is no
# cycle, and it runs into lock_timeout after several scans.
{
	my ($kin, $kout, $kerr) = ('', '', '');
	my $k = IPC::Run::start([ zkclient('session', '-') ], \$kin, \$kout, \$kerr, IPC::Run::timeout(120));
	my $ask = sub {
		my ($line, $re) = @_;
		$kout = '';
		$kin .= "$line\n";
		$k->pump until $kout =~ $re;
		return $kout =~ $re;
	};
	$k->pump until $kout =~ /ready\n/;
	$ask->('id', qr/^id (0x[0-9a-f]+)\n/);
	my ($k_session) = $kout =~ /^id (0x[0-9a-f]+)/;
	my $r1 = job($A, 'r1');
	# its owner data has no cluster_name (as 1.0 wrote it): host:port names it
	my $other = { pid => 4242, cluster => '999', label => '"elsewhere:5432" (999)' };
	my $owner = '{"host":"elsewhere","port":5432,"database":"postgres","pid":4242,'
	  . '"application_name":"kazoo-as-backend","cluster":"999","backend_start":"2026-01-01 00:00:00+00"';
	my $guid = '0000aaaa-0000-4000-8000-000000000007';
	run($r1, "SELECT zksync_write_lock('y7')");
	$ask->("create $root/locks/x7/_c_$guid-__WRIT__ $owner}", qr/^created (\S+) (\d+)\n/);
	my ($k_x) = $kout =~ /^created (\S+)/;
	$ask->("create $root/locks/y7/_c_$guid-__WRIT__ $owner}", qr/^created (\S+) (\d+)\n/);
	my ($k_y, $k_y_czxid) = $kout =~ /^created (\S+) (\d+)/;
	my $record = sub {
		my ($extra) = @_;
		$ask->("put $root/waits/$k_session $owner,\"kind\":\"lock\",\"what\":\"write lock\","
			  . "\"name\":\"y7\",\"node\":\"$k_y\",\"czxid\":$k_y_czxid$extra}", qr/^put\n/);
	};
	run($r1, "SET lock_timeout = '1500ms'");

	$record->('');
	start($r1, "SELECT zksync_write_lock('x7')");
	ok(poll_until(sub { done($r1) }, 15), 'r1 asked for x7 (K has its first node), K waits for y7 (r1 holds it)');
	ok(deadlocked($r1), 'r1 gets 40P01: K\'s record lists nothing on its way out') or diag error($r1);
	ok(detail_lists($r1, zk_line($r1, 'write lock "x7"', $other), zk_line($other, 'write lock "y7"', $r1)),
		'the DETAIL names both waits');
	settle($r1);

	for my $case ([ 'its x7 node on its way out (a release)', ",\"leaving\":\"$root/locks/y7/none\\n$k_x\"" ],
		[ 'a hunt of its GUID under x7', ",\"leaving\":\"$root/locks/x7/_c_$guid\"" ],
		[ 'too many nodes on their way out to list', ',"leaving_unknown":true' ])
	{
		my ($what, $extra) = @$case;
		$record->($extra);
		my $offset = -s $A->logfile;
		start($r1, "SELECT zksync_write_lock('x7')");
		ok(poll_until(sub { done($r1) }, 15), "r1 asked for x7 again; K's record: $what");
		like(error($r1), qr/ERROR:  55P03: canceling statement due to lock timeout/,
			'... no deadlock: r1 waited until lock_timeout');
		my $log = slurp_file($A->logfile, $offset);
		like($log, qr/process $r1->{pid} still waiting for zksync write lock "x7"/,
			'... and was scanned meanwhile (log_lock_waits)');
		settle($r1);
	}
	run($r1, 'SELECT zksync_unlock_all()');

	# while a node of one's own that stays (a lease) is a wait for oneself
	run($r1, "SET lock_timeout = 0");
	is(run($r1, "SELECT zksync_semaphore_acquire('s7', 1)"), 't', 'r1 holds the only lease of s7');
	start($r1, "SELECT zksync_semaphore_acquire('s7', 1)");
	ok(poll_until(sub { done($r1) }, 15), 'r1 asks for another lease of s7');
	ok(deadlocked($r1), '... and gets 40P01: it waits for itself') or diag error($r1);
	ok(detail_lists($r1, zk_line($r1, 'semaphore "s7"', $r1)), '... the DETAIL says so');
	settle($r1);
	run($r1, 'SELECT zksync_unlock_all()');
	$kin .= "quit\n";
	$k->finish;
	ok(poll_until(sub { !contenders() && !wait_records() }), 'nothing left in ZooKeeper')
	  or diag leftovers();
	$r1->{s}->quit;
}

$A->stop;
$B->stop;
done_testing();
