# Under zksync.auth the tree under zksync.root is zksync's: a root zksync
# makes is persistent and carries its ACL (its digest identity: all rights;
# anyone: read), as do the directories under it, so a kazoo client without
# credentials can create, delete or change nothing there; a root (or fixed
# directory) that someone else made open is refused with 42501 naming it,
# until its ACL is fixed as the hint says; the check is made once per
# session.  Without zksync.auth nothing changes: open ACLs, container
# directories.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Digest::SHA qw(sha1_base64);

my $auth = 'zksync:s3cret';
# the digest identity as ZooKeeper stores it: user:base64(sha1(user:password))
my $ours = 'digest:zksync:' . sha1_base64($auth) . '=';
my $zksync_acl = join(',', sort ("$ours:cdrwa", 'world:anyone:r'));
my @fixed = qw(locks semaphores barriers dbarriers waits deadlocks);

# kazoo (t/zkclient.py), without credentials unless $ENV{ZK_AUTH} says
sub zk
{
	my ($out, $err) = run_command([ zkclient(@_) ]);
	die "zkclient @_ failed: $err" if $err =~ /Traceback/;
	chomp $out;
	return $out;
}
sub zk_as_zksync { local $ENV{ZK_AUTH} = $auth; return zk(@_); }
# a node's ACL, read as zksync's identity: ZooKeeper shows a digest's hash
# only to those who may administer the node ("zksync:x" to others)
sub acl_of { return join(',', sort split /\n/, zk_as_zksync('getacl', $_[0])); }
sub exists_zk { return zk('stat', $_[0]) ne 'none'; }

# zkCli.sh, as an operator runs it: the commands on its stdin
sub zkcli
{
	my @commands = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ '/usr/share/zookeeper/bin/zkCli.sh', '-server', zk_hosts() ],
		'<', \(join("\n", @commands, 'quit') . "\n"), '>', \$out, '2>', \$err,
		IPC::Run::timeout(60));
	return $out . $err;
}

my $node = new_node('auth_tree');
$node->append_conf('postgresql.conf', "zksync.auth = '$auth'\n");
$node->reload;

