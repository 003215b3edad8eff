# The operator's views from shared memory: zksync_stats counts known work
# exactly (acquisitions, waits, timeouts, cancels, deadlocks, lost holds,
# expiries, reconnects), and zksync_local_locks shows every backend's holds
# and waits (held, waiting, lost, releasing) and answers in milliseconds
# while every ZooKeeper server is frozen.  Without shared_preload_libraries
# both say so with an ERROR.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use ZkSyncJobs;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use CPAN::Meta::YAML;

my $node = new_node('stats');
$node->append_conf('postgresql.conf', "deadlock_timeout = '100ms'\n");
$node->restart;

sub sq { return $node->safe_psql('postgres', $_[0]); }

# Counter deltas since the last reset, as a hash
sub stats
{
	my @cols = qw(acquired waited timeouts cancelled deadlocks lost
	  sessions_expired reconnects handoffs untracked);
	my @v = split /\|/, sq('SELECT ' . join(', ', @cols) . ' FROM zksync_stats');
	my %h;
	@h{@cols} = @v;
	return \%h;
}

sub local_rows
{
	my ($where) = @_;
	return sq("SELECT pid, kind, name, mode, granted, state, token IS NOT NULL
	             FROM zksync_local_locks WHERE $where ORDER BY pid, kind, name, mode");
}

sq('SELECT zksync_stats_reset()');
is(sq('SELECT acquired + waited + timeouts + cancelled + deadlocks + lost + handoffs
         FROM zksync_stats'), '0', 'after a reset every counter is zero');
is(sq("SELECT stats_reset > now() - interval '1 minute' FROM zksync_stats"), 't',
	'stats_reset says when');

# ---- known work, uncontended: five lock cycles and one lease
sq(q{SELECT zksync_write_lock('a'), zksync_write_unlock('a') FROM generate_series(1, 5)});
sq(q{SELECT zksync_semaphore_acquire('s', 2), zksync_semaphore_release('s')});
my $s = stats();
is($s->{acquired}, 6, 'five locks and a lease: acquired 6');
is($s->{waited}, 0, 'nothing waited');
is(local_rows('true'), '', 'nothing is left in the local view');

# ---- a hold and a wait, in view
my $a = job($node, 'holder');
my $b = job($node, 'waiter');
run($a, "SELECT zksync_write_lock('w')");
run($a, "SELECT zksync_semaphore_acquire('s', 2)");
start($b, "SELECT zksync_write_lock('w')");
ok(poll_until(sub { local_rows("pid = $b->{pid}") eq "$b->{pid}|lock|w|write|f|waiting|f" }, 10),
	'the waiter shows as waiting, not granted');
is(local_rows("pid = $a->{pid}"),
	"$a->{pid}|lock|w|write|t|held|t\n$a->{pid}|semaphore|s|lease|t|held|t",
	'the holder shows its lock and its lease, held, with tokens');
run($a, "SELECT zksync_write_unlock('w')");
ok(poll_until(sub { done($b) }, 10), 'the waiter is granted once the holder unlocks');
settle($b);
is(local_rows("pid = $b->{pid}"), "$b->{pid}|lock|w|write|t|held|t", 'and shows as holding');
$s = stats();
is($s->{waited}, 1, 'one wait counted');
ok(sq('SELECT wait_time_ms > 0 FROM zksync_stats') eq 't', 'with its time');
is($s->{acquired}, 9, 'three more: a lock and a lease, and the grant after the wait');

# ---- timeouts: a try with a timeout, and lock_timeout
is(run($a, "SELECT zksync_try_write_lock('w', 200)"), 'f', 'a try with a timeout gives up');
run($a, "SET lock_timeout = '200ms'");
start($a, "SELECT zksync_write_lock('w')");
ok(poll_until(sub { done($a) }, 10), 'lock_timeout ends the wait');
like(error($a), qr/lock timeout/, 'with its ERROR');
settle($a);
run($a, 'RESET lock_timeout');
$s = stats();
is($s->{timeouts}, 2, 'two timeouts counted');

# ---- a cancelled wait
start($a, "SELECT zksync_write_lock('w')");
ok(poll_until(sub { local_rows("pid = $a->{pid} AND name = 'w'") =~ /waiting/ }, 10), 'the holder now waits');
sq("SELECT pg_cancel_backend($a->{pid})");
ok(poll_until(sub { done($a) }, 10), 'the cancel ends the wait');
settle($a);
is(stats()->{cancelled}, 1, 'one cancelled wait counted');
is(local_rows("pid = $a->{pid} AND name = 'w'"), '', 'and its entry is gone');

# ---- a deadlock between two backends
run($a, "SELECT zksync_write_lock('x')");
run($b, "SELECT zksync_write_lock('y')");
start($a, "SELECT zksync_write_lock('y')");
start($b, "SELECT zksync_write_lock('x')");
ok(poll_until(sub { done($a) || done($b) }, 20), 'one of the two ends');
my ($victim, $other) = done($a) ? ($a, $b) : ($b, $a);
ok(deadlocked($victim), 'with 40P01');
settle($victim);
run($victim, 'SELECT zksync_unlock_all()');
ok(poll_until(sub { done($other) }, 10), 'the other is granted');
settle($other);
run($other, 'SELECT zksync_unlock_all()');
is(stats()->{deadlocks}, 1, 'one deadlock counted');

# ---- frozen ensemble: the views answer, a release shows as releasing
run($a, "SELECT zksync_write_lock('f')");
system(zk_script(), 'freeze', $_) for 1 .. 3;
my $t0 = time;
my $rows = local_rows("name = 'f'");
my $stats_ok = sq('SELECT acquired > 0 FROM zksync_stats');
my $ms = (time - $t0) * 1000;
is($rows, "$a->{pid}|lock|f|write|t|held|t", 'with every server frozen, the local view shows the hold');
is($stats_ok, 't', 'and zksync_stats answers');
cmp_ok($ms, '<', 2000, sprintf('both in %.0f ms (new connections included)', $ms));
start($a, "SELECT zksync_write_unlock('f')");
ok(poll_until(sub { local_rows("name = 'f'") =~ /\|releasing\|/ }, 10),
	'an unlock waiting for ZooKeeper shows as releasing');
system(zk_script(), 'thaw', $_) for 1 .. 3;
ok(poll_until(sub { done($a) }, 20), 'the unlock returns after the thaw');
settle($a);
ok(poll_until(sub { local_rows("name = 'f'") eq '' }, 10), 'and its entry goes');

# ---- a held node deleted by another client: lost
run($a, "SELECT zksync_write_lock('gone')");
my ($n) = grep { m{/locks/gone/} } zk_nodes();
my $deleted = `@{[ join ' ', zkclient('try', 'delete', $n) ]}`;
is($deleted, "ok\n", 'kazoo deletes the held node');
# the backend learns of it at its next statement (the view shows what
# the backend knows; zksync_locks() and COMMIT check for themselves)
ok(poll_until(sub { $a->{s}->query('SELECT 1'); settle($a); local_rows("name = 'gone'") =~ /\|lost\|/ }, 10),
	'a hold whose node another client deleted shows as lost') or diag(local_rows('true'));
is(stats()->{lost}, 1, 'one lost hold counted');
$a->{s}->query('SELECT zksync_unlock_all()');
settle($a);

# ---- a paused backend: its session expires; a server restart: a reconnect
# (the freeze above may have made clients reconnect: count from here)
my $before = stats();
run($b, "SELECT zksync_write_lock('p')");
kill 'STOP', $b->{pid};
my $expired = poll_until(sub { scalar(grep { m{/locks/p/} } zk_nodes()) == 0 }, 30);
kill 'CONT', $b->{pid};
ok($expired, 'the paused backend\'s session expired');
# the resumed client learns of the expiry when it reconnects: the backend's
# next statements notice it once it has
poll_until(
	sub {
		$b->{s}->query('SELECT 1');
		settle($b);
		stats()->{sessions_expired} > $before->{sessions_expired};
	},
	10);
my $after = stats();
is($after->{sessions_expired} - $before->{sessions_expired}, 1, 'one expiry counted');
is($after->{lost} - $before->{lost}, 1, 'and its lock lost');
$b->{s}->query('SELECT zksync_unlock_all()');
settle($b);

run($b, "SELECT zksync_write_lock('r')");
$before = stats();
my ($server) = run($b, 'SELECT server FROM zksync_session()') =~ /:(\d+)$/;
my @ports = map { (split /:/)[1] } split /,/, zk_hosts();
my ($idx) = grep { $ports[$_] == $server } 0 .. $#ports;
die "no server for port $server" unless defined $idx;
system(zk_script(), 'stop1', $idx + 1);
ok(poll_until(sub { run($b, 'SELECT count(*) FROM zksync_locks() WHERE state = \'held\'') eq '1'
		  && run($b, "SELECT state FROM zksync_session()") eq 'connected'
		  && run($b, 'SELECT server FROM zksync_session()') !~ /:$server$/ }, 30),
	'the backend reconnects to another server, the lock still held');
system(zk_script(), 'start1', $idx + 1);
run($b, 'SELECT count(*) FROM zksync_locks()');
is(stats()->{reconnects} - $before->{reconnects}, 1, 'one reconnect counted');
run($b, 'SELECT zksync_unlock_all()');

# ---- a backend that exits leaves nothing in the view
run($a, "SELECT zksync_write_lock('exit')");
sq("SELECT pg_terminate_backend($a->{pid})");
ok(poll_until(sub { local_rows("pid = $a->{pid}") eq '' }, 10), 'a terminated backend\'s entries go');

# ---- a reset
sq('SELECT zksync_stats_reset()');
is(sq('SELECT acquired FROM zksync_stats'), '0', 'zksync_stats_reset() sets them to zero');

# ---- privileges: pg_monitor reads both views; others may not
sq('CREATE ROLE mon LOGIN IN ROLE pg_monitor; CREATE ROLE nobody LOGIN');
is($node->safe_psql('postgres', 'SELECT count(*) >= 0 FROM zksync_local_locks, zksync_stats', extra_params => [ '-U', 'mon' ]),
	't', 'a pg_monitor member reads both views');

# The query file for postgres_exporter: each query runs as a pg_monitor
# member and returns exactly the columns its metrics name, one row per
# state for the local view, with the held lock counted
{
	my $yaml = CPAN::Meta::YAML->read("$FindBin::Bin/../monitoring/postgres_exporter-queries.yaml")
	  or die CPAN::Meta::YAML->errstr;
	my $doc = $yaml->[0];
	is_deeply([ sort keys %$doc ], [qw(zksync_local_locks zksync_stats)], 'the exporter file has both metric groups');
	my $holder = job($node, 'exported');
	run($holder, q{SELECT zksync_write_lock('exported')});
	for my $group (sort keys %$doc)
	{
		my @names = map { keys %$_ } @{ $doc->{$group}{metrics} };
		(my $sql = $doc->{$group}{query}) =~ s/\s+\z//;
		my $as_mon = sub { $node->safe_psql('postgres', $_[0], extra_params => [ '-U', 'mon' ]) };
		my @columns = map { (split /\|/)[0] } split /\n/, $as_mon->("$sql \\gdesc");
		is_deeply([ sort @columns ], [ sort @names ], "exporter query $group returns the columns its metrics name");
		my @rows = split /\n/, $as_mon->($sql);
		if ($group eq 'zksync_stats')
		{
			is(scalar @rows, 1, 'zksync_stats: one row');
		}
		else
		{
			my %by = map { my @f = split /\|/; ($f[0] => $f[1]) } @rows;
			is_deeply(\%by, { held => 1, waiting => 0, lost => 0, releasing => 0 },
				'zksync_local_locks: one row per state, the held lock counted');
		}
	}
	run($holder, 'SELECT zksync_unlock_all()');
	$holder->{s}->quit;
}

my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM zksync_stats', extra_params => [ '-U', 'nobody' ]);
like($err, qr/permission denied/, 'another role may not');
($ret, $out, $err) = $node->psql('postgres', 'SELECT zksync_stats_reset()', extra_params => [ '-U', 'mon' ]);
like($err, qr/permission denied/, 'and pg_monitor may not reset');

# ---- without shared_preload_libraries
my $plain = new_node('plain', preload => 0);
($ret, $out, $err) = $plain->psql('postgres', 'SELECT * FROM zksync_stats', extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/55000: zksync_stats needs zksync in shared_preload_libraries/, 'without preload, zksync_stats says what is missing');
($ret, $out, $err) = $plain->psql('postgres', 'SELECT * FROM zksync_local_locks');
like($err, qr/zksync_local_locks needs zksync in shared_preload_libraries/, 'and so does zksync_local_locks');
is($plain->safe_psql('postgres', q{SELECT zksync_write_lock('np'), zksync_write_unlock('np')}), '|t',
	'the locks themselves work without it');

done_testing();
