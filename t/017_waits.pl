# zksync_waits() and zksync_blocking() across two clusters, with a kazoo
# client and an Apache Curator client in the same queues: every contender
# is listed from either cluster, granted by the recipes' rule, with who
# made it; a waiting backend's blockers are named on any cluster.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

# ------------------------------------------------------------- other clients
# kazoo (t/zkclient.py lock): a write lock on {root}/locks/w1
my $lock_path = zk_root() . '/locks/w1';
my ($kin, $kout, $kerr) = ('', '', '');
my $kazoo = IPC::Run::start(
	[ '/usr/bin/python3', "$FindBin::Bin/zkclient.py", zk_hosts(), 'lock', $lock_path, 'write' ],
	\$kin, \$kout, \$kerr, IPC::Run::timeout(180));
$kazoo->pump until $kout =~ /ready\n/;
$kout = '';

# Curator (t/curator/ZkSyncCuratorSemaphore.java): leases of {root}/semaphores/sem
my @jars = map { "/usr/share/java/$_.jar" }
  qw(curator-recipes curator-framework curator-client zookeeper zookeeper-jute
  guava slf4j-api slf4j-nop);
-r $_ or BAIL_OUT("$_ is missing (scripts/install-deps.sh)") for @jars;
my $cp = join(':', @jars);
my $classes = PostgreSQL::Test::Utils::tempdir('curator');
my ($jout, $jerr) = ('', '');
IPC::Run::run([ 'javac', '-nowarn', '-cp', $cp, '-d', $classes,
		"$FindBin::Bin/curator/ZkSyncCuratorSemaphore.java" ],
	'>', \$jout, '2>', \$jerr)
  or BAIL_OUT("javac failed: $jout$jerr");
my ($cin, $cout, $cerr) = ('', '', '');
my $curator = IPC::Run::start(
	[ 'java', '-Xmx128m', '-cp', "$classes:$cp", 'ZkSyncCuratorSemaphore',
		zk_hosts(), zk_root() . '/semaphores/sem', 1, 4000 ],
	'<', \$cin, '>', \$cout, '2>', \$cerr, IPC::Run::timeout(180));
END { local $?; $_->kill_kill for grep { $_ && $_->pumpable } ($kazoo, $curator); }
$curator->pump until $cout =~ /READY\n/;
$cout = '';

# ------------------------------------------------------------- two clusters
my $a = new_node('waits_a');
my $b = new_node('waits_b');
my $sys_a = $a->safe_psql('postgres', 'SELECT system_identifier::text FROM pg_control_system()');
my $sys_b = $b->safe_psql('postgres', 'SELECT system_identifier::text FROM pg_control_system()');
isnt($sys_a, $sys_b, 'two clusters, two system identifiers');

sub session
{
	my ($node, $app) = @_;
	my $s = $node->background_psql('postgres');
	$s->query_safe("SET application_name = '$app'");
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	chomp $pid;
	return ($s, $pid);
}

# The rows of zksync_waits() as text, in queue order: kind|name|mode|granted|
# cluster|pid|port|database|application_name|other client?
my $cols = "kind, name, mode, granted, coalesce(cluster, '-'), coalesce(pid::text, '-'), "
  . "coalesce(port::text, '-'), coalesce(database, '-'), coalesce(application_name, '-'), "
  . "session_id ~ '^0x[0-9a-f]+\$' AND node LIKE '" . zk_root() . "/%'";
sub waits
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT $cols FROM zksync_waits() "
		  . "ORDER BY kind, name, mode = 'mutex' DESC, substring(node from '[0-9]{10}\$')");
}

# 1. the holder of w1, on A
my ($holder, $pid_holder) = session($a, 'holder_a');
$holder->query_safe("SELECT zksync_write_lock('w1')");

# 2. kazoo waits to write w1 (its answer comes once it holds)
$kin .= "acquire 120\n";
$kazoo->pump_nb;
ok( poll_until(sub {
			$a->safe_psql('postgres', "SELECT count(*) FROM zksync_waits() WHERE name = 'w1'") == 2 }),
	'the kazoo contender is in the queue');

# 3. a reader of w1 on B waits behind both writers
my ($reader, $pid_reader) = session($b, 'reader_b');
$reader->query_until(qr/asked/, "\\echo asked\nSELECT zksync_read_lock('w1');\n");

# 4. Curator holds the semaphore's one lease; a backend of B waits for it
$cin .= "hold 1\n";
$curator->pump until $cout =~ /HELD 1\n/;
my ($sem, $pid_sem) = session($b, 'sem_b');
$sem->query_until(qr/asked/, "\\echo asked\nSELECT zksync_semaphore_acquire('sem', 1);\n");

ok( poll_until(sub {
			$b->safe_psql('postgres',
				"SELECT count(*) FROM zksync_waits() WHERE NOT granted") == 3 }),
	'three contenders wait (kazoo, the reader, the semaphore waiter for a lease, its mutex held)')
  or diag(waits($b));

