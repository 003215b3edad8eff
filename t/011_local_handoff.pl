# Hand-off between backends of one cluster.  With zksync in
# shared_preload_libraries, a backend that releases a write lock passes it
# straight to the backend of the same cluster that waits for that node,
# without waiting for ZooKeeper to commit the delete.  Shown with the whole
# ensemble frozen (kill -STOP), when no grant can come from ZooKeeper; with
# zksync.local_handoff = off the waiter waits for the ensemble instead.
# Then exclusion under churn: writers and readers of this cluster (hand-off
# on and off), a kazoo writer, and a cluster without the preload, all on
# one lock, marking themselves in a witness table.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ZkSyncTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = zk_root();
my $node = new_node('handoff', session_timeout => 10000);
my $plain = new_node('nopreload', preload => 0, session_timeout => 10000);
sub sq { return $node->safe_psql('postgres', $_[0]); }

# watched nodes of lock $name, from all servers
sub watched { return scalar(keys %{ zk_watches("$root/locks/$_[0]/") }); }

sub waiters
{
	return sq("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'");
}

sub freeze_all { system(zk_script(), 'freeze', $_) for 1 .. 3; }
sub thaw_all   { system(zk_script(), 'thaw',   $_) for 1 .. 3; }

for my $mode ('on', 'off')
{
	my $a = $node->background_psql('postgres');
	my $b = $node->background_psql('postgres');
	$b->query_safe("SET zksync.local_handoff = $mode");
	$a->query_safe("SELECT zksync_write_lock('h')");
	$b->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock('h');\n");
	ok(poll_until(sub { waiters() == 1 && watched('h') == 1 }),
		"local_handoff $mode: B waits, watching A's node");

	# ZooKeeper can grant nothing while every server is stopped
	freeze_all();
	$a->query_safe("SELECT zksync_write_unlock('h')");
	if ($mode eq 'on')
	{
		ok(poll_until(sub { waiters() == 0 }, 5),
			'B got the lock from A with the ensemble frozen');
	}
	else
	{
		# a negative: give a wrong grant a fair chance to show
		sleep 1;
		is(waiters(), 1, 'with local_handoff off, B waits while the ensemble is frozen');
	}
	thaw_all();
	$b->query_safe('SELECT 1');
	is($b->query_safe("SELECT state FROM zksync_locks() WHERE name = 'h'"), 'held',
		"local_handoff $mode: B holds the lock");
	is(sq("SELECT zksync_try_write_lock('h')"), 'f', 'and nobody else gets it');
	$b->query_safe("SELECT zksync_write_unlock('h')");
	ok(poll_until(sub { scalar(grep { m{/locks/h/_c_} } zk_nodes()) == 0 }),
		'no node of lock h left');
	$_->quit for ($a, $b);
}

# one release hands the lock to the run of readers waiting for it
{
	my $a = $node->background_psql('postgres');
	my @r = map { $node->background_psql('postgres') } 1 .. 2;
	$a->query_safe("SELECT zksync_write_lock('rr')");
	$_->query_until(qr/queued/, "\\echo queued\nSELECT zksync_read_lock('rr');\n") for @r;
	ok(poll_until(sub { waiters() == 2 && watched('rr') == 1 }), 'two readers wait for A\'s node');
	freeze_all();
	$a->query_safe("SELECT zksync_write_unlock('rr')");
	ok(poll_until(sub { waiters() == 0 }, 5), 'both readers got the lock with the ensemble frozen');
	thaw_all();
	for my $r (@r)
	{
		$r->query_safe('SELECT 1');
		is($r->query_safe("SELECT state FROM zksync_locks() WHERE name = 'rr'"), 'held', 'a reader holds');
		$r->query_safe("SELECT zksync_read_unlock('rr')");
		$r->quit;
	}
	$a->quit;
}

