# A careless neighbour on the ensemble: a kazoo client deletes nodes that
# zksync backends hold (a transaction lock, a session lock, a semaphore
# lease, a double-barrier participant), changes their data, and queues
# behind a lock with a 700-byte name.  Every deleted hold is lost at once:
# another backend gets the lock, the holder hears a WARNING at its next
# statement, zksync_locks() says "lost", and COMMIT and PREPARE refuse.  A
# waiter behind the long name sleeps on its watch.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

my $node = new_node('held');
$node->append_conf('postgresql.conf', "max_prepared_transactions = 5\n");
$node->restart;
$node->safe_psql('postgres', 'CREATE TABLE t (i int)');
my $root = zk_root();

# The neighbour: one kazoo session driven line by line.
my ($kin, $kout, $kerr) = ('', '', '');
my $k = IPC::Run::start([ zkclient('session', '-') ], \$kin, \$kout, \$kerr,
	IPC::Run::timeout(300));
$k->pump until $kout =~ /ready\n/;

sub kazoo
{
	my ($line, $re) = @_;
	$kout = '';
	$kin .= "$line\n";
	eval { $k->pump until $kout =~ $re; };
	die "kazoo failed on \"$line\": $@ $kerr" if $@;
	my @m = $kout =~ $re;
	return wantarray ? @m : $m[0];
}

# A query on a background session: (stdout, stderr of this query alone)
sub qe
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	return ($out, $s->{stderr});
}

# The WARNING that a statement of $s says once the client has heard of the
# delete (the news travels apart from kazoo's answer: poll, statement by
# statement, for at most 10 s).  Returns every statement's stderr.
sub warned_soon
{
	my ($s, $re) = @_;
	my $all = '';
	poll_until(sub { my (undef, $err) = qe($s, 'SELECT 1'); $all .= $err; $all =~ $re }, 10);
	return $all;
}

sub node_of
{
	my ($s, $name) = @_;
	my ($out) = qe($s, "SELECT node FROM zksync_locks() WHERE name = '$name'");
	return $out;
}

my $s1 = $node->background_psql('postgres', on_error_stop => 0);
my $s2 = $node->background_psql('postgres', on_error_stop => 0);

# --- a transaction lock
{
	qe($s1, 'BEGIN');
	qe($s1, "SELECT zksync_xact_write_lock('x1')");
	my $path = node_of($s1, 'x1');
	like($path, qr{^$root/locks/x1/_c_}, 'the xact lock has its node');
	is(kazoo("delete $path", qr/^(deleted|nonode)\n/), 'deleted', 'kazoo deletes the held node');
	my ($got) = qe($s2, "SELECT zksync_try_write_lock('x1', 5000)");
	is($got, 't', 'another backend is granted the lock at once');
	my ($out, $err) = qe($s1, 'INSERT INTO t VALUES (1)');
	$err .= warned_soon($s1, qr/WARNING:  zksync write lock "x1" is lost/);
	like($err, qr/WARNING:  zksync write lock "x1" is lost\nDETAIL:  Another client deleted node /,
		'the holder hears a WARNING at a statement');
	is(() = $err =~ /is lost/g, 1, 'once');
	($out) = qe($s1, "SELECT state FROM zksync_locks() WHERE name = 'x1'");
	is($out, 'lost', 'zksync_locks() shows the hold lost');
	($out, $err) = qe($s1, 'COMMIT');
	like($err, qr/ERROR:  cannot commit: zksync write lock "x1" was lost during the transaction/,
		'COMMIT is refused, naming the lock');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'nothing was committed');
	qe($s2, "SELECT zksync_write_unlock('x1')");
}

# --- a session lock, relied on by a writing transaction; and PREPARE
{
	qe($s1, "SELECT zksync_write_lock('x2')");
	my $path = node_of($s1, 'x2');
	qe($s1, 'BEGIN');
	qe($s1, 'INSERT INTO t VALUES (2)');
	is(kazoo("delete $path", qr/^(deleted|nonode)\n/), 'deleted', 'kazoo deletes a session lock\'s node');
	my ($out, $err) = qe($s1, 'COMMIT');
	like($err, qr/WARNING:  zksync write lock "x2" is lost.*ERROR:  cannot commit: zksync write lock "x2"/s,
		'COMMIT of a transaction that wrote under it is refused, naming it');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'nothing was committed');
	($out, $err) = qe($s1, "SELECT zksync_write_unlock('x2')");
	like($err, qr/ERROR:  zksync write lock "x2" was lost\nDETAIL:  Another client deleted its node /,
		'unlocking it raises an ERROR naming it');

	qe($s1, "SELECT zksync_write_lock('x3')");
	$path = node_of($s1, 'x3');
	qe($s1, 'BEGIN');
	qe($s1, 'INSERT INTO t VALUES (3)');
	kazoo("delete $path", qr/^(deleted|nonode)\n/);
	($out, $err) = qe($s1, "PREPARE TRANSACTION 'p3'");
	like($err, qr/ERROR:  cannot commit: zksync write lock "x3" was lost during the transaction/,
		'PREPARE TRANSACTION is refused too');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0',
		'nothing was prepared');
	qe($s1, 'SELECT zksync_unlock_all()');
}

