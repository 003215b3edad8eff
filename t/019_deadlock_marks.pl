# Deadlock marks are claims, checked by their victim.
#
# A deadlock's victim that cannot see the whole cycle (it runs through
# another cluster's PostgreSQL locks) is told by a mark,
# {root}/deadlocks/{its session id}.  Anyone may write there when
# zksync.auth is off, and a mark may outlive the wait it was about.  A
# kazoo client plays the careless or hostile neighbour:
#
#  (a) a forged mark with the text "x" for a waiting backend's session,
#      and one in zksync's format that names the backend's current wait
#      but a cycle that does not exist (with and without a claimed hop
#      through PostgreSQL locks): the wait goes on, ends with its
#      lock_timeout, and the backend deletes the mark meanwhile;
#  (b) a stale mark, well formed, that names an earlier waiting node of
#      the same session: ignored and deleted;
#  (c) marks whose data is truncated, invalid UTF-8, oversized, ends
#      inside a \u escape, holds a NUL byte or names a key twice: ignored
#      and deleted;
#  (d) a real cycle across two clusters through a row lock (the mark path)
#      still ends with 40P01 for the youngest wait, with a DETAIL that
#      names every wait, the row lock of the other cluster among them.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use ZkSyncJobs;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use JSON::PP;

my $root = zk_root();
my $A = new_node('mk_a');
my $B = new_node('mk_b');
for my $node ($A, $B)
{
	$node->append_conf('postgresql.conf', "deadlock_timeout = '200ms'\n");
	$node->reload;
	ok(poll_until(sub { $node->safe_psql('postgres', 'SHOW deadlock_timeout') eq '200ms' }),
		$node->name . ': deadlock_timeout is 200ms');
}

# Jobs (background psql sessions, ZkSyncJobs.pm) and what they leave

sub contenders { return grep { m{^\Q$root\E/(locks|semaphores)/.*/_c_} } zk_nodes(); }
sub wait_records { return grep { m{^\Q$root\E/(waits|deadlocks)/.} } zk_nodes(); }
sub has_node { my ($path) = @_; return scalar grep { $_ eq $path } zk_nodes(); }

# ---------------------------------------------------------------------
# The neighbour: one kazoo session
# ---------------------------------------------------------------------
my ($kin, $kout, $kerr) = ('', '', '');
my $k = IPC::Run::start([ zkclient('session', '-') ], \$kin, \$kout, \$kerr, IPC::Run::timeout(300));

sub ask
{
	my ($line, $re) = @_;
	$kout = '';
	$kin .= "$line\n";
	$k->pump until $kout =~ $re;
	return $kout =~ $re;
}
$k->pump until $kout =~ /ready\n/;

# A node's data and czxid, read by the neighbour: (bytes, czxid), or ()
sub zk_get
{
	my ($path) = @_;
	ask("get $path", qr/^(got ([0-9a-f]*) (\d+)|none)\n/);
	return () unless $kout =~ /^got ([0-9a-f]*) (\d+)/;
	return (pack('H*', $1), $2);
}

# The neighbour's mark for $session, with these bytes
sub put_mark
{
	my ($session, $bytes) = @_;
	ask("puthex $root/deadlocks/$session " . unpack('H*', $bytes), qr/^put\n/);
	return;
}

# The wait $session has published: [its waiting node, that node's czxid]
sub published_wait
{
	my ($session) = @_;
	my ($data) = zk_get("$root/waits/$session");
	return undef unless defined $data;
	my $r = decode_json($data);
	return [ $r->{node}, $r->{czxid} ];
}