# A statement as a superuser of the cluster, with the root given; returns
# (stdout, stderr with the SQLSTATE)
sub sql
{
	my ($root, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSET zksync.root = '$root';\n$sql");
	return ($out, $err);
}

# A session that stays, for holds and waits
sub session
{
	my ($root, @set) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('\set VERBOSITY verbose');
	$s->query_safe("SET statement_timeout = '60s'");
	$s->query_safe("SET zksync.root = '$root'");
	$s->query_safe($_) for @set;
	return $s;
}

# ---------------------------------------------------------------------
# (a) a root zksync makes under zksync.auth is its own
# ---------------------------------------------------------------------
my $ra = zk_root() . '-a';
my $holder = session($ra);
$holder->query_safe("SELECT zksync_write_lock('alpha')");
my $held = $holder->query_safe(
	"SELECT node FROM zksync_locks() WHERE name = 'alpha'");
like($held, qr{^\Q$ra\E/locks/alpha/_c_}, 'the lock is held under the fresh root');

# a waiter past deadlock_timeout publishes its wait under waits/
my $waiter = session($ra, "SET deadlock_timeout = '100ms'");
$waiter->{stdin} .= "SELECT zksync_write_lock('alpha');\n\\echo waiter-done\n";
$waiter->{run}->pump_nb;
my $record;
poll_until(sub { ($record) = split /\n/, zk('children', "$ra/waits"); defined $record }, 30);
ok(defined $record, 'the waiter published its wait record');
$record = "$ra/waits/$record";

is(acl_of($ra), $zksync_acl, 'the root carries zksync\'s ACL: its identity all rights, anyone read');
is(acl_of("$ra/$_"), $zksync_acl, "$_/ carries zksync's ACL") for @fixed;
is(acl_of("$ra/locks/alpha"), $zksync_acl, 'a lock\'s directory carries it');
is(acl_of($held), $zksync_acl, 'a lock node carries it');
is(acl_of($record), $zksync_acl, 'a wait record carries it');

# the neighbour, without credentials, can write nothing under the root
my %writes = (
	"create $ra/forged" => [ 'create', "$ra/forged" ],
	"create $ra/locks/forged" => [ 'create', "$ra/locks/forged" ],
	"create a contender in $ra/locks/alpha" =>
	  [ 'create', "$ra/locks/alpha/_c_00000000-0000-0000-0000-000000000000-__WRIT__0000000000" ],
	"create $ra/waits/0x1" => [ 'create', "$ra/waits/0x1", '{}' ],
	"create $ra/deadlocks/0x1" => [ 'create', "$ra/deadlocks/0x1", 'x' ],
	"create $ra/semaphores/s" => [ 'create', "$ra/semaphores/s" ],
	"create $ra/barriers/b" => [ 'create', "$ra/barriers/b" ],
	"delete the held lock node" => [ 'delete', $held ],
	"delete the wait record" => [ 'delete', $record ],
	"delete $ra/deadlocks" => [ 'delete', "$ra/deadlocks" ],
	"delete $ra/barriers" => [ 'delete', "$ra/barriers" ],
	"set $ra" => [ 'set', $ra, 'x' ],
	"set $ra/locks" => [ 'set', "$ra/locks", 'x' ],
	"set $ra/locks/alpha" => [ 'set', "$ra/locks/alpha", 'x' ],
	"set $ra/waits" => [ 'set', "$ra/waits", 'x' ],
	"set $ra/deadlocks" => [ 'set', "$ra/deadlocks", 'x' ],
	"set the wait record" => [ 'set', $record, '{}' ],
	"open the root's ACL" => [ 'open', $ra ],
	"open $ra/waits's ACL" => [ 'open', "$ra/waits" ],);
for my $what (sort keys %writes)
{
	is(zk('try', @{ $writes{$what} }), 'NoAuthError', "without credentials, kazoo cannot $what");
}
ok(exists_zk($held) && exists_zk($record), 'the held node and the wait record are still there');

# the waiter gets the lock once the holder lets go; then nothing is held
$holder->query_safe("SELECT zksync_unlock_all()");
$waiter->{run}->pump until $waiter->{stdout} =~ /waiter-done/;
unlike($waiter->{stderr}, qr/ERROR/, 'the waiter was granted the lock');
$waiter->{stdout} = $waiter->{stderr} = '';
$waiter->query_safe("SELECT zksync_unlock_all()");
ok(poll_until(sub { !exists_zk("$ra/locks/alpha") }, 30),
	'the emptied lock directory (a container) is reaped');
ok(poll_until(sub { zk('children', "$ra/waits") eq '' }, 30), 'the wait record went');
# containers are reaped every second in the test ensemble: give it four
ok(!poll_until(sub { !exists_zk("$ra/waits") || !exists_zk("$ra/locks") }, 4),
	'the emptied waits/ and locks/ stay: persistent, not containers');
ok(exists_zk($ra), 'the root stays');

# ---------------------------------------------------------------------
# the check is made once per session: the holder's session passed it
# ---------------------------------------------------------------------
is(zk_as_zksync('setacl', $ra, 'world:anyone:cdrwa'), 'ok', 'zksync\'s identity opens the root');
$holder->query_safe("SELECT zksync_write_lock('beta')");
pass('a session that passed the check asks nothing more (a lock in it works)');
$holder->query_safe("SELECT zksync_unlock_all()");
my ($out, $err) = sql($ra, "SELECT zksync_write_lock('beta')");
like($err, qr/ERROR:  42501: ZooKeeper node "\Q$ra\E" may be changed by clients other than zksync/,
	'a new backend\'s session is checked: the opened root is refused');
$holder->{stderr} = '';
$holder->query("SET zksync.session_timeout = 5000; SELECT zksync_write_lock('beta')");
like($holder->{stderr}, qr/ERROR:  42501: ZooKeeper node "\Q$ra\E"/,
	'a new session of the same backend is checked again');
is(zk_as_zksync('setacl', $ra, 'auth::cdrwa,world:anyone:r'), 'ok', 'the root\'s ACL restored');
$holder->{stderr} = '';
$holder->query_safe("SELECT zksync_write_lock('beta')");
$holder->query_safe("SELECT zksync_unlock_all()");
pass('and the same backend works again');
$holder->quit;
$waiter->quit;

# ---------------------------------------------------------------------
# (b) a root someone else made open is refused, until fixed as the hint says
# ---------------------------------------------------------------------
my $rb = zk_root() . '-b';
is(zk('create-open', $rb), 'ok', 'a neighbour makes the root, open to all');
my $victim = session($rb);
my @calls = (
	"SELECT zksync_write_lock('x')",
	"SELECT zksync_read_lock('x')",
	"SELECT zksync_write_lock(ARRAY['x', 'y'])",
	"SELECT zksync_try_write_lock('x')",
	"SELECT zksync_try_read_lock('x', 100)",
	"BEGIN; SELECT zksync_xact_write_lock('x'); COMMIT",
	"BEGIN; SELECT zksync_try_xact_read_lock('x'); COMMIT",
	"SELECT zksync_semaphore_acquire('s', 2)",
	"SELECT * FROM zksync_semaphore_leases('s')",
	"SELECT zksync_barrier_set('b')",
	"SELECT zksync_barrier_unset('b')",
	"SELECT zksync_barrier_is_set('b')",
	"SELECT zksync_barrier_wait('b', 100)",
	"SELECT zksync_dbarrier_enter('d', 2, 100)",
	"SELECT * FROM zksync_lock_holders('x')",
	"SELECT * FROM zksync_waits()",
	"SELECT * FROM zksync_blocking(pg_backend_pid())",);
for my $call (@calls)
{
	my ($o, $e) = sql($rb, $call);
	like($e, qr/ERROR:  42501: ZooKeeper node "\Q$rb\E" may be changed by clients other than zksync\n/,
		"refused with 42501 naming the root: $call");
}
like($err = (sql($rb, "SELECT zksync_write_lock('x')"))[1],
	qr/DETAIL:  Its ACL grants world:anyone:cdrwa; with zksync.auth set, no identity but zksync's \(digest user "zksync"\) may create, delete or administer there.\n/,
	'the detail says who has which rights');
like($err, qr/HINT:  .*"addauth digest zksync:PASSWORD".*"setAcl -R \Q$rb\E auth::cdrwa,world:anyone:r"/,
	'the hint gives the zkCli.sh commands');
unlike($err, qr/\Q@{[ sha1_base64($auth) ]}\E|s3cret/, 'and neither the password nor its digest');
is(zk('children', $rb), '', 'zksync made nothing under the refused root');

# a fixed directory made open before is refused too, once the root is fixed
is(zk('create-open', "$rb/locks"), 'ok', 'the neighbour also makes locks/, open');
like(zkcli("addauth digest $auth", "setAcl $rb auth::cdrwa,world:anyone:r"), qr/WatchedEvent/,
	'zkCli.sh fixes the root alone');
is(acl_of($rb), $zksync_acl, 'the root is zksync\'s now');
$victim->query("SELECT zksync_write_lock('x')");
like($victim->{stderr},
	qr/ERROR:  42501: ZooKeeper node "\Q$rb\E\/locks" may be changed by clients other than zksync/,
	'then locks/ is named');

# follow the hint word for word
my ($hint) = $victim->{stderr} =~ /HINT:  (.*)\n/;
my @commands = $hint =~ /"([^"]+)"/g;
is(scalar(@commands), 2, 'the hint names two commands');
s/PASSWORD/s3cret/ for @commands;
zkcli(@commands);
is(acl_of("$rb/locks"), $zksync_acl, 'the hint\'s commands gave locks/ zksync\'s ACL');
$victim->{stderr} = '';
$victim->query("SELECT zksync_write_lock('x')");
is($victim->{stderr}, '', 'the same backend takes the lock now');
is(zk('try', 'create', "$rb/locks/forged"), 'NoAuthError', 'and the neighbour cannot create there any more');
is(zk('try', 'create', "$rb/forged"), 'NoAuthError', 'nor under the root');
is(acl_of("$rb/$_"), $zksync_acl, "zksync made $_/ with its ACL") for grep { $_ ne 'locks' } @fixed;
$victim->query_safe("SELECT zksync_unlock_all()");
$victim->quit;

