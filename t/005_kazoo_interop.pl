# A kazoo client (Python) and zksync share one lock the way the SPEC says:
# kazoo's WriteLock/ReadLock on {root}/locks/{name} with extra_lock_patterns
# excludes and shares with zksync's write and read locks.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = new_node('kazoo');
my $path = zk_root() . '/locks/shared';

sub kazoo
{
	my ($mode) = @_;
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start(
		[ '/usr/bin/python3', "$FindBin::Bin/zkclient.py", zk_hosts(), 'lock', $path, $mode ],
		\$in, \$out, \$err, IPC::Run::timeout(60));
	my $k = { h => $h, in => \$in, out => \$out, err => \$err };
	$h->pump until $out =~ /ready\n/;
	$out = '';
	return $k;
}

sub say_kazoo
{
	my ($k, $cmd, $want) = @_;
	${ $k->{in} } .= "$cmd\n";
	$k->{h}->pump until ${ $k->{out} } =~ /\n/;
	my $answer = ${ $k->{out} };
	${ $k->{out} } = '';
	chomp $answer;
	return $answer;
}

sub zs { return $node->safe_psql('postgres', $_[0]); }

my $kw = kazoo('write');
my $kr = kazoo('read');

is(say_kazoo($kw, 'acquire 5'), 'acquired', 'kazoo takes the write lock');
is(zs("SELECT zksync_try_write_lock('shared')"), 'f', 'zksync write excluded by kazoo write');
is(zs("SELECT zksync_try_read_lock('shared')"), 'f', 'zksync read excluded by kazoo write');
is(say_kazoo($kw, 'release'), 'released', 'kazoo releases');

my $zk = $node->background_psql('postgres', on_error_stop => 0);
$zk->query_safe("SELECT zksync_write_lock('shared')");
is(say_kazoo($kw, 'acquire 1'), 'timeout', 'kazoo write excluded by zksync write');
is(say_kazoo($kr, 'acquire 1'), 'timeout', 'kazoo read excluded by zksync write');
$zk->query_safe("SELECT zksync_write_unlock('shared')");

$zk->query_safe("SELECT zksync_read_lock('shared')");
is(say_kazoo($kr, 'acquire 5'), 'acquired', 'kazoo read shares with zksync read');
is(say_kazoo($kw, 'acquire 1'), 'timeout', 'kazoo write excluded by zksync read + kazoo read');
is(zs("SELECT zksync_try_read_lock('shared')"), 't', 'another zksync reader joins');
is(zs("SELECT zksync_try_write_lock('shared')"), 'f', 'zksync write excluded by readers');
is( zs("SELECT string_agg(mode || ':' || granted || ':' || (owner = ''), ',' ORDER BY sequence) FROM zksync_lock_holders('shared')"),
	'read:true:false,read:true:true',
	'zksync_lock_holders shows the kazoo node, with an empty owner');
is(say_kazoo($kr, 'release'), 'released', 'kazoo read released');
$zk->query_safe("SELECT zksync_read_unlock('shared')");

# a kazoo writer queued behind a zksync reader gets the lock when it goes
$zk->query_safe("SELECT zksync_read_lock('shared')");
${ $kw->{in} } .= "acquire 20\n";
ok(poll_until(sub { $kw->{h}->pump_nb; zs("SELECT count(*) FROM zksync_lock_holders('shared')") == 2 }),
	'kazoo writer queued behind zksync reader');
$zk->query_safe("SELECT zksync_read_unlock('shared')");
$kw->{h}->pump until ${ $kw->{out} } =~ /\n/;
is(${ $kw->{out} }, "acquired\n", 'kazoo writer granted after zksync reader left');
${ $kw->{out} } = '';
is(say_kazoo($kw, 'release'), 'released', 'kazoo write released');

# a node deleted behind zksync's back (an operator with a ZooKeeper client):
# the hold is lost (a WARNING at a statement, an ERROR naming it at the
# unlock), and the next lock works and leaves nothing behind
$zk->query_safe("SELECT zksync_write_lock('behind')");
my @mine = grep { m{/locks/behind/} } zk_nodes();
is(scalar(@mine), 1, 'zksync holds "behind"');
run_command([ '/usr/bin/python3', '-c',
	"from kazoo.client import KazooClient; z = KazooClient(hosts='@{[ zk_hosts() ]}'); z.start(); z.delete('$mine[0]'); z.stop()" ]);
my $heard = '';
poll_until(sub { $zk->{stderr} = ''; $zk->query('SELECT 1'); $heard .= $zk->{stderr};
		$heard =~ /is lost/ }, 10);
like($heard, qr/WARNING:  zksync write lock "behind" is lost\nDETAIL:  Another client deleted node /,
	'the holder hears that its node was deleted');
$zk->{stderr} = '';
$zk->query("SELECT zksync_write_unlock('behind')");
like($zk->{stderr}, qr/ERROR:  zksync write lock "behind" was lost\nDETAIL:  Another client deleted its node /,
	'unlocking it raises an ERROR naming it');
$zk->{stderr} = '';
is($zk->query("SELECT zksync_write_lock('behind'), zksync_lock_token('behind') > 0"),
	'|t', 'it can be taken again');
my @now = grep { m{/locks/behind/_c_} } zk_nodes();
is(scalar(@now), 1, 'exactly one node: the new one');
isnt($now[0], $mine[0], 'and it is a new node');
$zk->query_safe("SELECT zksync_write_unlock('behind')");

${ $_->{in} } .= "quit\n" for ($kw, $kr);
$_->{h}->finish for ($kw, $kr);
$zk->quit;
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'no node left');
$node->stop;
done_testing();