# A mark in zksync's own format: owner data (here a made-up backend's),
# then the victim's session, its waiting node and that node's czxid, and
# the cycle, one line per wait
sub mark_json
{
	my (%m) = @_;
	my $app = $m{application_name} // 'neighbour';
	return
		'{"host":"elsewhere","port":5432,"database":"postgres","pid":4242,'
	  . "\"application_name\":\"$app\",\"cluster\":\"999\","
	  . '"backend_start":"2026-01-01 00:00:00+00",'
	  . "\"victim\":\"$m{victim}\",\"node\":\"$m{node}\",\"czxid\":$m{czxid},"
	  . '"cycle":"' . join('\n', @{ $m{cycle} }) . '"' . ($m{more} // '') . '}';
}

# ---------------------------------------------------------------------
# (a)-(c): marks for a backend that waits, with no cycle at all
# ---------------------------------------------------------------------
my $h = job($A, 'holder');
my $w = job($A, 'waiter');
run($h, "SELECT zksync_write_lock('m')");
run($w, "SELECT zksync_write_lock('warm')");
my $w_session = run($w, 'SELECT session_id FROM zksync_session()');
my $h_session = run($h, 'SELECT session_id FROM zksync_session()');
like($w_session, qr/^0x[0-9a-f]+$/, 'the waiter has a ZooKeeper session');
my ($h_node) = grep { m{/locks/m/_c_} } contenders();
my (undef, $h_czxid) = zk_get($h_node);
ok(defined $h_czxid, 'the holder\'s node of m is there, with its czxid');
run($w, "SET lock_timeout = '3s'");
my $mark = "$root/deadlocks/$w_session";
my $previous;    # the waiter's wait before the current one: [node, czxid]

# The waiter waits for m (the holder has it); once its wait is published
# (past deadlock_timeout), the neighbour puts the mark $make->(node, czxid)
# of that wait.  The mark must go while the wait goes on, and the wait end
# with lock_timeout.
sub wait_with_mark
{
	my ($what, $make) = @_;
	start($w, "SELECT zksync_write_lock('m')");
	my $cur = poll_until(
		sub {
			my $r = published_wait($w_session);
			return $r && (!$previous || $r->[0] ne $previous->[0]) ? $r : undef;
		},
		10);
	ok(defined $cur && $cur->[0] =~ m{/locks/m/_c_} && $cur->[1] > 0,
		"$what: the waiter waits for m and has published its wait");
	put_mark($w_session, $make->(@$cur));
	ok(poll_until(sub { !has_node($mark) }, 10), "$what: the waiter deleted the mark");
	ok(!done($w), "$what: ... and goes on waiting");
	ok(poll_until(sub { done($w) }, 15), "$what: the wait ended");
	like(error($w), qr/ERROR:  55P03: canceling statement due to lock timeout/,
		"$what: with lock_timeout (55P03)");
	unlike(error($w), qr/40P01|deadlock/, "$what: no deadlock was reported");
	settle($w);
	$previous = $cur;
	return;
}

# (a) forged marks
wait_with_mark('a mark with the text "x"', sub { 'x' });
wait_with_mark(
	'a well-formed mark for the current wait, but no cycle',
	sub {
		my ($node, $czxid) = @_;
		return mark_json(
			victim => $w_session,
			node => $node,
			czxid => $czxid,
			cycle => [ "$w_session $czxid $h_czxid", "$h_session $h_czxid $czxid" ]);
	});
wait_with_mark(
	'a well-formed mark for the current wait, claiming a hop through PostgreSQL locks',
	sub {
		my ($node, $czxid) = @_;
		return mark_json(
			victim => $w_session,
			node => $node,
			czxid => $czxid,
			cycle => ["$w_session $czxid $h_czxid pg $h->{pid} 1.5.4.1.0.0.0"]);
	});

# (b) stale
wait_with_mark(
	'a well-formed mark that names the waiter\'s earlier wait',
	sub {
		my ($old_node, $old_czxid) = @$previous;
		return mark_json(
			victim => $w_session,
			node => $old_node,
			czxid => $old_czxid,
			cycle => [ "$w_session $old_czxid $h_czxid", "$h_session $h_czxid $old_czxid" ]);
	});

# (c) malformed
my $good = sub {
	my ($node, $czxid, %more) = @_;
	return mark_json(
		victim => $w_session,
		node => $node,
		czxid => $czxid,
		cycle => [ "$w_session $czxid $h_czxid", "$h_session $h_czxid $czxid" ],
		%more);
};
wait_with_mark('a truncated mark', sub { my $m = $good->(@_); return substr($m, 0, length($m) - 30); });
wait_with_mark('a mark that is not valid UTF-8',
	sub { return $good->(@_, application_name => "bad\xff\xfe\xc3") });
wait_with_mark('an oversized mark (100 kB)', sub { return $good->(@_, more => ',"pad":"' . ('p' x 100000) . '"') });
wait_with_mark('a mark that ends inside a \\u escape', sub { return '{"host":"\\u00' });
wait_with_mark('a mark with a NUL byte', sub { my $m = $good->(@_); substr($m, 10, 1) = "\0"; return $m; });
wait_with_mark('a mark that names its node twice',
	sub { return $good->(@_, more => ',"node":"' . $root . '/locks/m/elsewhere"') });

ok(poll_until(sub { !wait_records() }), 'no published wait or mark is left')
  or diag join("\n", zk_nodes());
run($h, 'SELECT zksync_unlock_all()');
run($w, 'SELECT zksync_unlock_all()');
$_->{s}->quit for $h, $w;

# ---------------------------------------------------------------------
# (d) a real cycle that only a mark can tell its victim
# ---------------------------------------------------------------------
# q1 (A) holds x and waits for q2's row (A); q2 waits for y, held by q3
# (B); q3 waits for x.  q3 is the youngest wait and cannot see A's row
# lock: q2's scans leave it a mark, which q3 checks against the records.
$A->safe_psql('postgres', 'CREATE TABLE acct (id int PRIMARY KEY, v int); INSERT INTO acct VALUES (1, 0)');
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
	ok( poll_until(
			sub {
				$A->safe_psql('postgres',
					"SELECT count(*) FROM pg_stat_activity WHERE pid = $q1->{pid} AND wait_event_type = 'Lock'")
				  == 1;
			}),
		'q1 (A) holds x and waits for the row of q2 (A)');
	start($q2, "SELECT zksync_xact_write_lock('y')");
	ok( poll_until(
			sub {
				$A->safe_psql('postgres',
					"SELECT count(*) FROM zksync_waits() WHERE pid = $q2->{pid} AND name = 'y' AND NOT granted")
				  == 1;
			}),
		'q2 waits for y, held by q3 (B)');
	start($q3, "SELECT zksync_xact_write_lock('x')");
	ok(poll_until(sub { done($q3) }, 20), 'q3 (B), asking for x, ended its lock call');
	ok(deadlocked($q3), 'q3 got 40P01 deadlock detected') or diag error($q3);
	my ($detail) = error($q3) =~ /^DETAIL:  (.*?)\n(?:HINT|LOCATION|psql|[A-Z]+:  )/ms;
	is( join("\n", sort split /\n/, $detail // ''),
		join("\n",
			sort "Process $q3->{pid} on cluster $q3->{label} waits for zksync write lock \"x\"; blocked by process $q1->{pid} on cluster $q1->{label}.",
			"Process $q1->{pid} on cluster $q1->{label} waits for ShareLock on transaction $xid; blocked by process $q2->{pid}.",
			"Process $q2->{pid} on cluster $q2->{label} waits for zksync write lock \"y\"; blocked by process $q3->{pid} on cluster $q3->{label}."),
		'its DETAIL names the three waits, the row lock of cluster A among them');
	ok(poll_until(sub { done($q2) }, 30), 'q2 got y');
	is(error($q2), '', 'without error');
	settle($_) for $q2, $q3;
	run($q3, 'ROLLBACK');
	run($q2, 'COMMIT');
	ok(poll_until(sub { done($q1) }, 30), 'once q2 commits, q1\'s UPDATE completes');
	is(error($q1), '', 'without error');
	settle($q1);
	run($q1, 'COMMIT');
	ok(poll_until(sub { !contenders() && !wait_records() }), 'nothing left in ZooKeeper, no mark either')
	  or diag join("\n", zk_nodes());
	$_->{s}->quit for $q1, $q2, $q3;
}

$kin .= "quit\n";
$k->finish;
$A->stop;
$B->stop;
done_testing();