# a root on which zksync's identity may not create: refused as well
my $rb2 = zk_root() . '-b2';
zk('create-open', $rb2);
is(zk('setacl', $rb2, 'world:anyone:r'), 'ok', 'a root that anyone may only read');
($out, $err) = sql($rb2, "SELECT zksync_write_lock('x')");
like($err, qr/ERROR:  42501: zksync may not create and delete nodes under ZooKeeper node "\Q$rb2\E"\n/,
	'refused: zksync may not create there');
like($err, qr/DETAIL:  Its ACL is world:anyone:r, which gives zksync's identity \(digest user "zksync"\) the rights "r"/,
	'the detail gives the ACL and zksync\'s rights');

# ---------------------------------------------------------------------
# (c) without zksync.auth nothing changes
# ---------------------------------------------------------------------
my $rc = zk_root() . '-c';
zk('create-open', $rc);
($out, $err) = sql($rc, "SET zksync.auth = ''; SELECT zksync_write_lock('gamma'); "
	  . "SELECT node FROM zksync_locks(); SELECT zksync_unlock_all()");
is($err, '', 'without zksync.auth, locks work on an open root');
my ($gamma) = $out =~ m{^(\Q$rc\E/locks/gamma/\S+)$}m;
ok(defined $gamma, 'the lock node was made there');
my $s = session($rc, "SET zksync.auth = ''");
$s->query_safe("SELECT zksync_write_lock('gamma')");
my $node_c = $s->query_safe("SELECT node FROM zksync_locks()");
is(acl_of($node_c), 'world:anyone:cdrwa', 'its node is open to all, as before');
is(acl_of("$rc/locks"), 'world:anyone:cdrwa', 'and so is locks/');
is(zk('try', 'create', "$rc/locks/kazoo"), 'ok', 'a kazoo client may create beside it, as before');
$s->query_safe("SELECT zksync_unlock_all()");
$s->quit;

