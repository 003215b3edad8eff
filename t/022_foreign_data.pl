# Foreign bytes are data: owner data, wait records, child names and a
# semaphore's count written by another client (here kazoo, writing exact
# bytes) are read within their length, range-checked, and come out of
# every view as valid text in the database encoding, invalid bytes written
# \xNN.  A handful of fixed malformed inputs; t/fuzz/fuzz_foreign.py (run
# by scripts/asan.sh) throws many more.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $root = zk_root();
my $node = new_node('foreign');
$node->safe_psql('postgres',
	"CREATE DATABASE u8 ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
$node->safe_psql('postgres',
	"CREATE DATABASE l1 ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
$node->safe_psql($_, 'CREATE EXTENSION zksync') for qw(u8 l1);

# Write exact bytes at each path (persistent nodes: they stay for the test)
sub put
{
	my $in = '';
	while (my ($path, $data) = splice(@_, 0, 2))
	{
		$in .= "$path " . (length($data) ? unpack('H*', $data) : '-') . "\n";
	}
	my ($out, $err) = ('', '');
	IPC::Run::run([ '/usr/bin/python3', "$FindBin::Bin/fuzz/zkput.py", zk_hosts() ],
		'<', \$in, '>', \$out, '2>', \$err)
	  or die "zkput failed: $err";
}

my $long = '_c_d-__READ__' . ('n' x 677) . '0000000004';
is(length($long), 700, 'a 700-byte child name');
put(
	# a string that ends inside a \u escape, at the end of the data
	"$root/locks/fj/_c_a-__WRIT__0000000001" => '{"host":"\\u',
	# numbers out of range: not a backend
	"$root/locks/fj/_c_b-__WRIT__0000000002" =>
	  '{"host":"h","port":99999999999,"database":"d","pid":4294967297,"application_name":"big"}',
	# invalid UTF-8, a NUL byte, a character LATIN1 lacks, a lone surrogate,
	# a cluster that is no system identifier
	"$root/locks/fj/_c_c-__READ__0000000003" =>
	  qq({"host":"\xff\xfeA","port":5432,"database":"d\x00b","pid":123,)
	  . q("application_name":"a\u00e9\u20ac\ud800z","cluster":"12ab","backend_start":"x"}),
	"$root/locks/fj/$long" =>
	  '{"host":"ok","port":1,"database":"db","pid":77,"application_name":"app","cluster":"1","backend_start":"s"}',
	# not contenders: no sequence, a sign where a digit should be
	"$root/locks/fj/foreign-no-seq" => 'x',
	"$root/locks/fj/x--000000001" => 'x');

my $cols = "mode, granted, coalesce(host, '-'), coalesce(pid::text, '-'), "
  . "coalesce(port::text, '-'), coalesce(database, '-'), "
  . "coalesce(application_name, '-'), coalesce(cluster, '-'), length(node) - length('$root/locks/fj/')";
my $order = "ORDER BY substring(node from '[0-9]{10}\$')";
my $w = "SET client_encoding = 'UTF8'; SELECT $cols FROM zksync_waits() WHERE name = 'fj' $order";
is( $node->safe_psql('u8', $w),
	join("\n",
		'write|t|-|-|-|-|-|-|23',
		'write|f|-|-|-|-|-|-|23',
		"read|f|\\xff\\xfeA|123|5432|d\\x00b|a\xc3\xa9\xe2\x82\xac\\ud800z|-|23",
		'read|f|ok|77|1|db|app|1|700'),
	'zksync_waits() in a UTF8 database: broken escape and out-of-range numbers leave the owner unknown, invalid bytes are \xNN'
);
is( $node->safe_psql('l1', $w),
	join("\n",
		'write|t|-|-|-|-|-|-|23',
		'write|f|-|-|-|-|-|-|23',
		"read|f|\\xff\\xfeA|123|5432|d\\x00b|a\xc3\xa9\\u20AC\\ud800z|-|23",
		'read|f|ok|77|1|db|app|1|700'),
	'zksync_waits() in a LATIN1 database: a character it lacks is \uXXXX');

is( $node->safe_psql('u8',
		"SELECT mode, sequence, owner FROM zksync_lock_holders('fj') ORDER BY sequence"),
	join("\n",
		'write|1|{"host":"\\u',
		'write|2|{"host":"h","port":99999999999,"database":"d","pid":4294967297,"application_name":"big"}',
		'read|3|{"host":"\\xff\\xfeA","port":5432,"database":"d\\x00b","pid":123,'
		  . '"application_name":"a\\u00e9\\u20ac\\ud800z","cluster":"12ab","backend_start":"x"}',
		'read|4|{"host":"ok","port":1,"database":"db","pid":77,"application_name":"app","cluster":"1","backend_start":"s"}'),
	'zksync_lock_holders(): the owner data whole, to its length, invalid bytes and NUL as \xNN');
is( $node->safe_psql('u8',
		"SELECT count(*) FROM zksync_lock_holders('fj') WHERE node = '$long'"),
	'1', 'the 700-byte contender is listed by name');

# every text the views return is valid in the database encoding
for my $db (qw(u8 l1))
{
	is( $node->safe_psql($db, q{
SELECT (SELECT count(*) FROM zksync_waits() w
         WHERE convert_from(convert_to(w::text, 'UTF8'), 'UTF8') IS NOT NULL)
     + (SELECT count(*) FROM zksync_lock_holders('fj') h
         WHERE convert_from(convert_to(h::text, 'UTF8'), 'UTF8') IS NOT NULL)}),
		'8', "$db: every row of zksync_waits() and zksync_lock_holders() is valid text");
}

# ------------------------------------------------------------ a semaphore
# a count that overflows an int (atoi would read 1), and two foreign leases
put(
	"$root/semaphores/s1" => '{"max_leases":4294967297}',
	"$root/semaphores/s1/leases/_c_e-lease-0000000001" => '{"host":"\\u',
	"$root/semaphores/s1/leases/_c_f-lease-0000000002" => "\xff\x00junk");
is( $node->safe_psql('u8',
		"SELECT node, sequence, granted, owner FROM zksync_semaphore_leases('s1') ORDER BY sequence"),
	"leases/_c_e-lease-0000000001|1|t|{\"host\":\"\\u\n"
	  . "leases/_c_f-lease-0000000002|2|t|",
	'zksync_semaphore_leases(): an out-of-range count is no count (every lease granted)');
is( $node->safe_psql('u8',
		"SELECT zksync_semaphore_acquire('s1', 3, 5000) AND zksync_semaphore_release('s1')"),
	't', 'an acquire is not refused by a count that is out of range');
is($node->safe_psql('u8',
		"SELECT count(*) FILTER (WHERE granted) FROM zksync_semaphore_leases('s1')"),
	'2', 'and the count is recorded again: the two foreign leases are granted, no zksync lease left');
put("$root/semaphores/s2" => '{"max_leases":-3}',
	"$root/semaphores/s3" => '{"max_leases":"2x"}',
	"$root/semaphores/s4" => '{"max_leases":' . ('9' x 5000) . '}');
is($node->safe_psql('u8', "SELECT zksync_semaphore_acquire('s$_', 2, 5000) AND zksync_semaphore_release('s$_')"),
	't', "semaphore s$_: a junk count is no count") for 2 .. 4;

# ------------------------------------------------------------ wait records
# broken records beside a real wait: the deadlock scan reads them all
put(
	"$root/waits/0x1" => '{"host":"h","port":1,"pid":1,"node":"\\u',
	"$root/waits/0x2" => '{"host":"h","port":1,"pid":1,"node":"x","czxid":99999999999999999999999}',
	"$root/waits/0x3" => '{"host":"h","port":1,"pid":1,"node":"' . ('[' x 20000),
	"$root/waits/0x4" => '{"host":' . ('{"a":' x 20000) . '1',
	"$root/waits/0x5" => "{\"host\":\"\x00\"\x00");
is( $node->safe_psql('u8',
		"SET deadlock_timeout = '50ms'; SELECT zksync_try_write_lock('fj', 600)"),
	'f', 'a wait beside broken wait records runs its deadlock scans and times out as usual');
is($node->safe_psql('u8', "SELECT count(*) FROM zksync_locks()"), '0',
	'and leaves nothing behind');
ok(slurp_file($node->logfile) !~ /terminated by signal|TRAP:/, 'no backend crashed');

$node->stop;
done_testing();