my $port_a = $a->port;
my $port_b = $b->port;
my $expected = join("\n",
	"lock|w1|write|t|$sys_a|$pid_holder|$port_a|postgres|holder_a|t",
	"lock|w1|write|f|-|-|-|-|-|t",
	"lock|w1|read|f|$sys_b|$pid_reader|$port_b|postgres|reader_b|t",
	"semaphore|sem|mutex|t|$sys_b|$pid_sem|$port_b|postgres|sem_b|t",
	"semaphore|sem|lease|t|-|-|-|-|-|t",
	"semaphore|sem|lease|f|$sys_b|$pid_sem|$port_b|postgres|sem_b|t");
is(waits($a), $expected, 'zksync_waits() on cluster A: every contender, any cluster or client');
is(waits($b), $expected, 'zksync_waits() on cluster B: the same');
is( $a->safe_psql('postgres',
		"SELECT count(*) FROM zksync_waits() WHERE wait_start BETWEEN now() - interval '2 minutes' AND now() + interval '5 seconds'"),
	'6', 'wait_start is when each node was made');
is( $a->safe_psql('postgres',
		"SELECT count(DISTINCT session_id) FROM zksync_waits()"),
	'5', 'one session per client (the semaphore waiter\'s two nodes share one)');

# 5. who blocks whom
my $blk = "SELECT kind, name, mode, coalesce(cluster, '-'), coalesce(pid::text, '-'), "
  . "coalesce(port::text, '-'), coalesce(application_name, '-') FROM zksync_blocking(%d) "
  . "ORDER BY cluster NULLS LAST";
is( $b->safe_psql('postgres', sprintf($blk, $pid_reader)),
	"lock|w1|write|$sys_a|$pid_holder|$port_a|holder_a\nlock|w1|write|-|-|-|-",
	'the reader on B is blocked by the writer on A and the kazoo writer ahead of it');
is( $b->safe_psql('postgres', sprintf($blk, $pid_sem)),
	"semaphore|sem|lease|-|-|-|-",
	'the semaphore waiter on B is blocked by the Curator lease');
is($a->safe_psql('postgres', sprintf($blk, $pid_holder)), '', 'a holder is blocked by nobody');
is($a->safe_psql('postgres', "SELECT count(*) FROM zksync_blocking(pg_backend_pid())"),
	'0', 'a backend that waits for nothing: no rows');
my ($ret, $out, $err) = $a->psql('postgres', 'SELECT * FROM zksync_blocking(NULL)');
like($err, qr/pid must not be NULL/, 'zksync_blocking(NULL) is an ERROR');
is( $a->safe_psql('postgres', q{
DO $$ BEGIN PERFORM * FROM zksync_blocking(NULL);
EXCEPTION WHEN null_value_not_allowed THEN RAISE NOTICE 'sqlstate 22004'; END $$;
SELECT 'done'}), 'done', 'with SQLSTATE 22004');

# 6. owner data names the cluster and the backend's start
like( $a->safe_psql('postgres',
		"SELECT owner FROM zksync_lock_holders('w1') WHERE granted"),
	qr/"pid":$pid_holder,.*"cluster":"$sys_a","backend_start":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/,
	'owner data carries the system identifier and the backend start');

# 7. the queue moves: the holder goes, kazoo holds, the reader waits for kazoo only
$holder->query_safe("SELECT zksync_write_unlock('w1')");
$kazoo->pump until $kout =~ /acquired\n/;
ok( poll_until(sub {
			$b->safe_psql('postgres', sprintf($blk, $pid_reader)) eq "lock|w1|write|-|-|-|-" }),
	'after the release, the reader is blocked by kazoo alone');
$kin .= "release\n";
$kazoo->pump until $kout =~ /released\n/;
$reader->query_safe('SELECT 1');
is($b->safe_psql('postgres', sprintf($blk, $pid_reader)), '', 'the reader holds: blocked by nobody');

$cin .= "release\n";
$curator->pump until $cout =~ /RELEASED 0\n/;
$sem->query_safe('SELECT 1');
is( $b->safe_psql('postgres',
		"SELECT mode, granted, pid FROM zksync_waits() WHERE kind = 'semaphore'"),
	"lease|t|$pid_sem", 'the semaphore waiter holds the lease; its mutex node is gone');

# 8. all released: nothing left to show
$reader->query_safe("SELECT zksync_unlock_all()");
$sem->query_safe("SELECT zksync_unlock_all()");
$kin .= "quit\n";
$kazoo->finish;
$cin .= "quit\n";
$curator->finish;
ok(poll_until(sub { $a->safe_psql('postgres', 'SELECT count(*) FROM zksync_waits()') == 0 }),
	'no contender left');
$_->quit for ($holder, $reader, $sem);
$a->stop;
$b->stop;
done_testing();
