# Barrier and double-barrier waits in every view, and what operators see
# of a deadlock, on two clusters of one ensemble (deadlock_timeout =
# 200ms, log_lock_waits = on):
#
#  1. a barrier set on B, waited for on A and B: zksync_waits() on either
#     cluster shows the barrier (mode set, granted, who set it) and both
#     waits (mode wait); zksync_blocking() names the setter, on the other
#     cluster and on the same; zksync_local_locks shows the wait; the log
#     says "still waiting for zksync barrier", naming the setter by
#     cluster_name and system identifier, then "passed";
#  2. barriers another client set: no owner data (the owner columns are
#     NULL, the log says "another ZooKeeper client"), and owner data with
#     a cluster_name that a message may not show (a newline: host:port
#     names the cluster instead, nothing of it reaches the log) or may
#     (a quote, escaped);
#  3. a double barrier of three over both clusters: participants waiting
#     to enter (the log counts who has entered; nobody blocks by name),
#     inside (granted), and one waiting to leave, blocked by the two still
#     inside on the other cluster; "entered" and "left" in the log;
#  4. a barrier wait is never part of a deadlock: a backend that holds a
#     lock and waits at a barrier whose setter waits for that lock is no
#     cycle (the setter runs into lock_timeout, not 40P01);
#  5. a deadlock across the clusters counts once in the victim's
#     pg_stat_database.deadlocks, and its DETAIL names each cluster by
#     cluster_name and system identifier.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use ZkSyncJobs;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $root = zk_root();
my $A = new_node('bw_a');
my $B = new_node('bw_b');
for my $node ($A, $B)
{
	$node->append_conf('postgresql.conf', "deadlock_timeout = '200ms'\nlog_lock_waits = on\n");
	$node->reload;
	ok(poll_until(sub { $node->safe_psql('postgres', 'SHOW deadlock_timeout') eq '200ms' }),
		$node->name . ': deadlock_timeout is 200ms');
	$node->safe_psql('postgres', 'SELECT zksync_stats_reset()');
}

# The rows of zksync_waits() for barriers, as sorted text:
# kind|name|mode|granted|cluster|pid|application_name|session_id is NULL
sub gate_rows
{
	my ($node, $where) = @_;
	$where //= 'true';
	return join("\n", sort split /\n/, $node->safe_psql('postgres', qq{
SELECT concat_ws('|', kind, name, mode, granted, coalesce(cluster, '-'),
                 coalesce(pid::text, '-'), coalesce(application_name, '-'),
                 session_id IS NULL)
  FROM zksync_waits() WHERE kind IN ('barrier', 'dbarrier') AND $where}));
}

sub row
{
	my ($kind, $name, $mode, $granted, $j, $persistent) = @_;
	return join('|', $kind, $name, $mode, $granted, $j->{cluster}, $j->{pid}, $j->{name},
		$persistent ? 't' : 'f');
}

# What blocks local backend $j, as sorted text: kind|name|mode|cluster|pid|application_name
sub blockers
{
	my ($j) = @_;
	return join("\n", sort split /\n/, $j->{node}->safe_psql('postgres', qq{
SELECT concat_ws('|', kind, name, mode, coalesce(cluster, '-'), coalesce(pid::text, '-'),
                 coalesce(port::text, '-'), coalesce(application_name, '-'))
  FROM zksync_blocking($j->{pid})}));
}

sub local_rows
{
	my ($j) = @_;
	return $j->{node}->safe_psql('postgres', qq{
SELECT concat_ws('|', pid, kind, name, mode, granted, state) FROM zksync_local_locks
 WHERE pid = $j->{pid} ORDER BY kind, name});
}

sub records { return grep { m{^\Q$root\E/(waits|deadlocks)/.} } zk_nodes(); }
sub barriers { return grep { m{^\Q$root\E/d?barriers/.} } zk_nodes(); }

sub log_from { my ($node, $offset) = @_; return slurp_file($node->logfile, $offset); }

my %offset = map { $_->name => -s $_->logfile } ($A, $B);