# --- a lease, relied on by a writing transaction
{
	my ($out) = qe($s1, "SELECT zksync_semaphore_acquire('sem', 1)");
	is($out, 't', 'a lease of a semaphore of 1');
	($out) = qe($s1, "SELECT node FROM zksync_locks() WHERE mode = 'lease'");
	like($out, qr{/semaphores/sem/leases/}, 'the lease has its node');
	qe($s1, 'BEGIN');
	qe($s1, 'INSERT INTO t VALUES (4)');
	kazoo("delete $out", qr/^(deleted|nonode)\n/);
	($out) = qe($s2, "SELECT zksync_semaphore_acquire('sem', 1, 5000)");
	is($out, 't', 'another backend gets the only lease');
	my $err = warned_soon($s1, qr/semaphore "sem" is lost/);
	like($err, qr/WARNING:  a lease of zksync semaphore "sem" is lost\nDETAIL:  Another client deleted node /,
		'the lease holder hears a WARNING at a statement');
	($out) = qe($s1, "SELECT state FROM zksync_locks() WHERE mode = 'lease'");
	is($out, 'lost', 'zksync_locks() shows the lease lost');
	($out, $err) = qe($s1, 'COMMIT');
	like($err, qr/ERROR:  cannot commit: a lease of zksync semaphore "sem" was lost during the transaction/,
		'COMMIT under the lost lease is refused');
	($out, $err) = qe($s1, "SELECT zksync_semaphore_release('sem')");
	like($err, qr/ERROR:  a lease of zksync semaphore "sem" was lost\nDETAIL:  Another client deleted its node /,
		'releasing it raises an ERROR naming it');
	qe($s2, "SELECT zksync_semaphore_release('sem')");
}

# --- a double-barrier participant
{
	my ($out) = qe($s1, "SELECT zksync_dbarrier_enter('db', 1, 5000)");
	is($out, 't', 'one participant enters a double barrier of one');
	my ($part) = grep { m{/dbarriers/db/} && !m{/ready$} } zk_ephemerals();
	ok(defined $part, 'its participant node exists');
	kazoo("delete $part", qr/^(deleted|nonode)\n/);
	like(warned_soon($s1, qr/double barrier "db" is lost/),
		qr/WARNING:  this backend's place in double barrier "db" is lost\nDETAIL:  Another client deleted node /,
		'the participant hears a WARNING at a statement');
	($out) = qe($s1, "SELECT zksync_dbarrier_exit('db', 5000)");
	is($out, 't', 'leaving still works');
}

# --- data changed by the neighbour: still held, and still watched
{
	qe($s1, "SELECT zksync_write_lock('x5')");
	my $path = node_of($s1, 'x5');
	is(kazoo("set $path scribbled", qr/^(set|nonode)\n/), 'set', 'kazoo overwrites the held node\'s data');
	# a COMMIT that relies on the lock asks the server (a sync): the news
	# of the change has come by its end
	my ($out, $err) = qe($s1, 'BEGIN; INSERT INTO t VALUES (6); COMMIT');
	is($err, '', 'a data change is no loss: a transaction under the lock commits, no WARNING');
	($out) = qe($s1, "SELECT state FROM zksync_locks() WHERE name = 'x5'");
	is($out, 'held', 'the lock is still held');
	kazoo("delete $path", qr/^(deleted|nonode)\n/);
	like(warned_soon($s1, qr/"x5" is lost/), qr/WARNING:  zksync write lock "x5" is lost/,
		'a delete after it is still seen');
	qe($s1, 'SELECT zksync_unlock_all()');
}

# --- our own releases are no loss: no WARNING, nothing lost
{
	my $warnings = 0;
	for my $i (1 .. 20)
	{
		my (undef, $e1) = qe($s1, "SELECT zksync_write_lock('own')");
		my (undef, $e2) = qe($s1, "SELECT zksync_write_unlock('own')");
		my (undef, $e3) = qe($s1, 'BEGIN; SELECT zksync_xact_read_lock(\'own\'); INSERT INTO t VALUES (5); COMMIT');
		$warnings++ if "$e1$e2$e3" ne '';
	}
	is($warnings, 0, '20 cycles of our own: no WARNING and no refused COMMIT');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE i = 5'), '20', 'all 20 committed');
}

# --- a 700-byte foreign contender: the waiter sleeps on its watch
{
	my $long = 'n' x 690;
	my ($made) = kazoo("create $root/locks/long/$long-__WRIT__ {}", qr/^created (\S+) \d+\n/);
	ok(length($made) > 700, 'kazoo queues a writer with a ' . length($made =~ s{.*/}{}r) . '-byte name');
	my ($pid) = qe($s1, 'SELECT pg_backend_pid()');
	my $cpu = sub {
		open my $fh, '<', "/proc/$pid/stat" or return 0;
		my @f = split ' ', (<$fh> =~ s/^.*\) //r);
		return ($f[11] + $f[12]) / 100.0;	# utime + stime, every thread
	};
	my $before = $cpu->();
	my $t0 = time;
	my ($out) = qe($s1, "SELECT zksync_try_write_lock('long', 3000)");
	my $waited = time - $t0;
	my $used = $cpu->() - $before;
	is($out, 'f', 'zksync waits behind it and times out');
	ok($waited >= 2.9, sprintf('it waited the whole 3 s (%.2f s)', $waited));
	ok($used < 0.3, sprintf('using %.2f s of CPU over the wait: it slept on a watch', $used));
	kazoo("delete $made", qr/^(deleted|nonode)\n/);
	($out) = qe($s1, "SELECT zksync_try_write_lock('long', 3000)");
	is($out, 't', 'once it goes, the lock is granted');
	qe($s1, 'SELECT zksync_unlock_all()');
	is(scalar(grep { m{/locks/long/} } zk_nodes()), 0, 'nothing left behind');
}

$s1->quit;
$s2->quit;
$kin .= "quit\n";
$k->finish;
done_testing();
