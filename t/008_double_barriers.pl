# Double barriers across backends: nobody passes enter until all have
# entered, nobody passes exit until all have exited or disconnected, enters
# that time out or are cancelled leave no node, and the last one out leaves
# nothing behind.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('dbarrier');
my $root = zk_root();
sub sq { return $node->safe_psql('postgres', $_[0]); }
sub extension_waits
{
	return sq("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'");
}
sub participants
{
	my ($name) = @_;
	return scalar(grep { m{/dbarriers/\Q$name\E/_c_.*__PART__\d{10}$} } zk_nodes());
}

# three backends: enter
my @s = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 3;
$s[$_]->query_until(qr/entering/, "\\echo entering\nSELECT zksync_dbarrier_enter('phase', 3);\n")
  for 0 .. 1;
ok(poll_until(sub { extension_waits() == 2 && participants('phase') == 2 }),
	'two entered and wait for the third');
is(participants('phase'), 2, 'still waiting: nobody passed enter with two of three');
$s[2]->query_safe("SELECT zksync_dbarrier_enter('phase', 3)");
ok(poll_until(sub { extension_waits() == 0 }), 'the third arrives: all pass enter');
is((split /\n/, $s[$_]->query_safe('SELECT 1'))[0], 't', "participant $_ passed enter") for 0 .. 1;

# exit: the first two wait for the third
$s[$_]->query_until(qr/exiting/, "\\echo exiting\nSELECT zksync_dbarrier_exit('phase');\n") for 0 .. 1;
ok(poll_until(sub { extension_waits() == 2 }), 'two exit and wait for the third');
is(sq("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'"), 2,
	'nobody passes exit while one participant works');
is($s[2]->query_safe("SELECT zksync_dbarrier_exit('phase')"), 't', 'the last one exits');
ok(poll_until(sub { extension_waits() == 0 }), 'all pass exit');
is((split /\n/, $s[$_]->query_safe('SELECT 1'))[0], 't', "participant $_ passed exit") for 0 .. 1;
ok(poll_until(sub { !grep { m{/dbarriers/phase/} } zk_nodes() }), 'no node left under the barrier');

# a participant that disconnects counts as exited
$s[$_]->query_until(qr/entering/, "\\echo entering\nSELECT zksync_dbarrier_enter('crash', 3);\n") for 0 .. 1;
ok(poll_until(sub { participants('crash') == 2 }), 'two entered');
my $victim = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
$victim->query_safe("SELECT zksync_dbarrier_enter('crash', 3)");
$s[$_]->query_safe('SELECT 1') for 0 .. 1;
$s[$_]->query_until(qr/exiting/, "\\echo exiting\nSELECT zksync_dbarrier_exit('crash');\n") for 0 .. 1;
ok(poll_until(sub { extension_waits() == 2 }), 'two wait in exit for the third');
sq("SELECT pg_terminate_backend($pid)");
ok(poll_until(sub { extension_waits() == 0 }), 'terminating the third releases them');
is((split /\n/, $s[$_]->query_safe('SELECT 1'))[0], 't', "participant $_ passed exit") for 0 .. 1;
$victim->{run}->finish;

# disagreeing counts
$s[0]->query_until(qr/entering/, "\\echo entering\nSELECT zksync_dbarrier_enter('count', 2);\n");
ok(poll_until(sub { participants('count') == 1 }), 'one entered with 2');
my ($out, $err) = ('', '');
$node->psql('postgres', "SELECT zksync_dbarrier_enter('count', 3)", stdout => \$out, stderr => \$err);
like($err, qr/was entered with 2 participants, not 3/, 'a disagreeing count is an ERROR');
is(participants('count'), 1, 'and leaves no node');
$s[1]->query_safe("SELECT zksync_dbarrier_enter('count', 2)");
$s[0]->query_safe('SELECT 1');
$s[0]->query_until(qr/exiting/, "\\echo exiting\nSELECT zksync_dbarrier_exit('count');\n");
$s[1]->query_safe("SELECT zksync_dbarrier_exit('count')");
$s[0]->query_safe('SELECT 1');

# enter timeout and statement_timeout leave no node
is(sq("SELECT zksync_dbarrier_enter('lonely', 2, 300)"), 'f', 'enter times out with false');
is(participants('lonely'), 0, 'and leaves no node');
$node->psql('postgres', "SET statement_timeout = '300ms'; SELECT zksync_dbarrier_enter('lonely', 2)",
	stdout => \$out, stderr => \$err);
like($err, qr/statement timeout/, 'statement_timeout cancels an enter');
is(participants('lonely'), 0, 'and leaves no node');
$s[0]->query_until(qr/entering/, "\\echo entering\nSELECT zksync_dbarrier_enter('lonely', 2);\n");
ok(poll_until(sub { participants('lonely') == 1 }), 'a new enter waits');
sq("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Extension'");
ok(poll_until(sub { participants('lonely') == 0 }), 'a cancelled enter leaves no node');
$_->quit for @s;

# ten concurrent enters to a barrier of ten all pass
my @ten = map { $node->background_psql('postgres') } 1 .. 10;
$_->query_until(qr/entering/, "\\echo entering\nSELECT zksync_dbarrier_enter('ten', 10);\n") for @ten;
my @passed = map { (split /\n/, $_->query_safe('SELECT 1'))[0] } @ten;
is(join('', @passed), 't' x 10, 'all ten pass enter');
$_->query_until(qr/exiting/, "\\echo exiting\nSELECT zksync_dbarrier_exit('ten');\n") for @ten;
@passed = map { (split /\n/, $_->query_safe('SELECT 1'))[0] } @ten;
is(join('', @passed), 't' x 10, 'all ten pass exit');
$_->quit for @ten;

ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'no participant node left after the suite');
$node->stop;
done_testing();