my $rc2 = zk_root() . '-c2';
($out, $err) = sql($rc2, "SET zksync.auth = ''; SELECT zksync_write_lock('delta'); "
	  . "SELECT zksync_unlock_all()");
is($err, '', 'without zksync.auth, locks work on a fresh root');
ok(poll_until(sub { !exists_zk($rc2) }, 30),
	'whose directories and root are containers, reaped once empty, as before');

# a refused zksync.auth is logged without its statement, which holds the
# secret (the check hook refuses it; it throws nothing itself); the test
# cluster logs every statement before it runs, so that is turned off here
my $log_offset = -s $node->logfile;
my (undef, undef, $auth_err) = $node->psql('postgres',
	"SET log_statement = 'none';\nSET zksync.auth = 'no-colon-t0psecret'");
like($auth_err, qr/ERROR:  invalid value for parameter "zksync.auth"/, 'a bad zksync.auth is refused');
unlike($auth_err, qr/t0psecret/, 'the refusal does not echo it');
ok(poll_until(sub { slurp_file($node->logfile, $log_offset) =~ /invalid value for parameter "zksync.auth"/ }),
	'the server log has the ERROR');
unlike(slurp_file($node->logfile, $log_offset), qr/t0psecret/, 'but not the statement with the secret');

$node->stop;
done_testing();
