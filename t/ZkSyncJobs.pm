# Jobs for zksync's TAP tests: background psql sessions whose statements
# run asynchronously, so that a test can start a wait in one job and look
# at it, or end it, from another (TAP 016 and 019).
#
#   my $j = job($node, 'name');      a session (verbose errors, 30 s
#                                    statement_timeout); $j->{pid},
#                                    $j->{cluster} (its system identifier),
#                                    $j->{label} (its cluster as messages
#                                    name it: "cluster_name" (identifier))
#   run($j, $sql)                    a statement that must succeed at once
#   start($j, $sql); done($j)        start one; has it ended (no blocking)?
#   error($j), deadlocked($j)        what it printed on stderr; was it 40P01
#   settle($j)                       clear the output before the next run()
package ZkSyncJobs;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(job run start done error deadlocked settle);

my $tags = 0;
my %cluster_of;
my %label_of;

sub job
{
	my ($node, $name) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe("SET application_name = '$name'");
	$s->query_safe('\set VERBOSITY verbose');
	# a lock call that nothing ends fails the test in time
	$s->query_safe("SET statement_timeout = '30s'");
	$cluster_of{ $node->name } //=
	  $node->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
	# the test clusters run with cluster_name = their node's name
	$label_of{ $node->name } //=
	  '"' . $node->safe_psql('postgres', 'SHOW cluster_name') . "\" ($cluster_of{ $node->name })";
	return {
		s => $s,
		node => $node,
		name => $name,
		cluster => $cluster_of{ $node->name },
		label => $label_of{ $node->name },
		pid => $s->query_safe('SELECT pg_backend_pid()'),
	};
}

sub run
{
	my ($j, $sql) = @_;
	return $j->{s}->query_safe($sql);
}

sub start
{
	my ($j, $sql) = @_;
	my $tag = 'statement-' . ++$tags . '-done';
	$j->{tag} = $tag;
	$j->{s}{stdout} = '';
	$j->{s}{stderr} = '';
	$j->{s}{stdin} .= "$sql;\n\\echo '$tag'\n\\warn '$tag'\n";
	$j->{s}{run}->pump_nb;
	return;
}

sub done
{
	my ($j) = @_;
	$j->{s}{run}->pump_nb;
	return $j->{s}{stdout} =~ /\Q$j->{tag}\E/ && $j->{s}{stderr} =~ /\Q$j->{tag}\E/;
}

sub error
{
	my ($j) = @_;
	my $e = $j->{s}{stderr};
	$e =~ s/\Q$j->{tag}\E\n?//;
	return $e;
}

sub deadlocked { return error($_[0]) =~ /ERROR:  40P01: deadlock detected/; }

sub settle
{
	my ($j) = @_;
	$j->{s}{stdout} = '';
	$j->{s}{stderr} = '';
	return;
}

1;