# ---------------------------------------------------------------------
# 1. A barrier set on B, waited for on A and on B
# ---------------------------------------------------------------------
{
	my $setter = job($B, 'setter');
	my $w1 = job($A, 'w1');
	my $w2 = job($B, 'w2');
	is(run($setter, "SELECT zksync_barrier_set('gate')"), 't', 'setter (B) sets barrier gate');
	start($w1, "SELECT zksync_barrier_wait('gate')");
	start($w2, "SELECT zksync_barrier_wait('gate')");
	my $expected = join("\n", sort(row('barrier', 'gate', 'set', 't', $setter, 1),
			row('barrier', 'gate', 'wait', 'f', $w1), row('barrier', 'gate', 'wait', 'f', $w2)));
	ok(poll_until(sub { gate_rows($A) eq $expected }, 10),
		'zksync_waits() on A: the barrier, set by setter on B (no session: it is persistent), and both waits')
	  or diag gate_rows($A);
	is(gate_rows($B), $expected, 'zksync_waits() on B: the same');
	is( $A->safe_psql('postgres', qq{
SELECT count(*) FROM zksync_waits()
 WHERE kind = 'barrier' AND wait_start > now() - interval '1 minute'
   AND node LIKE '$root/%' AND (mode = 'set') = (node = '$root/barriers/gate')}),
		'3', 'each row says when and which node: the barrier\'s, or the published wait\'s');
	my $by_setter = join('|', 'barrier', 'gate', 'set', $setter->{cluster}, $setter->{pid},
		$B->port, 'setter');
	is(blockers($w1), $by_setter, 'zksync_blocking() on A: w1 waits for the barrier setter on B');
	is(blockers($w2), $by_setter, 'zksync_blocking() on B: w2 waits for the barrier setter on its own cluster');
	is(blockers($setter), '', 'the setter is blocked by nobody');
	is(local_rows($w1), "$w1->{pid}|barrier|gate|wait|f|waiting", 'zksync_local_locks on A shows w1\'s wait');

	my $still = qr/LOG:  process $w1->{pid} still waiting for zksync barrier "gate" after (\d+\.\d{3}) ms\n[^\n]*DETAIL:  Set by process $setter->{pid} on cluster \Q$setter->{label}\E\.\n/;
	ok(poll_until(sub { log_from($A, $offset{bw_a}) =~ $still }, 10),
		'A\'s log: "still waiting for zksync barrier", DETAIL naming the setter by cluster_name and identifier')
	  or diag log_from($A, $offset{bw_a});
	my ($waited) = log_from($A, $offset{bw_a}) =~ $still;
	ok(defined $waited && $waited >= 200, 'at deadlock_timeout (' . ($waited // '?') . ' ms)');
	like(log_from($B, $offset{bw_b}), qr/process $w2->{pid} still waiting for zksync barrier "gate"/,
		'B\'s log has w2\'s wait');
	ok(!done($w1) && !done($w2), 'both still wait');

	is(run($setter, "SELECT zksync_barrier_unset('gate')"), 't', 'setter unsets gate');
	ok(poll_until(sub { done($w1) && done($w2) }, 10), 'both waits end');
	is(error($w1) . error($w2), '', 'without error');
	my $passed = qr/LOG:  process $w1->{pid} passed zksync barrier "gate" after (\d+\.\d{3}) ms\n/;
	ok(poll_until(sub { log_from($A, $offset{bw_a}) =~ $passed }, 10), 'A\'s log: "passed zksync barrier ... after"');
	my ($total) = log_from($A, $offset{bw_a}) =~ $passed;
	ok(defined $total && defined $waited && $total >= $waited, 'after longer than when first logged');
	ok(poll_until(sub { gate_rows($A) eq '' && !records() }, 10), 'no row and no published wait is left');
	is(local_rows($w1), '', 'nor anything in zksync_local_locks');
	is($A->safe_psql('postgres', 'SELECT acquired, waited, wait_time_ms > 0 FROM zksync_stats'),
		'1|1|t', 'zksync_stats on A: one barrier passed after one wait');
	settle($_) for $w1, $w2;
	$_->{s}->quit for $setter, $w1, $w2;
}

# ---------------------------------------------------------------------
# 2. Barriers another client set
# ---------------------------------------------------------------------
{
	my ($kin, $kout, $kerr) = ('', '', '');
	my $k = IPC::Run::start([ zkclient('session', '-') ], \$kin, \$kout, \$kerr, IPC::Run::timeout(120));
	my $ask = sub {
		my ($line, $re) = @_;
		$kout = '';
		$kin .= "$line\n";
		$k->pump until $kout =~ $re;
		return;
	};
	$k->pump until $kout =~ /ready\n/;
	my $owner = sub {
		my ($name_json) = @_;
		return '{"host":"elsewhere","port":5432,"database":"x","pid":4242,"application_name":"app",'
		  . '"cluster":"999","backend_start":"2026-01-01 00:00:00+00","cluster_name":' . $name_json . '}';
	};
	my @cases = (
		[ 'foreign', 'not owner data', qr/DETAIL:  Set by another ZooKeeper client\.\n/,
			'no owner data: "another ZooKeeper client"' ],
		[ 'newline', $owner->('"east\nLOG:  forged"'),
			qr/DETAIL:  Set by process 4242 on cluster "elsewhere:5432" \(999\)\.\n/,
			'a cluster_name with a newline is not shown: host:port instead' ],
		[ 'quote', $owner->('"we\"st"'), qr/DETAIL:  Set by process 4242 on cluster "we\\"st" \(999\)\.\n/,
			'a cluster_name with a quote is shown, the quote escaped' ]);
	my $w = job($A, 'w3');
	for my $case (@cases)
	{
		my ($name, $data, $detail, $what) = @$case;
		$ask->("puthex $root/barriers/$name " . unpack('H*', $data), qr/^put\n/);
		my $offset = -s $A->logfile;
		start($w, "SELECT zksync_barrier_wait('$name', 600)");
		ok(poll_until(sub { gate_rows($B, "name = '$name' AND NOT granted") ne '' }, 10),
			"w3 waits at barrier $name");
		if ($name eq 'foreign')
		{
			is(gate_rows($B, "name = '$name' AND granted"), "barrier|$name|set|t|-|-|-|f",
				'zksync_waits() on B: another client\'s barrier, owner columns NULL');
			is(blockers($w), "barrier|$name|set|-|-|-|-", 'zksync_blocking(): the barrier, owner columns NULL');
		}
		ok(poll_until(sub { done($w) }, 10), "... until its timeout");
		like($w->{s}{stdout}, qr/^f$/m, '... which it reports');
		like(log_from($A, $offset),
			qr/LOG:  process $w->{pid} still waiting for zksync barrier "$name" after \d+\.\d{3} ms\n[^\n]*$detail/,
			"log: $what") or diag log_from($A, $offset);
		unlike(log_from($A, $offset), qr/forged/, '... and nothing of it reaches the log');
		settle($w);
	}
	$kin .= "quit\n";
	$k->finish;
	$w->{s}->quit;
	ok(poll_until(sub { !records() && !barriers() }, 10), 'nothing is left');
}

# ---------------------------------------------------------------------
# 3. A double barrier of three over both clusters
# ---------------------------------------------------------------------
{
	my $p1 = job($A, 'p1');
	my $p2 = job($B, 'p2');
	my $p3 = job($A, 'p3');
	start($p2, "SELECT zksync_dbarrier_enter('phase', 3)");
	ok(poll_until(sub { gate_rows($A) eq row('dbarrier', 'phase', 'enter', 'f', $p2) }, 10),
		'p2 (B) waits to enter phase: a dbarrier row, mode enter, not granted');
	my $offset_a = -s $A->logfile;
	start($p1, "SELECT zksync_dbarrier_enter('phase', 3)");
	my $two = join("\n", sort(row('dbarrier', 'phase', 'enter', 'f', $p1), row('dbarrier', 'phase', 'enter', 'f', $p2)));
	ok(poll_until(sub { gate_rows($B) eq $two }, 10), 'p1 (A) too: zksync_waits() on B shows both')
	  or diag gate_rows($B);
	is(blockers($p1), '', 'a participant waiting to enter: nobody can be named as blocking it');
	is(local_rows($p1), "$p1->{pid}|dbarrier|phase|enter|f|waiting", 'zksync_local_locks shows p1 waiting to enter');
	ok( poll_until(
			sub {
				log_from($A, $offset_a) =~
				  /LOG:  process $p1->{pid} still waiting to enter zksync double barrier "phase" after \d+\.\d{3} ms\n[^\n]*DETAIL:  Participants entered: 2 of 3\.\n/;
			},
			10),
		'A\'s log: "still waiting to enter zksync double barrier", with how many have entered')
	  or diag log_from($A, $offset_a);

	is(run($p3, "SELECT zksync_dbarrier_enter('phase', 3)"), 't', 'p3 (A) enters: the third');
	ok(poll_until(sub { done($p1) && done($p2) }, 10), 'p1 and p2 are in too');
	is(error($p1) . error($p2), '', 'without error');
	settle($_) for $p1, $p2;
	my $inside = join("\n", sort map { row('dbarrier', 'phase', 'enter', 't', $_) } $p1, $p2, $p3);
	ok(poll_until(sub { gate_rows($A) eq $inside }, 10), 'inside: three participants, granted')
	  or diag gate_rows($A);
	is(local_rows($p3), "$p3->{pid}|dbarrier|phase|enter|t|held", 'zksync_local_locks: p3 is inside');
	like(log_from($A, $offset_a), qr/LOG:  process $p1->{pid} entered zksync double barrier "phase" after \d+\.\d{3} ms\n/,
		'A\'s log: "entered zksync double barrier ... after"');

	my $offset_b = -s $B->logfile;
	start($p2, "SELECT zksync_dbarrier_exit('phase')");
	my $leaving = join("\n", sort(row('dbarrier', 'phase', 'enter', 't', $p1),
			row('dbarrier', 'phase', 'exit', 'f', $p2), row('dbarrier', 'phase', 'enter', 't', $p3)));
	ok(poll_until(sub { gate_rows($A) eq $leaving }, 10), 'p2 waits to leave: mode exit, not granted')
	  or diag gate_rows($A);
	is( blockers($p2),
		join("\n", sort map { join('|', 'dbarrier', 'phase', 'enter', $_->{cluster}, $_->{pid}, $A->port, $_->{name}) } $p1, $p3),
		'zksync_blocking() on B: p2 is blocked by p1 and p3, still inside on A');
	is(local_rows($p2), "$p2->{pid}|dbarrier|phase|exit|f|waiting", 'zksync_local_locks on B: p2 waits to leave');
	my ($l1, $l3) = map { "process $_->{pid} on cluster \Q$_->{label}\E" } $p1, $p3;
	ok( poll_until(
			sub {
				log_from($B, $offset_b) =~
				  /LOG:  process $p2->{pid} still waiting to leave zksync double barrier "phase" after \d+\.\d{3} ms\n[^\n]*DETAIL:  Blocked by (?:$l1; $l3|$l3; $l1)\.\n/;
			},
			10),
		'B\'s log: "still waiting to leave zksync double barrier", blocked by the two inside')
	  or diag log_from($B, $offset_b);
	start($p1, "SELECT zksync_dbarrier_exit('phase')");
	is(run($p3, "SELECT zksync_dbarrier_exit('phase')"), 't', 'p3 leaves');
	ok(poll_until(sub { done($p1) && done($p2) }, 10), 'p1 and p2 leave too');
	is(error($p1) . error($p2), '', 'without error');
	like(log_from($B, $offset_b), qr/LOG:  process $p2->{pid} left zksync double barrier "phase" after \d+\.\d{3} ms\n/,
		'B\'s log: "left zksync double barrier ... after"');
	ok(poll_until(sub { gate_rows($A) eq '' && !records() && !barriers() }, 10), 'nothing is left')
	  or diag join("\n", zk_nodes());
	is(local_rows($_), '', "$_->{name}: nothing in zksync_local_locks") for $p1, $p2, $p3;
	$_->{s}->quit for $p1, $p2, $p3;
}

# ---------------------------------------------------------------------
# 4. A barrier wait is no edge of a deadlock
# ---------------------------------------------------------------------
{
	my $x = job($A, 'x');
	my $y = job($A, 'y');
	run($y, "SELECT zksync_barrier_set('hold')");
	run($x, "SELECT zksync_write_lock('L')");
	start($x, "SELECT zksync_barrier_wait('hold')");
	ok(poll_until(sub { gate_rows($A, "name = 'hold' AND NOT granted") ne '' }, 10),
		'x holds lock L and waits at barrier hold, which y set');
	my $offset = -s $A->logfile;
	run($y, "SET lock_timeout = '1500ms'");
	start($y, "SELECT zksync_write_lock('L')");
	ok(poll_until(sub { done($y) }, 15), 'y asks for L');
	like(error($y), qr/ERROR:  55P03: canceling statement due to lock timeout/,
		'... and runs into lock_timeout: no deadlock') or diag error($y);
	like(log_from($A, $offset), qr/process $y->{pid} still waiting for zksync write lock "L"/,
		'... though its wait was scanned (log_lock_waits)');
	settle($y);
	run($y, "SELECT zksync_barrier_unset('hold')");
	ok(poll_until(sub { done($x) }, 10), 'once y unsets hold, x passes');
	is(error($x), '', 'without error');
	settle($x);
	run($x, 'SELECT zksync_unlock_all()');
	$_->{s}->quit for $x, $y;
}

# ---------------------------------------------------------------------
# 5. A deadlock: pg_stat_database.deadlocks and the DETAIL
# ---------------------------------------------------------------------
{
	my $j1 = job($A, 'j1');
	my $j2 = job($B, 'j2');
	my $deadlocks = sub {
		my ($node) = @_;
		return $node->safe_psql('postgres',
			'SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()');
	};
	# whatever the jobs have to report is in before the counts are taken
	run($_, 'SELECT pg_stat_force_next_flush()') for $j1, $j2;
	my %before = map { $_->name => $deadlocks->($_) } $A, $B;
	run($j1, "BEGIN; SELECT zksync_xact_write_lock('a')");
	run($j2, "BEGIN; SELECT zksync_xact_write_lock('b')");
	start($j1, "SELECT zksync_xact_write_lock('b')");
	ok(poll_until(sub { $A->safe_psql('postgres', "SELECT count(*) FROM zksync_blocking($j1->{pid})") == 1 }, 10),
		'j1 (A) holds a and waits for b, held by j2 (B)');
	start($j2, "SELECT zksync_xact_write_lock('a')");
	ok(poll_until(sub { done($j2) }, 15), 'j2 closes the cycle');
	ok(deadlocked($j2), 'and gets 40P01') or diag error($j2);
	my ($detail) = error($j2) =~ /^DETAIL:  (.*?)\n(?:HINT|LOCATION)/ms;
	is( join("\n", sort split /\n/, $detail // ''),
		join("\n", sort(
			"Process $j1->{pid} on cluster $j1->{label} waits for zksync write lock \"b\"; blocked by process $j2->{pid} on cluster $j2->{label}.",
			"Process $j2->{pid} on cluster $j2->{label} waits for zksync write lock \"a\"; blocked by process $j1->{pid} on cluster $j1->{label}.")),
		'its DETAIL names each cluster by cluster_name and system identifier');
	settle($j2);
	run($j2, 'ROLLBACK');
	ok(poll_until(sub { done($j1) }, 10), 'j1 gets b');
	settle($j1);
	run($j1, 'COMMIT');
	run($_, 'SELECT pg_stat_force_next_flush()') for $j1, $j2;
	ok(poll_until(sub { $deadlocks->($B) > $before{bw_b} }, 10), 'B\'s pg_stat_database.deadlocks rose');
	is($deadlocks->($B) - $before{bw_b}, 1, 'by exactly one: the victim\'s');
	is($deadlocks->($A) - $before{bw_a}, 0, 'A\'s did not: nothing was reported there');
	is($B->safe_psql('postgres', 'SELECT deadlocks FROM zksync_stats'), '1', 'and zksync_stats on B counts it too');
	$_->{s}->quit for $j1, $j2;
}

ok(poll_until(sub { !records() }, 10), 'no published wait is left');
$A->stop;
$B->stop;
done_testing();
