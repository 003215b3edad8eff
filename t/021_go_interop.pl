# The seed's Go library and zksync share a lock and a double barrier, both
# ways; and Apache Curator's DistributedDoubleBarrier shares a double
# barrier with zksync.
#
# The Go side is t/go/zkgo.go, compiled here with Debian's golang-go and
# golang-github-samuel-go-zookeeper-dev: a client that follows the Go
# library's RWMutex and DoubleBarrier protocol (its node names, its parsing
# of child names, its grant rule and its "ready" handling).  The Curator
# side is t/curator/ZkSyncCuratorDoubleBarrier.java, compiled with Debian's
# Curator 5.4.0.
#
#  1. zksync.lock_layout = curator (the default): a Go writer fails with
#     "not a valid lock" as soon as a zksync node is queued, and a Go reader
#     does not see a zksync writer at all: no sharing.
#  2. zksync.lock_layout = go: zksync's nodes are _c_{uuid}-write-{seq} and
#     -read-{seq}.  A Go writer waits for a zksync writer and takes the lock
#     when it goes; zksync cannot take the lock while the Go writer holds it.
#  3. Go readers and zksync readers share; a Go writer waits for all of them.
#  4. FIFO across clients: zksync writer holds; queued in this order a Go
#     writer, a zksync writer, a Go reader and a zksync reader are granted
#     in that order (the two readers together).
#  5. A double barrier of 4 with 2 Go and 2 zksync participants: nobody
#     passes enter before the 4th arrives, nobody passes exit before the 4th
#     exits, and nothing is left behind (twice: once with a Go participant
#     lowest, which removes "ready" and the barrier as the last one out,
#     once with a zksync participant lowest).
#  6. The same with 2 Curator DistributedDoubleBarrier participants.
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

# ------------------------------------------------------ compile both programs
my $build = PostgreSQL::Test::Utils::tempdir('go_interop');
my ($out, $err) = ('', '');
{
	# GOPATH mode on Debian's packaged source: no module download, no network
	local $ENV{GO111MODULE} = 'off';
	local $ENV{GOPATH} = '/usr/share/gocode';
	local $ENV{GOCACHE} = "$build/gocache";
	local $ENV{GOFLAGS} = '';
	local $ENV{GOPROXY} = 'off';
	local $ENV{HOME} = $build;
	BAIL_OUT('go-zookeeper is missing: install golang-go and golang-github-samuel-go-zookeeper-dev '
		  . '(scripts/install-deps.sh)')
	  unless -d '/usr/share/gocode/src/github.com/samuel/go-zookeeper/zk';
	my $ok = IPC::Run::run([ 'go', 'build', '-o', "$build/zkgo", "$FindBin::Bin/go/zkgo.go" ],
		'>', \$out, '2>', \$err);
	ok($ok && -x "$build/zkgo", 'the Go program compiles') or BAIL_OUT("go build failed: $out$err");
}
my @jars = map { "/usr/share/java/$_.jar" }
  qw(curator-recipes curator-framework curator-client zookeeper zookeeper-jute
  guava slf4j-api slf4j-nop);
-r $_ or BAIL_OUT("$_ is missing: install libcurator-recipes-java (scripts/install-deps.sh)") for @jars;
my $cp = join(':', @jars);
my $ok = IPC::Run::run(
	[ 'javac', '-nowarn', '-cp', $cp, '-d', $build,
		"$FindBin::Bin/curator/ZkSyncCuratorDoubleBarrier.java" ],
	'>', \$out, '2>', \$err);
ok($ok && -f "$build/ZkSyncCuratorDoubleBarrier.class", 'the Curator program compiles')
  or BAIL_OUT("javac failed: $out$err");

# ---------------------------------------------- driving the programs by lines
my @programs;
END { local $?; $_->{h}->kill_kill for grep { $_->{h}->pumpable } @programs; }

