# zksync's semaphores and Apache Curator's InterProcessSemaphoreV2 share one
# semaphore on {root}/semaphores/{name}, both ways, as the SPEC says: a
# Java program (t/curator/ZkSyncCuratorSemaphore.java, compiled here with
# Debian's Curator 5.4.0) holds, waits for and cycles leases next to zksync
# backends of two clusters.
#
#  1. Curator holds 2 of 3 leases: zksync_semaphore_leases shows them, one
#     zksync backend takes the third, another times out, a count that
#     disagrees is an ERROR, and a waiting zksync backend gets the lease
#     Curator gives back.  Waiters of both kinds are served in arrival
#     order: a zksync backend of the other cluster waiting before Curator
#     gets the next lease, Curator the one after.
#  2. zksync holds all 3: Curator's acquire(1, 1 s) returns null; a waiting
#     Curator gets the lease a zksync backend releases, or the one a
#     transaction-scoped lease leaves at COMMIT.
#  3. Churn on a semaphore of 2 leases: 2 backends of one cluster, 1 of
#     another and the Curator program take and give back leases for a few
#     seconds.  An independent count (Perl's CLOCK_MONOTONIC around each
#     zksync statement, System.nanoTime() inside Curator's acquire/release:
#     the same clock) never sees more than 2 holders at once.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC sleep);

sub mono { return clock_gettime(CLOCK_MONOTONIC); }

# ------------------------------------------------------------- the Java side
my @jars = map { "/usr/share/java/$_.jar" }
  qw(curator-recipes curator-framework curator-client zookeeper zookeeper-jute
  guava slf4j-api slf4j-nop);
for my $jar (@jars)
{
	BAIL_OUT("$jar is missing: install libcurator-recipes-java and default-jdk-headless "
		  . "(scripts/install-deps.sh)")
	  unless -r $jar;
}
my $cp = join(':', @jars);
my $classes = PostgreSQL::Test::Utils::tempdir('curator');
my ($jout, $jerr) = ('', '');
my $compiled = IPC::Run::run(
	[ 'javac', '-nowarn', '-cp', $cp, '-d', $classes,
		"$FindBin::Bin/curator/ZkSyncCuratorSemaphore.java" ],
	'>', \$jout, '2>', \$jerr);
ok($compiled && -f "$classes/ZkSyncCuratorSemaphore.class",
	'the Curator program compiles')
  or BAIL_OUT("javac failed: $jout$jerr");

# every Curator program started; killed if the test dies before quitting it
my @curators;
END { local $?; $_->{h}->kill_kill for grep { $_->{h}->pumpable } @curators; }

# A running ZkSyncCuratorSemaphore on $path with $max leases.
sub curator
{
	my ($path, $max) = @_;
	my $c = { in => '', out => '', err => '' };
	$c->{h} = IPC::Run::start(
		[ 'java', '-Xmx128m', '-cp', "$classes:$cp", 'ZkSyncCuratorSemaphore',
			zk_hosts(), $path, $max, 4000 ],
		'<', \$c->{in}, '>', \$c->{out}, '2>', \$c->{err});
	push @curators, $c;
	my $ready = curator_line($c, 60) // '(nothing)';
	die "the Curator program did not start: $ready $c->{err}" unless $ready eq 'READY';
	return $c;
}

