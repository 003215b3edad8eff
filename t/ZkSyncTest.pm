# Helpers shared by zksync's TAP tests.
#
# The ensemble is the one the test command started (ZK_HOSTS, default the
# three loopback servers of scripts/zk.sh); each test makes its own
# PostgreSQL clusters and its own zksync.root, so tests do not see each
# other's nodes.
package ZkSyncTest;

use strict;
use warnings;
use Exporter 'import';
use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(zk_hosts zk_root new_node zk_nodes zk_ephemerals zk_owners zk_four
  zk_script zkclient poll_until elapsed_since zk_watches);

my $root = "/zksync-tap-" . $$ . "-" . int(rand(1e6));

sub zk_hosts { return $ENV{ZK_HOSTS} // '127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183'; }
sub zk_root { return $root; }
sub zk_script { return "$FindBin::Bin/../scripts/zk.sh"; }

# A started cluster with zksync created in "postgres".
sub new_node
{
	my ($name, %conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $timeout = $conf{session_timeout} // 4000;
	# preloaded (as the README advises) unless asked not to
	my $preload = ($conf{preload} // 1) ? "shared_preload_libraries = 'zksync'" : '';
	$node->append_conf('postgresql.conf', qq{
$preload
zksync.hosts = '@{[ zk_hosts() ]}'
zksync.root = '$root'
zksync.session_timeout = $timeout
max_connections = 100
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION zksync');
	return $node;
}

sub zkclient { return ("/usr/bin/python3", "$FindBin::Bin/zkclient.py", zk_hosts(), @_); }

# Every node below $path (default: this test's root), read with kazoo.
sub zk_nodes
{
	my ($path) = @_;
	my ($out, $err) = run_command([ zkclient('tree', $path // $root) ]);
	die "zkclient failed: $err" if $err =~ /Traceback/;
	return grep { length } split /\n/, $out;
}

# Every ephemeral node below $path.
sub zk_ephemerals
{
	my ($path) = @_;
	my ($out, $err) = run_command([ zkclient('ephemerals', $path // $root) ]);
	die "zkclient failed: $err" if $err =~ /Traceback/;
	return grep { length } split /\n/, $out;
}

# Every ephemeral node below $path, with the session that owns it
# ({ node => "0x..." }).
sub zk_owners
{
	my ($path) = @_;
	my ($out, $err) = run_command([ zkclient('owners', $path // $root) ]);
	die "zkclient failed: $err" if $err =~ /Traceback/;
	return { map { split / / } grep { length } split /\n/, $out };
}

# A four-letter word to server N (1..3).
sub zk_four
{
	my ($n, $word) = @_;
	my ($out, $err) = run_command([ zk_script(), 'cmd', $n, $word ]);
	return $out;
}

# ZooKeeper's own watch table (wchp, from every server): the watched paths
# that start with $prefix, each with the sessions that watch it
# ({ path => { session => 1 } }).
sub zk_watches
{
	my ($prefix) = @_;
	my %by_path;
	for my $server (1 .. 3)
	{
		my $path;
		for my $line (split /\n/, zk_four($server, 'wchp'))
		{
			if ($line =~ m{^(/\S+)$}) { $path = $1; next; }
			$by_path{$path}{$1} = 1
			  if $line =~ /^\s+(0x[0-9a-f]+)/ && defined $path && index($path, $prefix) == 0;
		}
	}
	return \%by_path;
}

# Poll $code until it returns true, for at most $secs; returns the result.
sub poll_until
{
	my ($code, $secs) = @_;
	my $deadline = time + ($secs // 30);
	while (time < $deadline)
	{
		my $r = $code->();
		return $r if $r;
		sleep 0.02;
	}
	return $code->();
}

sub elapsed_since { return time - $_[0]; }

1;
