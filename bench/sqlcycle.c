/*
 * sqlcycle.c - the benchmark's SQL client for the uncontended cycles: a C
 * program on libpq, so that a cycle timed from a client carries what a C
 * client costs, as the floor's cycle (bench/floor.c) does, and not what a
 * Python driver's interpreter costs on top.
 *
 *   sqlcycle CONNINFO NAME=SQL...
 *
 * Connects once, prepares each SQL statement under its NAME, prints
 * "ready", then reads commands from stdin, one a line:
 *
 *   N NAME...      N cycles, each executing the named prepared statements
 *                  in that order; one line per cycle, its time in us, then
 *                  "end"
 *
 * and exits at the end of its input.  An error (connection, preparation, a
 * statement's failure, a bad command) is printed on stderr and ends the
 * program with status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define MAX_STATEMENTS	32

static const char *names[MAX_STATEMENTS];
static int	nstatements;

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
fail(PGconn *conn, const char *what, const char *detail)
{
	const char *msg = detail ? detail : PQerrorMessage(conn);
	size_t		len = strlen(msg);

	fprintf(stderr, "sqlcycle: %s: %s%s", what, msg,
			len > 0 && msg[len - 1] == '\n' ? "" : "\n");
	PQfinish(conn);
	exit(1);
}

static int
statement_index(const char *name)
{
	int			i;

	for (i = 0; i < nstatements; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

/* Run `n` cycles of the statements `order` (indexes), printing each cycle's time */
static void
run_cycles(PGconn *conn, long n, const int *order, int norder)
{
	long		c;

	for (c = 0; c < n; c++)
	{
		long long	t0 = now_us();
		int			i;

		for (i = 0; i < norder; i++)
		{
			PGresult   *res = PQexecPrepared(conn, names[order[i]], 0, NULL, NULL, NULL, 0);
			ExecStatusType st = PQresultStatus(res);

			if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
			{
				fprintf(stderr, "sqlcycle: statement %s failed: %s", names[order[i]],
						PQresultErrorMessage(res));
				PQclear(res);
				PQfinish(conn);
				exit(1);
			}
			PQclear(res);
		}
		printf("%lld\n", now_us() - t0);
	}
	printf("end\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	char		line[4096];
	int			i;

	if (argc < 3 || argc - 2 > MAX_STATEMENTS)
	{
		fprintf(stderr, "usage: sqlcycle CONNINFO NAME=SQL... (at most %d)\n", MAX_STATEMENTS);
		return 2;
	}
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
		fail(conn, "connect", NULL);
	for (i = 2; i < argc; i++)
	{
		char	   *eq = strchr(argv[i], '=');
		PGresult   *res;

		if (eq == NULL || eq == argv[i])
			fail(conn, "not NAME=SQL", argv[i]);
		*eq = '\0';
		names[nstatements++] = argv[i];
		res = PQprepare(conn, argv[i], eq + 1, 0, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			fail(conn, "prepare", PQresultErrorMessage(res));
		PQclear(res);
	}
	printf("ready\n");
	fflush(stdout);

	while (fgets(line, sizeof(line), stdin) != NULL)
	{
		int			order[MAX_STATEMENTS * 4];
		int			norder = 0;
		char	   *save = NULL;
		char	   *tok = strtok_r(line, " \t\n", &save);
		char	   *end;
		long		n;

		if (tok == NULL)
			continue;
		n = strtol(tok, &end, 10);
		if (*end != '\0' || n < 0)
			fail(conn, "not a cycle count", tok);
		while ((tok = strtok_r(NULL, " \t\n", &save)) != NULL)
		{
			int			k = statement_index(tok);

			if (k < 0)
				fail(conn, "no statement of that name", tok);
			if (norder == (int) (sizeof(order) / sizeof(order[0])))
				fail(conn, "too many statements in one cycle", tok);
			order[norder++] = k;
		}
		if (norder == 0)
			fail(conn, "no statements given", "a cycle needs at least one");
		run_cycles(conn, n, order, norder);
	}
	PQfinish(conn);
	return 0;
}
