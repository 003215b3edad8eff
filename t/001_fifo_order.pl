# First come, first served: three waiters are granted in the order they
# queued, and a reader does not overtake a queued writer.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('fifo');
$node->safe_psql('postgres', 'CREATE TABLE witness (id serial, who text)');

sub waiting_count
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM zksync_lock_holders('fifo') WHERE NOT granted");
}

# Queue sessions one after another (each visibly queued before the next
# starts), then release the holder and read the order of grants.
sub run_queue
{
	my (@who) = @_;
	my $holder = $node->background_psql('postgres');
	$holder->query_safe("SELECT zksync_write_lock('fifo')");
	my @sessions;
	my $n = 0;
	for my $w (@who)
	{
		my ($name, $mode) = @$w;
		my $s = $node->background_psql('postgres');
		$s->query_until(qr/queued/, qq{\\echo queued
SELECT zksync_${mode}_lock('fifo');
INSERT INTO witness (who) VALUES ('$name');
SELECT pg_sleep(0.1);
SELECT zksync_${mode}_unlock('fifo');
});
		$n++;
		ok(poll_until(sub { waiting_count() == $n }), "$name is queued as waiter $n");
		push @sessions, $s;
	}
	$node->safe_psql('postgres', 'TRUNCATE witness');
	$holder->query_safe("SELECT zksync_write_unlock('fifo')");
	# each session's next query runs once its lock/unlock script is done
	$_->query_safe('SELECT 1') for @sessions;
	$_->quit for (@sessions, $holder);
	return $node->safe_psql('postgres', "SELECT string_agg(who, ' ' ORDER BY id) FROM witness");
}

is(run_queue([ 'a', 'write' ], [ 'b', 'write' ], [ 'c', 'write' ]), 'a b c',
	'three writers are granted in queue order');
is(run_queue([ 'c', 'write' ], [ 'a', 'write' ], [ 'b', 'write' ]), 'c a b',
	'queue order, not session order, decides');

# reader r1, writer w, reader r2: r2 must wait for w even though r1 reads
my $order = run_queue([ 'r1', 'read' ], [ 'w', 'write' ], [ 'r2', 'read' ]);
is($order, 'r1 w r2', 'a reader does not overtake a queued writer');

# two readers behind a writer are granted together
my $holder = $node->background_psql('postgres');
$holder->query_safe("SELECT zksync_write_lock('fifo')");
my @readers = map { $node->background_psql('postgres') } 1 .. 2;
for my $r (@readers)
{
	$r->query_until(qr/queued/, "\\echo queued\nSELECT zksync_read_lock('fifo');\n");
}
ok(poll_until(sub { waiting_count() == 2 }), 'two readers queued behind the writer');
$holder->query_safe("SELECT zksync_write_unlock('fifo')");
ok( poll_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) = 2 AND bool_and(granted) AND bool_and(mode = 'read') FROM zksync_lock_holders('fifo')"
			) eq 't';
		}),
	'one release grants the run of readers');
$_->query_safe("SELECT zksync_read_unlock('fifo')") for @readers;
$_->quit for (@readers, $holder);
is(scalar(zk_ephemerals()), 0, 'no node left behind');

$node->stop;
done_testing();