# The next line the Curator program prints, waiting at most $secs (undef
# if none came).
sub curator_line
{
	my ($c, $secs) = @_;
	my $deadline = mono() + ($secs // 30);
	while (1)
	{
		return $1 if $c->{out} =~ s/^(.*?)\r?\n//;
		return undef if mono() > $deadline;
		$c->{h}->pump_nb;
		sleep 0.005;
	}
}

sub curator_send { $_[0]->{in} .= "$_[1]\n"; $_[0]->{h}->pump_nb; }

sub curator_say
{
	my ($c, $cmd, $secs) = @_;
	curator_send($c, $cmd);
	return curator_line($c, $secs) // '(no answer)';
}

sub curator_quit
{
	my ($c) = @_;
	my $bye = curator_say($c, 'quit', 30);
	$c->{h}->finish;
	return $bye;
}

# ----------------------------------------------------------- the zksync side
my $node = new_node('sem_a');
my $node_b = new_node('sem_b');
my $name = 'interop';
my $path = zk_root() . "/semaphores/$name";

sub zs { return $node->safe_psql('postgres', $_[0]); }

# "curator holders|zksync holders|waiters" among the leases/ nodes
sub lease_counts
{
	my ($sem) = @_;
	return zs(qq{SELECT count(*) FILTER (WHERE granted AND owner = ''),
			count(*) FILTER (WHERE granted AND owner <> ''),
			count(*) FILTER (WHERE NOT granted)
		FROM zksync_semaphore_leases('$sem') WHERE node LIKE 'leases/%'});
}

# is there exactly one waiting lease node whose owner meets $owner_cond?
sub waiter_seen
{
	my ($sem, $owner_cond) = @_;
	return zs(qq{SELECT count(*) FROM zksync_semaphore_leases('$sem')
		WHERE node LIKE 'leases/%' AND NOT granted AND $owner_cond}) == 1;
}

# ----------------------------------------------- 1. Curator holds, zksync waits
my $cur = curator($path, 3);
is(curator_say($cur, 'hold 2'), 'HELD 2', 'Curator takes 2 of 3 leases');
is(lease_counts($name), '2|0|0', 'zksync_semaphore_leases shows Curator\'s 2 leases, owner empty');
my @curator_nodes = sort grep { m{^\Q$path\E/leases/} } zk_nodes($path);
is( join(',', @curator_nodes),
	join(',', sort map { "$path/$_" }
		  split /\n/, zs("SELECT node FROM zksync_semaphore_leases('$name') WHERE node LIKE 'leases/%'")),
	'the lease nodes zksync lists are the ones Curator made on {root}/semaphores/{name}/leases');
is( zs("SELECT bool_and(node ~ '^leases/_c_[0-9a-f-]{36}-lease-[0-9]{10}\$') FROM zksync_semaphore_leases('$name') WHERE node LIKE 'leases/%'"),
	't', 'they have the _c_{uuid}-lease-{seq} form');

my $sa = $node->background_psql('postgres');
my $sb = $node->background_psql('postgres');
my $pid_a = $sa->query_safe('SELECT pg_backend_pid()');
my $pid_b = $sb->query_safe('SELECT pg_backend_pid()');
is($sa->query_safe("SELECT zksync_semaphore_acquire('$name', 3)"),
	't', 'a zksync backend takes the third lease');
is(lease_counts($name), '2|1|0', 'two Curator leases and one zksync lease');
is( zs("SELECT count(*) FROM zksync_semaphore_leases('$name') WHERE owner LIKE '%\"pid\":$pid_a,%'"),
	'1', 'the zksync lease names its backend');

my $t0 = mono();
is($sb->query_safe("SELECT zksync_semaphore_acquire('$name', 3, 500)"),
	'f', 'a second zksync backend times out: Curator\'s leases count');
cmp_ok(mono() - $t0, '>=', 0.45, 'after waiting out timeout_ms');
is(lease_counts($name), '2|1|0', 'the timed-out acquire left nothing queued');

my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT zksync_semaphore_acquire('$name', 4, 500)");
ok($ret != 0 && $stderr =~ /ERROR/ && $stderr =~ /\b3\b/ && $stderr =~ /\b4\b/,
	'a zksync caller stating 4 leases where 3 are in use gets an ERROR naming both')
  or diag($stderr);

$sb->query_until(qr/waiting/, "\\echo waiting\nSELECT zksync_semaphore_acquire('$name', 3);\n\\echo b-done\n");
ok(poll_until(sub { waiter_seen($name, "owner LIKE '%\"pid\":$pid_b,%'") }),
	'the second zksync backend waits (its lease node shows, not granted)');
is(curator_say($cur, 'release'), 'RELEASED 1', 'Curator gives one lease back');
$t0 = mono();
like($sb->query_until(qr/b-done/, ''), qr/^t$/m, 'the waiting zksync backend gets it');
note(sprintf('zksync waiter granted %.0f ms after Curator\'s release', 1000 * (mono() - $t0)));
is(lease_counts($name), '1|2|0', 'one Curator lease and two zksync leases');

# arrival order across clients: a zksync backend of the other cluster
# waits first, Curator queues behind it on the mutex; the next lease goes
# to the zksync backend, the one after to Curator
my $sd = $node_b->background_psql('postgres');
my $pid_d = $sd->query_safe('SELECT pg_backend_pid()');
$sd->query_until(qr/waiting/, "\\echo waiting\nSELECT zksync_semaphore_acquire('$name', 3);\n\\echo d-done\n");
ok(poll_until(sub { waiter_seen($name, "owner LIKE '%\"pid\":$pid_d,%'") }),
	'a backend of the other cluster waits');
curator_send($cur, 'acquire 30000');
ok( poll_until(sub {
		zs("SELECT count(*) FROM zksync_semaphore_leases('$name') WHERE node LIKE 'locks/%' AND owner = ''") == 1 }),
	'Curator queues behind it on the mutex {root}/semaphores/{name}/locks');
# the mutex queue by the semaphore's own rule: its first contender holds it
is( zs("SELECT string_agg((CASE WHEN owner = '' THEN 'curator' ELSE 'zksync' END) || ' ' || granted::text, ',' ORDER BY sequence)
		FROM zksync_semaphore_leases('$name') WHERE node LIKE 'locks/%'"),
	'zksync true,curator false',
	'zksync_semaphore_leases(): the mutex holder (the waiting zksync backend) is granted, Curator behind it is not');
is( zs("SELECT string_agg(granted::text, ',' ORDER BY right(node, 10)) FROM zksync_waits()
		WHERE kind = 'semaphore' AND name = '$name' AND mode = 'mutex'"),
	'true,false', 'as zksync_waits() shows the same mutex queue');
is($sa->query_safe("SELECT zksync_semaphore_release('$name')"), 't', 'backend A releases its lease');
like($sd->query_until(qr/d-done/, ''), qr/^t$/m, 'the zksync backend that came first gets it');
ok(poll_until(sub { waiter_seen($name, "owner = ''") }), 'Curator, next in line, now waits for a lease');
is($cur->{out}, '', 'and has none yet');
is($sb->query_safe("SELECT zksync_semaphore_release('$name')"), 't', 'backend B releases its lease');
is(curator_line($cur, 30), 'ACQUIRED 2', 'Curator gets it');
is(lease_counts($name), '2|1|0', 'two Curator leases and one zksync lease');

# ----------------------------------------------- 2. zksync holds, Curator waits
is(curator_say($cur, 'release'), 'RELEASED 1', 'Curator gives a lease back');
is(curator_say($cur, 'release'), 'RELEASED 0', 'Curator gives its last lease back');
is($sa->query_safe("SELECT zksync_semaphore_acquire('$name', 3)"), 't', 'backend A takes a lease');
is($sb->query_safe("SELECT zksync_semaphore_acquire('$name', 3)"), 't', 'backend B takes a lease');
is(lease_counts($name), '0|3|0', 'zksync holds all 3 leases');
$t0 = mono();
is(curator_say($cur, 'acquire 1000', 30), 'TIMEOUT', 'Curator\'s acquire(1, 1 s) returns null');
cmp_ok(mono() - $t0, '>=', 0.95, 'after its full second');
is(lease_counts($name), '0|3|0', 'Curator left nothing queued');

curator_send($cur, 'acquire 30000');
ok(poll_until(sub { waiter_seen($name, "owner = ''") }),
	'Curator waits (its lease node shows, not granted)');
is($cur->{out}, '', 'Curator has no lease yet');
is($sa->query_safe("SELECT zksync_semaphore_release('$name')"), 't', 'backend A releases its lease');
$t0 = mono();
is(curator_line($cur, 30), 'ACQUIRED 1', 'Curator\'s acquire returns the lease zksync released');
note(sprintf('Curator waiter granted %.0f ms after zksync\'s release', 1000 * (mono() - $t0)));
is(lease_counts($name), '1|2|0', 'one Curator lease and two zksync leases again');

# a transaction-scoped lease: Curator gets it when the transaction ends
is($sb->query_safe("SELECT zksync_semaphore_release('$name')"), 't', 'backend B releases its session lease');
$sb->query_safe('BEGIN');
is($sb->query_safe("SELECT zksync_xact_semaphore_acquire('$name', 3)"), 't',
	'backend B takes a transaction lease');
curator_send($cur, 'acquire 30000');
ok(poll_until(sub { waiter_seen($name, "owner = ''") }), 'Curator waits again');
$sb->query_safe('COMMIT');
is(curator_line($cur, 30), 'ACQUIRED 2', 'Curator gets the lease that COMMIT ended');
is(lease_counts($name), '2|1|0', 'two Curator leases and the other cluster\'s');

is(curator_quit($cur), 'BYE', 'Curator gives back its leases and closes');
is($sd->query_safe("SELECT zksync_semaphore_release('$name')"), 't', 'the other cluster\'s backend releases');
is(lease_counts($name), '0|0|0', 'no lease left');
$_->quit for ($sa, $sb, $sd);

# ------------------------------------------------------- 3. mixed churn, N = 2
my $max = 2;
my $churn = 'churn';
my $seconds = 8;
my $cur2 = curator(zk_root() . "/semaphores/$churn", $max);

# zksync contenders: psql sessions driven without blocking, so that three
# of them wait and hold at once.  A hold is counted from the moment its
# acquire's answer arrived to the moment its release was sent: inside the
# real hold, so an overlap seen here is a real one.
my @zks;
for my $n ($node, $node, $node_b)
{
	my $s = { in => '', out => '', err => '', who => $n->name . '#' . (scalar(@zks) + 1) };
	$s->{h} = IPC::Run::start([ 'psql', '-XAtq', '-d', $n->connstr('postgres') ],
		'<', \$s->{in}, '>', \$s->{out}, '2>', \$s->{err});
	$s->{state} = 'idle';
	$s->{at} = 0;
	$s->{holds} = 0;
	push @zks, $s;
}
my @events;    # [ time, +1/-1, who ]
my $end = mono() + $seconds;
curator_send($cur2, "cycle @{[ 1000 * $seconds ]} 50 10 @{[ int(rand(1e6)) ]}");
my $hard_stop = $end + 60;
while (mono() < $hard_stop)
{
	my $busy = 0;
	for my $s (@zks)
	{
		$s->{h}->pump_nb;
		my $now = mono();
		# an error (or an unexpected answer) ends this contender's cycles
		$s->{state} = 'failed' if $s->{err} ne '';
		if ($s->{state} eq 'idle')
		{
			next if $now >= $end;
			$busy = 1;
			next if $now < $s->{at};
			$s->{in} .= "SELECT zksync_semaphore_acquire('$churn', $max);\n";
			$s->{state} = 'acquiring';
		}
		elsif ($s->{state} eq 'acquiring')
		{
			$busy = 1;
			next unless $s->{out} =~ s/^(.*)\n//;
			if ($1 ne 't') { $s->{err} .= "acquire said '$1'\n"; next; }
			$s->{t_in} = $now;
			$s->{at} = $now + rand(0.050);
			$s->{state} = 'holding';
		}
		elsif ($s->{state} eq 'holding')
		{
			$busy = 1;
			next if $now < $s->{at};
			push @events, [ $s->{t_in}, 1, $s->{who} ], [ $now, -1, $s->{who} ];
			$s->{holds}++;
			$s->{in} .= "SELECT zksync_semaphore_release('$churn');\n";
			$s->{state} = 'releasing';
		}
		elsif ($s->{state} eq 'releasing')
		{
			$busy = 1;
			next unless $s->{out} =~ s/^(.*)\n//;
			if ($1 ne 't') { $s->{err} .= "release said '$1'\n"; next; }
			$s->{at} = $now + rand(0.010);
			$s->{state} = 'idle';
		}
		$s->{h}->pump_nb;
	}
	$cur2->{h}->pump_nb;
	last if !$busy && $cur2->{out} =~ /^CYCLED /m;
	sleep 0.0005;
}
my $zk_errors = join('', map { $_->{err} ne '' ? "$_->{who}: $_->{err}" : '' } @zks);
is($zk_errors, '', 'no zksync statement failed during the churn');
is(join(',', map { $_->{state} } @zks), 'idle,idle,idle', 'every zksync backend finished its cycles');

# Curator's holds, from its IN/OUT lines (System.nanoTime, CLOCK_MONOTONIC)
my ($cur_holds, $cur_suspect, $cycled, $t_in, $c_in) = (0, 0, undef);
my @cur_errors;
for my $line (split /\n/, $cur2->{out})
{
	my @w = split ' ', $line;
	if ($w[0] eq 'IN') { ($t_in, $c_in) = ($w[1] / 1e9, $w[2]); }
	elsif ($w[0] eq 'OUT' && defined $t_in)
	{
		if ($w[2] eq $c_in)
		{
			push @events, [ $t_in, 1, 'curator' ], [ $w[1] / 1e9, -1, 'curator' ];
			$cur_holds++;
		}
		else
		{
			$cur_suspect++;    # its connection was suspended meanwhile
		}
		undef $t_in;
	}
	elsif ($w[0] eq 'CYCLED') { $cycled = "$w[1] $w[2]"; }
	elsif ($w[0] eq 'ERROR') { push @cur_errors, $line; }
}
$cur2->{out} = '';
ok(defined $cycled, "Curator finished its cycles (holds, timeouts: @{[ $cycled // '?' ]})");
is(join("\n", @cur_errors), '', 'no Curator acquire or release failed');
note("Curator holds not counted, its connection having been suspended: $cur_suspect") if $cur_suspect;

# the count: at equal times an end goes before a start
my ($inside, $most, $mixed) = (0, 0, 0);
my ($curator_now, $zksync_now) = (0, 0);
my %time_at;
my $prev;
for my $e (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @events)
{
	$time_at{$inside} += $e->[0] - $prev if defined $prev;
	$prev = $e->[0];
	$inside += $e->[1];
	if ($e->[2] eq 'curator') { $curator_now += $e->[1]; }
	else { $zksync_now += $e->[1]; }
	$mixed++ if $e->[1] > 0 && $curator_now > 0 && $zksync_now > 0;
	$most = $inside if $inside > $most;
}
my %holds_by = (curator => $cur_holds, map { ($_->{who} => $_->{holds}) } @zks);
note('holds: ' . join(', ', map { "$_ $holds_by{$_}" } sort keys %holds_by));
note('time at each count of holders: '
	  . join(', ', map { sprintf('%d: %.2f s', $_, $time_at{$_}) } sort keys %time_at));
ok(!(grep { $holds_by{$_} < 5 } keys %holds_by), 'every contender held leases many times');
cmp_ok($most, '<=', $max, "never more than $max holders at once across Curator and two clusters");
is($most, $max, "the count did see $max holders at once (leases are shared, not exclusive)");
cmp_ok($mixed, '>', 0, 'Curator and zksync held leases at the same time');

is(curator_quit($cur2), 'BYE', 'Curator closes');
for my $s (@zks)
{
	$s->{in} .= "\\q\n";
	$s->{h}->finish;
}
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'no node left');
$node->stop;
$node_b->stop;
done_testing();