# no hand-off past a contender of another cluster: A, then P (other
# cluster), then B; A's release must not let B in before P
{
	my $a = $node->background_psql('postgres');
	my $b = $node->background_psql('postgres');
	my $p = $plain->background_psql('postgres');
	my $queue = "SELECT string_agg(CASE WHEN granted THEN 't' ELSE 'f' END, '' ORDER BY sequence) FROM zksync_lock_holders('q')";
	$a->query_safe("SELECT zksync_write_lock('q')");
	$p->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock('q');\n");
	ok(poll_until(sub { sq($queue) eq 'tf' }), 'P of the other cluster queued behind A');
	$b->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock('q');\n");
	ok(poll_until(sub { waiters() == 1 && watched('q') == 2 }), 'B queued behind P');
	freeze_all();
	$a->query_safe("SELECT zksync_write_unlock('q')");
	# a negative: give a wrong hand-off a fair chance to show
	sleep 1;
	is(waiters(), 1, 'B still waits: A\'s release is not B\'s to take');
	thaw_all();
	$p->query_safe('SELECT 1');
	is($p->query_safe("SELECT state FROM zksync_locks() WHERE name = 'q'"), 'held', 'P gets it first');
	is(waiters(), 1, 'while B waits');
	$p->query_safe("SELECT zksync_write_unlock('q')");
	$b->query_safe('SELECT 1');
	is($b->query_safe("SELECT state FROM zksync_locks() WHERE name = 'q'"), 'held', 'then B');
	$b->query_safe("SELECT zksync_write_unlock('q')");
	$_->quit for ($a, $b, $p);
}

# a waiter whose holder is in another cluster is granted by ZooKeeper
{
	my $p = $plain->background_psql('postgres');
	my $b = $node->background_psql('postgres');
	$p->query_safe("SELECT zksync_write_lock('x')");
	$b->query_until(qr/queued/, "\\echo queued\nSELECT zksync_write_lock('x');\n");
	ok(poll_until(sub { waiters() == 1 && watched('x') == 1 }), 'B waits for the other cluster');
	$p->query_safe("SELECT zksync_write_unlock('x')");
	$b->query_safe('SELECT 1');
	is($b->query_safe("SELECT state FROM zksync_locks() WHERE name = 'x'"), 'held',
		'B holds it after the other cluster released it');
	$b->query_safe("SELECT zksync_write_unlock('x')");
	$_->quit for ($p, $b);
}

# exclusion under churn
sq(q{
CREATE UNLOGGED TABLE wit (writers int, readers int);
INSERT INTO wit VALUES (0, 0);
CREATE TABLE clashes (pid int, mode text);
CREATE PROCEDURE churn(n int, mode text) LANGUAGE plpgsql AS $$
DECLARE
	k int;
BEGIN
	FOR i IN 1 .. n LOOP
		IF mode = 'w' THEN
			PERFORM zksync_write_lock('churn');
			UPDATE wit SET writers = writers + 1 WHERE writers = 0 AND readers = 0;
		ELSE
			PERFORM zksync_read_lock('churn');
			UPDATE wit SET readers = readers + 1 WHERE writers = 0;
		END IF;
		GET DIAGNOSTICS k = ROW_COUNT;
		COMMIT;
		IF k <> 1 THEN
			INSERT INTO clashes VALUES (pg_backend_pid(), mode);
		ELSIF mode = 'w' THEN
			UPDATE wit SET writers = writers - 1;
		ELSE
			UPDATE wit SET readers = readers - 1;
		END IF;
		COMMIT;
		IF mode = 'w' THEN
			PERFORM zksync_write_unlock('churn');
		ELSE
			PERFORM zksync_read_unlock('churn');
		END IF;
	END LOOP;
END $$;
});
my $cycles = 150;
my @sessions;
for my $spec (['w', 'on'], ['w', 'on'], ['w', 'on'], ['w', 'off'], ['r', 'on'], ['r', 'on'])
{
	my ($mode, $handoff) = @$spec;
	my $s = $node->background_psql('postgres');
	$s->query_safe("SET zksync.local_handoff = $handoff");
	$s->query_until(qr/started/, "\\echo started\nCALL churn($cycles, '$mode');\n\\echo churned\n");
	push @sessions, $s;
}
# the other cluster's writer: no witness there, it only takes its turns
my $remote = $plain->background_psql('postgres');
$remote->query_until(qr/started/, qq{\\echo started
DO \$\$ BEGIN FOR i IN 1 .. $cycles LOOP PERFORM zksync_write_lock('churn'); PERFORM zksync_write_unlock('churn'); END LOOP; END \$\$;
\\echo churned
});
my ($kout, $kerr) = run_command([ zkclient('churn', "$root/locks/churn", 60, $node->host, $node->port) ]);
like($kout, qr/^overlaps 0$/m, 'the kazoo writer never found the lock taken') or diag $kerr;
for my $s (@sessions, $remote)
{
	$s->query_until(qr/churned/, '');
	$s->quit;
}
is(sq('SELECT count(*) FROM clashes'), 0, 'no zksync holder ever found the lock taken');
is(sq('SELECT writers || \',\' || readers FROM wit'), '0,0', 'the witness is back to zero');
ok(poll_until(sub { scalar(zk_ephemerals()) == 0 }), 'no node left');

$node->stop;
$plain->stop;
done_testing();