sub program
{
	my (@cmd) = @_;
	my $p = { in => '', out => '', err => '' };
	$p->{h} = IPC::Run::start(\@cmd, '<', \$p->{in}, '>', \$p->{out}, '2>', \$p->{err});
	push @programs, $p;
	my $ready = next_line($p, 60) // '(nothing)';
	die "@cmd did not start: $ready $p->{err}" unless $ready eq 'READY';
	return $p;
}

sub go_client { return program("$build/zkgo", zk_hosts()); }

# The next line a program prints, waiting at most $secs (undef if none came).
sub next_line
{
	my ($p, $secs) = @_;
	my $deadline = mono() + ($secs // 30);
	while (1)
	{
		return $1 if $p->{out} =~ s/^(.*?)\r?\n//;
		return undef if mono() > $deadline;
		$p->{h}->pump_nb;
		sleep 0.005;
	}
}

sub send_line { $_[0]->{in} .= "$_[1]\n"; $_[0]->{h}->pump_nb; }

sub ask
{
	my ($p, $cmd, $secs) = @_;
	send_line($p, $cmd);
	return next_line($p, $secs) // '(no answer)';
}

# True if the program says nothing for $secs: it is still blocked.
sub silent
{
	my ($p, $secs) = @_;
	my $line = next_line($p, $secs // 0.3);
	return 1 unless defined $line;
	$p->{out} = "$line\n$p->{out}";
	return 0;
}

sub quit { my ($p) = @_; my $bye = ask($p, 'quit'); $p->{h}->finish; return $bye; }

# ----------------------------------------------------------- the zksync side
my $node = new_node('go_interop');
my $root = zk_root();
sub sq { return $node->safe_psql('postgres', $_[0]); }

sub extension_waits
{
	return sq("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'");
}

# a zksync statement started in a background session; collect it with finish()
sub start_sql
{
	my ($s, $sql) = @_;
	$s->query_until(qr/started/, "\\echo started\n$sql;\n\\echo finished\n");
}
sub finish_sql { my ($s) = @_; my $r = $s->query_until(qr/finished/, ''); $r =~ s/\s*finished\s*$//; return $r; }

# the children of a lock's directory, sorted
sub lock_children
{
	my ($name) = @_;
	my @c = sort map { m{^\Q$root\E/locks/\Q$name\E/([^/]+)$} ? $1 : () } zk_nodes("$root/locks/$name");
	return @c;
}

# The children of a double barrier's directory: participants and "ready"
sub barrier_children
{
	my ($name) = @_;
	my @c = sort map { m{^\Q$root\E/dbarriers/\Q$name\E/([^/]+)$} ? $1 : () }
	  zk_nodes("$root/dbarriers/$name");
	return @c;    # in scalar context: how many
}

my @z = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 4;

# ------------------------------------------------ 1. the Curator layout: no
is(sq("SELECT current_setting('zksync.lock_layout', true)"), 'curator', 'zksync.lock_layout is curator by default');
my $g1 = go_client();
my $g2 = go_client();
my $g3 = go_client();
$z[0]->query_safe("SELECT zksync_write_lock('mixed')");
like(ask($g1, "wlock $root/locks/mixed"), qr/^ERROR not a valid lock$/,
	'curator layout: a Go writer fails with "not a valid lock" on a zksync node');
like(ask($g1, "rlock $root/locks/mixed"), qr/^LOCKED /,
	'curator layout: a Go reader does not even see the zksync writer');
is(ask($g1, 'unlock'), 'UNLOCKED', 'the Go reader unlocks');
$z[0]->query_safe("SELECT zksync_write_unlock('mixed')");

# ------------------------------------------------- 2. the Go layout: writers
$node->append_conf('postgresql.conf', "zksync.lock_layout = 'go'\n");
$node->reload;
$_->quit for @z;
@z = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 4;
is($z[0]->query_safe("SELECT current_setting('zksync.lock_layout', true)"), 'go', 'zksync.lock_layout = go after reload');

$z[0]->query_safe("SELECT zksync_write_lock('gl')");
my @nodes = lock_children('gl');
is(scalar(@nodes), 1, 'one node for the zksync writer');
like($nodes[0], qr/^_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-write-\d{10}$/,
	'go layout: zksync\'s write node is _c_{uuid}-write-{seq}');
like($z[0]->query_safe("SELECT node FROM zksync_locks() WHERE name = 'gl'"), qr/-write-\d{10}$/,
	'zksync_locks() shows that node');
like(ask($g1, "wlock $root/locks/gl"), qr/^WAITING \S+-write-\d{10} \Q$nodes[0]\E$/,
	'a Go writer parses the zksync node and waits for it (no "not a valid lock")');
is($z[1]->query_safe("SELECT zksync_try_write_lock('gl')"), 'f', 'a second zksync writer cannot take it');
ok(silent($g1), 'the Go writer still waits');
$z[0]->query_safe("SELECT zksync_write_unlock('gl')");
like(next_line($g1, 30) // '(nothing)', qr/^LOCKED _c_[0-9a-f]{32}-write-\d{10}$/,
	'the zksync writer unlocks: the Go writer takes the lock');
is($z[1]->query_safe("SELECT zksync_try_write_lock('gl')"), 'f', 'a zksync writer is excluded by the Go writer');
is($z[1]->query_safe("SELECT zksync_try_read_lock('gl', 200)"), 'f', 'so is a zksync reader');
start_sql($z[1], "SELECT 'got' FROM zksync_write_lock('gl')");
ok(poll_until(sub { extension_waits() == 1 }), 'a zksync writer waits for the Go writer');
is(ask($g1, 'unlock'), 'UNLOCKED', 'the Go writer unlocks');
is(finish_sql($z[1]), 'got', 'the waiting zksync writer takes the lock');
like(ask($g2, "rlock $root/locks/gl"), qr/^WAITING \S+-read-\d{10} \S+-write-\d{10}$/,
	'a Go reader waits for the zksync writer');
$z[1]->query_safe("SELECT zksync_write_unlock('gl')");
like(next_line($g2, 30) // '(nothing)', qr/^LOCKED \S+-read-\d{10}$/, 'and reads once it is gone');
is(ask($g2, 'unlock'), 'UNLOCKED', 'the Go reader unlocks');

# ------------------------------------------------------- 3. readers share
like(ask($g1, "rlock $root/locks/gr"), qr/^LOCKED /, 'a Go reader holds');
is($z[0]->query_safe("SELECT zksync_try_read_lock('gr')"), 't', 'a zksync reader shares with it');
like($z[0]->query_safe("SELECT node FROM zksync_locks() WHERE name = 'gr'"),
	qr/^.*_c_[0-9a-f-]{36}-read-\d{10}$/, 'its node is _c_{uuid}-read-{seq}');
like(ask($g2, "rlock $root/locks/gr"), qr/^LOCKED /, 'a second Go reader shares with both');
is($z[1]->query_safe("SELECT zksync_try_write_lock('gr', 200)"), 'f', 'a zksync writer cannot take it');
like(ask($g3, "wlock $root/locks/gr"), qr/^WAITING /, 'a Go writer waits for the three readers');
$z[0]->query_safe("SELECT zksync_read_unlock('gr')");
ok(silent($g3), 'the zksync reader leaves: the Go writer still waits');
is(ask($g1, 'unlock'), 'UNLOCKED', 'the first Go reader unlocks');
ok(silent($g3), 'the Go writer still waits for the second');
is(ask($g2, 'unlock'), 'UNLOCKED', 'the second Go reader unlocks');
like(next_line($g3, 30) // '(nothing)', qr/^LOCKED /, 'the Go writer takes the lock');
is(ask($g3, 'unlock'), 'UNLOCKED', 'and unlocks');

# ----------------------------------------------------------- 4. FIFO across
$z[0]->query_safe("SELECT zksync_write_lock('fifo')");
like(ask($g1, "wlock $root/locks/fifo"), qr/^WAITING /, 'queued 1st: a Go writer');
start_sql($z[1], "SELECT 'got' FROM zksync_write_lock('fifo')");
ok(poll_until(sub { extension_waits() == 1 }), 'queued 2nd: a zksync writer');
like(ask($g2, "rlock $root/locks/fifo"), qr/^WAITING /, 'queued 3rd: a Go reader');
start_sql($z[2], "SELECT 'got' FROM zksync_read_lock('fifo')");
ok(poll_until(sub { extension_waits() == 2 }), 'queued 4th: a zksync reader');
my @queue = map { my @f = split /\|/; \@f } split /\n/,
  sq("SELECT mode, node, granted, owner <> '' FROM zksync_lock_holders('fifo')");
is(join(' ', map { "$_->[0]:" . ($_->[3] eq 't' ? 'zksync' : 'go') . ($_->[2] eq 't' ? ':held' : '') } @queue),
	'write:zksync:held write:go write:zksync read:go read:zksync',
	'zksync_lock_holders shows the queue in arrival order');
ok(!(grep { $_->[1] !~ /^_c_[0-9a-f-]+-(write|read)-\d{10}$/ } @queue), 'every node has a Go library name');

$z[0]->query_safe("SELECT zksync_write_unlock('fifo')");
like(next_line($g1, 30) // '(nothing)', qr/^LOCKED /, 'the zksync writer unlocks: the Go writer is next');
ok(silent($g2) && extension_waits() == 2, 'the others still wait');
is(ask($g1, 'unlock'), 'UNLOCKED', 'the Go writer unlocks');
is(finish_sql($z[1]), 'got', 'the zksync writer is next');
ok(silent($g2) && extension_waits() == 1, 'both readers still wait');
$z[1]->query_safe("SELECT zksync_write_unlock('fifo')");
like(next_line($g2, 30) // '(nothing)', qr/^LOCKED /, 'the zksync writer unlocks: the Go reader reads');
is(finish_sql($z[2]), 'got', 'and so does the zksync reader, beside it');
is(ask($g2, 'unlock'), 'UNLOCKED', 'the Go reader unlocks');
$z[2]->query_safe("SELECT zksync_read_unlock('fifo')");
ok(poll_until(sub { !grep { m{/locks/} } zk_ephemerals() }), 'no lock node is left');

# ------------------------------------------- 5. double barrier: 2 Go, 2 zksync
# Go ids below "_c_" (so a Go participant is the lowest, the last one out
# and removes "ready" and the barrier) or above it (zksync's is); and who
# arrives 4th, making "ready": zksync (ephemeral) or Go (persistent)
for my $case ([ 'lowgo', 'A1', 'A2', 'zksync' ], [ 'highgo', 'go-1', 'go-2', 'go' ])
{
	my ($name, $id1, $id2, $fourth) = @$case;
	my $dir = "$root/dbarriers/$name";
	my ($ga, $gb) = ($g1, $g2);

	send_line($ga, "enter $dir $id1 4");
	start_sql($z[0], "SELECT zksync_dbarrier_enter('$name', 4, 30000)");
	if ($fourth eq 'zksync')
	{
		send_line($gb, "enter $dir $id2 4");
	}
	else
	{
		start_sql($z[1], "SELECT zksync_dbarrier_enter('$name', 4, 30000)");
	}
	ok(poll_until(sub { scalar(barrier_children($name)) == 3 }), "$name: three participants have entered");
	ok(silent($ga) && silent($gb) && extension_waits() == ($fourth eq 'zksync' ? 1 : 2),
		"$name: nobody passes enter with three of four");
	if ($fourth eq 'zksync')
	{
		is($z[1]->query_safe("SELECT zksync_dbarrier_enter('$name', 4, 30000)"), 't',
			"$name: a zksync participant arrives 4th and passes");
	}
	else
	{
		send_line($gb, "enter $dir $id2 4");
	}
	is(next_line($ga, 30), 'ENTERED', "$name: Go participant $id1 passes enter");
	is(next_line($gb, 30), 'ENTERED', "$name: Go participant $id2 passes enter");
	is(finish_sql($z[0]), 't', "$name: zksync participant 1 passes enter");
	is(finish_sql($z[1]), 't', "$name: zksync participant 2 passes enter") if $fourth eq 'go';
	is(join(',', grep { $_ eq 'ready' } barrier_children($name)), 'ready', "$name: \"ready\" is there");

	# exit: the one arriving last is the zksync participant 2
	send_line($ga, 'exit');
	start_sql($z[0], "SELECT zksync_dbarrier_exit('$name', 30000)");
	send_line($gb, 'exit');
	ok(poll_until(sub { extension_waits() == 1 }), "$name: three exit");
	ok(silent($ga) && silent($gb) && extension_waits() == 1,
		"$name: nobody passes exit while a participant works");
	is($z[1]->query_safe("SELECT zksync_dbarrier_exit('$name', 30000)"), 't',
		"$name: the 4th exits and passes");
	is(next_line($ga, 30), 'EXITED', "$name: Go participant $id1 passes exit (no error)");
	is(next_line($gb, 30), 'EXITED', "$name: Go participant $id2 passes exit (no error)");
	is(finish_sql($z[0]), 't', "$name: zksync participant 1 passes exit");
	ok(poll_until(sub { scalar(barrier_children($name)) == 0 }), "$name: no participant or \"ready\" left");
}

# ------------------------------ 6. double barrier: 2 Curator, 2 zksync
for my $case ([ 'curator1', 'zksync' ], [ 'curator2', 'curator' ])
{
	my ($name, $fourth) = @$case;
	my $cur = program('java', '-Xmx128m', '-cp', "$build:$cp", 'ZkSyncCuratorDoubleBarrier',
		zk_hosts(), "$root/dbarriers/$name", 4, 2);

	send_line($cur, 'enter 0');
	start_sql($z[0], "SELECT zksync_dbarrier_enter('$name', 4, 30000)");
	if ($fourth eq 'zksync')
	{
		send_line($cur, 'enter 1');
	}
	else
	{
		start_sql($z[1], "SELECT zksync_dbarrier_enter('$name', 4, 30000)");
	}
	ok(poll_until(sub { scalar(barrier_children($name)) == 3 }), "$name: three participants have entered");
	ok(silent($cur) && extension_waits() == ($fourth eq 'zksync' ? 1 : 2),
		"$name: nobody passes enter with three of four");
	if ($fourth eq 'zksync')
	{
		is($z[1]->query_safe("SELECT zksync_dbarrier_enter('$name', 4, 30000)"), 't',
			"$name: a zksync participant arrives 4th and passes");
	}
	else
	{
		send_line($cur, 'enter 1');
	}
	is(join(' ', sort grep { defined } map { next_line($cur, 30) } 1 .. 2), 'ENTERED 0 ENTERED 1',
		"$name: both Curator participants pass enter");
	is(finish_sql($z[0]), 't', "$name: zksync participant 1 passes enter");
	is(finish_sql($z[1]), 't', "$name: zksync participant 2 passes enter") if $fourth eq 'curator';

	send_line($cur, 'leave 0');
	start_sql($z[0], "SELECT zksync_dbarrier_exit('$name', 30000)");
	send_line($cur, 'leave 1');
	ok(poll_until(sub { extension_waits() == 1 }), "$name: three leave");
	ok(silent($cur) && extension_waits() == 1, "$name: nobody passes leave while a participant works");
	is($z[1]->query_safe("SELECT zksync_dbarrier_exit('$name', 30000)"), 't', "$name: the 4th exits and passes");
	is(join(' ', sort grep { defined } map { next_line($cur, 30) } 1 .. 2), 'LEFT 0 LEFT 1',
		"$name: both Curator participants pass leave");
	is(finish_sql($z[0]), 't', "$name: zksync participant 1 passes exit");
	ok(poll_until(sub { scalar(barrier_children($name)) == 0 }), "$name: no participant or \"ready\" left");
	is(quit($cur), 'BYE', "$name: the Curator program closes");
}

is(quit($_), 'BYE', 'a Go program closes') for ($g1, $g2, $g3);
$_->quit for @z;
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'no ephemeral node left after the suite');
$node->stop;
done_testing();
