# Two PostgreSQL clusters on one ensemble: a lock is the same lock on both,
# and zksync_lock_holders() on either cluster shows every holder and
# waiter of both, with the owner (port, pid, database, application_name).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $a = new_node('alpha');
my $b = new_node('beta');

my $ha = $a->background_psql('postgres');
$ha->query_safe("SET application_name = 'alpha-worker'; SELECT zksync_write_lock('nightly')");
my $pid_a = $ha->query_safe('SELECT pg_backend_pid()');

is($b->safe_psql('postgres', "SELECT zksync_try_write_lock('nightly')"), 'f',
	'cluster B cannot take the write lock cluster A holds');
is($b->safe_psql('postgres', "SELECT zksync_try_read_lock('nightly', 100)"), 'f',
	'nor the read lock');

my $wb = $b->background_psql('postgres');
$wb->query_until(qr/queued/,
	"\\echo queued\nSET application_name = 'beta-reader';\nSELECT zksync_read_lock('nightly');\n");
my $view = "SELECT string_agg(format('%s|%s|%s|%s|%s', mode, granted,
                 owner::json->>'port', owner::json->>'pid', owner::json->>'application_name'), ' ; '
                 ORDER BY sequence) FROM zksync_lock_holders('nightly')";
my $want_prefix = sprintf('write|t|%d|%d|alpha-worker ; read|f|%d|', $a->port, $pid_a, $b->port);
ok(poll_until(sub { index($b->safe_psql('postgres', $view), $want_prefix) == 0 }),
	'cluster B sees A holding and its own reader waiting');
my $from_a = $a->safe_psql('postgres', $view);
like($from_a, qr/^\Q$want_prefix\E\d+\|beta-reader$/, 'cluster A sees the same, with owners')
  or diag $from_a;
is($a->safe_psql('postgres',
		"SELECT count(DISTINCT owner::json->>'database') FROM zksync_lock_holders('nightly')"),
	1, 'owners name their database');

$ha->query_safe("SELECT zksync_write_unlock('nightly')");
$wb->query_safe('SELECT 1');
ok(poll_until(sub { $a->safe_psql('postgres', $view) =~ /^read\|t\|\d+\|\d+\|beta-reader$/ }),
	'once A lets go, B\'s reader holds it, as both see');

# a transaction lock on one cluster excludes the other
my $tx = $a->background_psql('postgres');
$wb->query_safe("SELECT zksync_read_unlock('nightly')");
$tx->query_safe("BEGIN; SELECT zksync_xact_write_lock('ledger')");
is($b->safe_psql('postgres', "SELECT zksync_try_xact_write_lock('ledger')"), 'f',
	'a transaction lock on A excludes B');
$tx->query_safe('COMMIT');
is($b->safe_psql('postgres', "SELECT zksync_try_xact_write_lock('ledger', 5000)"), 't',
	'and is free for B after A commits');

$_->quit for ($ha, $wb, $tx);
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'no node left');
$a->stop;
$b->stop;
done_testing();
