/*
 * floor.c - the ZooKeeper C client floor for an uncontended lock cycle.
 *
 *   floor HOSTS DIR MODE N          N cycles on DIR; one line per cycle, in us,
 *                                   then on stderr the process's CPU time
 *                                   and context switches over the cycles
 *   floor HOSTS DIR MODE -p K SECS  K sessions, session k cycling on DIR<k>
 *                                   (one thread and one zhandle each), for
 *                                   SECS seconds; prints "ready" once all
 *                                   are connected, then, at the end, the
 *                                   cycles done by all of them together and
 *                                   the process's CPU time over the run, us
 *   floor HOSTS DIR bulk N R        R cycles of N locks at once, on DIR1 ..
 *                                   DIRN, after one untimed cycle; one line
 *                                   per cycle: the lock's time and the
 *                                   release's, us
 *   floor HOSTS DIR read R          R reads of every node two levels under
 *                                   DIR (DIR/NAME/NODE), after one untimed
 *                                   read; one line per read: its time, us,
 *                                   and the nodes read
 *
 * MODE "sync": create (ephemeral sequential), get_children, delete, each a
 * synchronous call.  MODE "pipelined": create and get_children sent back to
 * back and awaited together, then delete, awaited: the recipe's operations
 * in the fewest round trips.  MODE "nowait": create and get_children as in
 * "pipelined", then the delete is sent and not waited for; the next cycle's
 * create follows it on the session (the server applies a session's requests
 * in order), and a cycle ends when the delete is sent.  The deletes still
 * unanswered are awaited after the last cycle, outside the timing.
 *
 * The node names are zksync's, under DIR (made as a container, as zksync
 * does).  The server reaps an empty container, so a cycle can find its
 * directory gone: it makes it again and redoes the cycle, and the time for
 * that counts in the cycle, as it does in zksync's.
 *
 * "bulk" is the floor of a multi-lock of N free names: the N creates in
 * multis of at most CREATES_PER_MULTI (zksync's size) and the N
 * get_children, all sent back to back and awaited together (one round
 * trip, as far as the client goes); the release is the N deletes in
 * multis, sent together and awaited.  A multi that finds a directory gone
 * fails as a whole: the cycle makes the directories again and redoes the
 * lock, and that time counts.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#define THREADED				/* the synchronous API of the mt client */
#include <zookeeper/zookeeper.h>

enum mode
{
	MODE_SYNC,
	MODE_PIPELINED,
	MODE_NOWAIT
};

/* one ZooKeeper session and the lock directory it cycles on */
typedef struct Session
{
	zhandle_t  *zh;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int			pending;		/* create and get_children replies to come */
	int			failed;			/* the first error among them */
	int			deletes;		/* deletes sent, not answered (nowait) */
	int			delete_failed;
	char		created[512];
	char		dir[512];
	char		prefix[600];
	const char *hosts;
	enum mode	mode;
	long long	cycles;			/* -p: cycles done in the timed window */
	pthread_t	thread;
} Session;

#define CREATES_PER_MULTI 500

/* bulk: replies to come, and the first error among them */
typedef struct Bulk
{
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int			pending;
	int			failed;
} Bulk;

/* -p: all sessions connect, then start together and stop at `end_us` */
static pthread_barrier_t ready, go;
static long long end_us;

static long long
clock_us(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long
now_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

static void
done_one(Session *s, int rc)
{
	pthread_mutex_lock(&s->mu);
	if (rc != ZOK && s->failed == ZOK)
		s->failed = rc;
	s->pending--;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void
create_done(int rc, const char *value, const struct Stat *stat, const void *data)
{
	Session    *s = (Session *) data;

	if (rc == ZOK)
		snprintf(s->created, sizeof(s->created), "%s", value);
	done_one(s, rc);
}

static void
children_done(int rc, const struct String_vector *strings, const void *data)
{
	done_one((Session *) data, rc);
}

static void
delete_done(int rc, const void *data)
{
	Session    *s = (Session *) data;

	pthread_mutex_lock(&s->mu);
	if (rc != ZOK && s->delete_failed == ZOK)
		s->delete_failed = rc;
	s->deletes--;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* parents, as containers; the server reaps empty ones, so this is redone on NONODE */
static void
ensure_parents(zhandle_t *zh, const char *dir)
{
	char		p[512];
	char	   *s;

	snprintf(p, sizeof(p), "%s", dir);
	for (s = strchr(p + 1, '/');; s = strchr(s + 1, '/'))
	{
		if (s)
			*s = '\0';
		zoo_create(zh, p, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, NULL, 0);
		if (!s)
			break;
		*s = '/';
	}
}

static void
watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
}

static int
session_open(Session *s)
{
	int			i;

	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->zh = zookeeper_init(s->hosts, watcher, 10000, NULL, NULL, 0);
	if (s->zh == NULL)
		return -1;
	/* as zksync does: no DNS resolution of the hosts on every poll */
	zoo_set_servers_resolution_delay(s->zh, 30000);
	for (i = 0; i < 1000 && zoo_state(s->zh) != ZOO_CONNECTED_STATE; i++)
	{
		struct timespec ts = {0, 10000000};

		nanosleep(&ts, NULL);
	}
	if (zoo_state(s->zh) != ZOO_CONNECTED_STATE)
		return -1;
	ensure_parents(s->zh, s->dir);
	snprintf(s->prefix, sizeof(s->prefix),
			 "%s/_c_00000000-0000-4000-8000-000000000000-__WRIT__", s->dir);
	return 0;
}

/* one lock cycle; returns a ZooKeeper error code */
static int
cycle(Session *s)
{
	int			rc;

	for (;;)
	{
		if (s->mode == MODE_SYNC)
		{
			struct String_vector children;
			struct Stat stat;

			rc = zoo_create2(s->zh, s->prefix, "", 0, &ZOO_OPEN_ACL_UNSAFE,
							 ZOO_EPHEMERAL_SEQUENTIAL, s->created,
							 sizeof(s->created), &stat);
			if (rc == ZOK)
				rc = zoo_get_children(s->zh, s->dir, 0, &children);
			if (rc == ZOK)
				deallocate_String_vector(&children);
		}
		else
		{
			pthread_mutex_lock(&s->mu);
			rc = s->delete_failed;
			s->pending = 2;
			s->failed = ZOK;
			pthread_mutex_unlock(&s->mu);
			if (rc != ZOK)
				return rc;		/* an earlier delete (nowait) failed */
			rc = zoo_acreate2(s->zh, s->prefix, "", 0, &ZOO_OPEN_ACL_UNSAFE,
							  ZOO_EPHEMERAL_SEQUENTIAL, create_done, s);
			if (rc != ZOK)
				return rc;
			rc = zoo_aget_children(s->zh, s->dir, 0, children_done, s);
			pthread_mutex_lock(&s->mu);
			if (rc != ZOK)
				s->pending--;	/* its completion will not run */
			while (s->pending > 0)
				pthread_cond_wait(&s->cv, &s->mu);
			if (rc == ZOK)
				rc = s->failed;
			pthread_mutex_unlock(&s->mu);
		}
		if (rc != ZNONODE)
			break;
		/* the directory was reaped: make it again and redo the cycle */
		ensure_parents(s->zh, s->dir);
	}
	if (rc != ZOK)
		return rc;
	if (s->mode != MODE_NOWAIT)
		return zoo_delete(s->zh, s->created, -1);
	pthread_mutex_lock(&s->mu);
	s->deletes++;
	pthread_mutex_unlock(&s->mu);
	rc = zoo_adelete(s->zh, s->created, -1, delete_done, s);
	if (rc != ZOK)
		delete_done(rc, s);		/* its completion will not run */
	return ZOK;
}

/* wait for the deletes still unanswered (nowait); returns their error */
static int
drain(Session *s)
{
	int			rc;

	pthread_mutex_lock(&s->mu);
	while (s->deletes > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	rc = s->delete_failed;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static void
fail(Session *s, const char *what, int rc)
{
	fprintf(stderr, "floor: %s on %s: %s\n", what, s->dir, rc ? zerror(rc) : "not connected");
	exit(1);
}

static void *
run_parallel(void *arg)
{
	Session    *s = (Session *) arg;
	int			rc;

	if (session_open(s) != 0)
		fail(s, "connect", 0);
	/* one cycle to warm up, untimed */
	if ((rc = cycle(s)) != ZOK || (rc = drain(s)) != ZOK)
		fail(s, "warm-up cycle", rc);
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&go);
	while (now_us() < end_us)
	{
		if ((rc = cycle(s)) != ZOK)
			fail(s, "cycle", rc);
		s->cycles++;
	}
	if ((rc = drain(s)) != ZOK)
		fail(s, "delete", rc);
	return NULL;
}

static void
bulk_done(Bulk *b, int rc)
{
	pthread_mutex_lock(&b->mu);
	if (rc != ZOK && b->failed == ZOK)
		b->failed = rc;
	if (--b->pending == 0)
		pthread_cond_signal(&b->cv);	/* no wake-up per reply */
	pthread_mutex_unlock(&b->mu);
}

static void
bulk_void_done(int rc, const void *data)
{
	bulk_done((Bulk *) data, rc);
}

static void
bulk_children_done(int rc, const struct String_vector *strings, const void *data)
{
	bulk_done((Bulk *) data, rc);
}

/* wait for every reply counted in b; the first error among them */
static int
bulk_wait(Bulk *b)
{
	int			rc;

	pthread_mutex_lock(&b->mu);
	while (b->pending > 0)
		pthread_cond_wait(&b->cv, &b->mu);
	rc = b->failed;
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static void
bulk_sent(Bulk *b, int rc)
{
	if (rc != ZOK)
		bulk_done(b, rc);		/* its completion will not run */
}

static void
bulk_dir_done(int rc, const char *value, const void *data)
{
	bulk_done((Bulk *) data, rc == ZNODEEXISTS ? ZOK : rc);
}

/* make the n directories (containers) that are missing, creates pipelined */
static int
bulk_make_dirs(zhandle_t *zh, int n, char **dirs, Bulk *b)
{
	int			i,
				rc;

	for (;;)
	{
		b->failed = ZOK;
		b->pending = n;
		for (i = 0; i < n; i++)
			bulk_sent(b, zoo_acreate(zh, dirs[i], "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER,
									 bulk_dir_done, b));
		rc = bulk_wait(b);
		if (rc != ZNONODE)
			return rc;
		ensure_parents(zh, dirs[0]);	/* their parent went too */
	}
}

/* Send the n creates in multis of CREATES_PER_MULTI (b->pending counts them) */
static void
bulk_send_creates(zhandle_t *zh, int n, char **prefixes, char **created,
				  zoo_op_t *ops, zoo_op_result_t *results, Bulk *b)
{
	int			i;

	for (i = 0; i < n; i++)
		zoo_create_op_init(&ops[i], prefixes[i], "", 0, &ZOO_OPEN_ACL_UNSAFE,
						   ZOO_EPHEMERAL_SEQUENTIAL, created[i], 512);
	for (i = 0; i < n; i += CREATES_PER_MULTI)
	{
		int			k = n - i < CREATES_PER_MULTI ? n - i : CREATES_PER_MULTI;

		bulk_sent(b, zoo_amulti(zh, k, ops + i, results + i, bulk_void_done, b));
	}
}

/*
 * One bulk lock of the n directories: the creates in multis and the
 * listings, all sent back to back, then awaited.  Returns a ZooKeeper
 * error code.
 */
static int
bulk_lock(zhandle_t *zh, int n, char **dirs, char **prefixes, char **created,
		  zoo_op_t *ops, zoo_op_result_t *results, Bulk *b)
{
	int			i,
				rc;

	for (;;)
	{
		b->failed = ZOK;
		b->pending = (n + CREATES_PER_MULTI - 1) / CREATES_PER_MULTI + n;
		bulk_send_creates(zh, n, prefixes, created, ops, results, b);
		for (i = 0; i < n; i++)
			bulk_sent(b, zoo_aget_children(zh, dirs[i], 0, bulk_children_done, b));
		rc = bulk_wait(b);
		if (rc != ZNONODE)
			return rc;
		/* a directory was reaped: release what was made, make them again */
		for (i = 0; i < n; i++)
			if (results[i].err == ZOK)
				zoo_delete(zh, created[i], -1);
		if ((rc = bulk_make_dirs(zh, n, dirs, b)) != ZOK)
			return rc;
	}
}

/*
 * The creates of one bulk lock alone, in multis, awaited: no listing, so
 * nothing is known of who is granted.  The least that any protocol making
 * one node per name pays.
 */
static int
bulk_create_only(zhandle_t *zh, int n, char **prefixes, char **created,
				 zoo_op_t *ops, zoo_op_result_t *results, Bulk *b)
{
	b->failed = ZOK;
	b->pending = (n + CREATES_PER_MULTI - 1) / CREATES_PER_MULTI;
	bulk_send_creates(zh, n, prefixes, created, ops, results, b);
	return bulk_wait(b);
}

static int
bulk_release(zhandle_t *zh, int n, char **created, zoo_op_t *ops,
			 zoo_op_result_t *results, Bulk *b)
{
	int			i;

	b->failed = ZOK;
	b->pending = (n + CREATES_PER_MULTI - 1) / CREATES_PER_MULTI;
	for (i = 0; i < n; i++)
		zoo_delete_op_init(&ops[i], created[i], -1);
	for (i = 0; i < n; i += CREATES_PER_MULTI)
	{
		int			k = n - i < CREATES_PER_MULTI ? n - i : CREATES_PER_MULTI;

		bulk_sent(b, zoo_amulti(zh, k, ops + i, results + i, bulk_void_done, b));
	}
	return bulk_wait(b);
}

/*
 * "read" is the floor of zksync_waits(): DIR listed, then every DIR/NAME
 * listed (all sent back to back), and each listing's nodes read (get) as
 * soon as the listing is in, from the completion itself.
 */
typedef struct Reader
{
	zhandle_t  *zh;
	Bulk		b;
	int			nodes;			/* read, under b.mu */
} Reader;

typedef struct ReadDir
{
	Reader	   *r;
	char		path[512];
} ReadDir;

static void
read_get_done(int rc, const char *value, int len, const struct Stat *stat, const void *data)
{
	Reader	   *r = (Reader *) data;

	if (rc == ZOK)
	{
		pthread_mutex_lock(&r->b.mu);
		r->nodes++;
		pthread_mutex_unlock(&r->b.mu);
	}
	bulk_done(&r->b, rc == ZNONODE ? ZOK : rc);		/* gone meanwhile: left out */
}

static void
read_children_done(int rc, const struct String_vector *strings, const void *data)
{
	ReadDir    *d = (ReadDir *) data;
	Reader	   *r = d->r;
	int			i;

	if (rc == ZOK && strings->count > 0)
	{
		/* counted before this listing's own reply, so pending stays above 0 */
		pthread_mutex_lock(&r->b.mu);
		r->b.pending += strings->count;
		pthread_mutex_unlock(&r->b.mu);
		for (i = 0; i < strings->count; i++)
		{
			char		path[1024];

			snprintf(path, sizeof(path), "%s/%s", d->path, strings->data[i]);
			bulk_sent(&r->b, zoo_aget(r->zh, path, 0, read_get_done, r));
		}
	}
	bulk_done(&r->b, rc == ZNONODE ? ZOK : rc);
}

static int
run_read(const char *hosts, const char *dir, int reps)
{
	Session    *s = calloc(1, sizeof(Session));
	Reader		r;
	int			i,
				k,
				rc;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.b.mu, NULL);
	pthread_cond_init(&r.b.cv, NULL);
	s->hosts = hosts;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	if (session_open(s) != 0)
		fail(s, "connect", 0);
	r.zh = s->zh;
	for (k = 0; k <= reps; k++)			/* the first, untimed */
	{
		long long	t0 = now_us();
		struct String_vector top;
		ReadDir    *dirs;

		if ((rc = zoo_get_children(s->zh, dir, 0, &top)) != ZOK)
			fail(s, "get_children", rc);
		dirs = calloc(top.count + 1, sizeof(ReadDir));
		r.b.failed = ZOK;
		r.b.pending = top.count;
		r.nodes = 0;
		for (i = 0; i < top.count; i++)
		{
			dirs[i].r = &r;
			snprintf(dirs[i].path, sizeof(dirs[i].path), "%s/%s", dir, top.data[i]);
			bulk_sent(&r.b, zoo_aget_children(s->zh, dirs[i].path, 0, read_children_done, &dirs[i]));
		}
		if ((rc = bulk_wait(&r.b)) != ZOK)
			fail(s, "read", rc);
		if (k > 0)
			printf("%lld %d\n", now_us() - t0, r.nodes);
		deallocate_String_vector(&top);
		free(dirs);
	}
	zookeeper_close(s->zh);
	return 0;
}

static int	usage(void);

static int
run_bulk(const char *hosts, const char *dir, int n, int reps)
{
	Session    *s = calloc(1, sizeof(Session));
	char	  **dirs = calloc(n, sizeof(char *));
	char	  **prefixes = calloc(n, sizeof(char *));
	char	  **created = calloc(n, sizeof(char *));
	zoo_op_t   *ops = calloc(n, sizeof(zoo_op_t));
	zoo_op_result_t *results = calloc(n, sizeof(zoo_op_result_t));
	Bulk		b;
	int			i,
				r,
				rc;

	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	s->hosts = hosts;
	snprintf(s->dir, sizeof(s->dir), "%s1", dir);
	if (session_open(s) != 0)
		fail(s, "connect", 0);
	for (i = 0; i < n; i++)
	{
		dirs[i] = malloc(512);
		prefixes[i] = malloc(600);
		created[i] = malloc(512);
		snprintf(dirs[i], 512, "%s%d", dir, i + 1);
		snprintf(prefixes[i], 600,
				 "%s/_c_00000000-0000-4000-8000-000000000000-__WRIT__", dirs[i]);
	}
	if ((rc = bulk_make_dirs(s->zh, n, dirs, &b)) != ZOK)
		fail(s, "make the directories", rc);
	for (r = 0; r <= reps; r++)			/* the first, untimed */
	{
		long long	t0 = now_us(),
					t1,
					t2,
					t3,
					t4;

		if ((rc = bulk_lock(s->zh, n, dirs, prefixes, created, ops, results, &b)) != ZOK)
			fail(s, "bulk lock", rc);
		t1 = now_us();
		if ((rc = bulk_release(s->zh, n, created, ops, results, &b)) != ZOK)
			fail(s, "bulk release", rc);
		t2 = now_us();
		/* the directories the reaper took meanwhile are made again, untimed */
		for (;;)
		{
			if ((rc = bulk_make_dirs(s->zh, n, dirs, &b)) != ZOK)
				fail(s, "make the directories", rc);
			t3 = now_us();
			rc = bulk_create_only(s->zh, n, prefixes, created, ops, results, &b);
			t4 = now_us();
			if (rc != ZNONODE)
				break;
			for (i = 0; i < n; i++)
				if (results[i].err == ZOK)
					zoo_delete(s->zh, created[i], -1);
		}
		if (rc != ZOK)
			fail(s, "bulk creates", rc);
		if ((rc = bulk_release(s->zh, n, created, ops, results, &b)) != ZOK)
			fail(s, "bulk release", rc);
		if (r > 0)
			printf("%lld %lld %lld\n", t1 - t0, t2 - t1, t4 - t3);
	}
	zookeeper_close(s->zh);
	return 0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: floor HOSTS DIR sync|pipelined|nowait N\n"
			"       floor HOSTS DIR sync|pipelined|nowait -p SESSIONS SECONDS\n"
			"       floor HOSTS DIR bulk N CYCLES\n"
			"       floor HOSTS DIR read READS\n");
	return 2;
}

int
main(int argc, char **argv)
{
	enum mode	mode;
	int			i,
				rc;

	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	if (argc == 6 && strcmp(argv[3], "bulk") == 0)
	{
		if (atoi(argv[4]) < 1 || atoi(argv[5]) < 1)
			return usage();
		return run_bulk(argv[1], argv[2], atoi(argv[4]), atoi(argv[5]));
	}
	if (argc == 5 && strcmp(argv[3], "read") == 0)
	{
		if (atoi(argv[4]) < 1)
			return usage();
		return run_read(argv[1], argv[2], atoi(argv[4]));
	}
	if (argc != 5 && !(argc == 7 && strcmp(argv[4], "-p") == 0))
		return usage();
	if (strcmp(argv[3], "sync") == 0)
		mode = MODE_SYNC;
	else if (strcmp(argv[3], "pipelined") == 0)
		mode = MODE_PIPELINED;
	else if (strcmp(argv[3], "nowait") == 0)
		mode = MODE_NOWAIT;
	else
		return usage();

	if (argc == 5)
	{
		Session    *s = calloc(1, sizeof(Session));
		int			n = atoi(argv[4]);
		long long	cpu0;
		struct rusage ru0,
					ru1;

		s->hosts = argv[1];
		s->mode = mode;
		snprintf(s->dir, sizeof(s->dir), "%s", argv[2]);
		if (session_open(s) != 0)
			fail(s, "connect", 0);
		cpu0 = clock_us(CLOCK_PROCESS_CPUTIME_ID);
		getrusage(RUSAGE_SELF, &ru0);
		for (i = 0; i < n; i++)
		{
			long long	t0 = now_us();

			if ((rc = cycle(s)) != ZOK)
				fail(s, "cycle", rc);
			printf("%lld\n", now_us() - t0);
		}
		if ((rc = drain(s)) != ZOK)
			fail(s, "delete", rc);
		getrusage(RUSAGE_SELF, &ru1);
		fprintf(stderr, "cpu_us %lld context_switches %ld\n",
				clock_us(CLOCK_PROCESS_CPUTIME_ID) - cpu0,
				(ru1.ru_nvcsw + ru1.ru_nivcsw) - (ru0.ru_nvcsw + ru0.ru_nivcsw));
		zookeeper_close(s->zh);
	}
	else
	{
		int			k = atoi(argv[5]);
		double		secs = atof(argv[6]);
		Session    *ss;
		long long	total = 0,
					cpu0;

		if (k < 1 || secs <= 0)
			return usage();
		ss = calloc(k, sizeof(Session));
		pthread_barrier_init(&ready, NULL, k + 1);
		pthread_barrier_init(&go, NULL, k + 1);
		for (i = 0; i < k; i++)
		{
			ss[i].hosts = argv[1];
			ss[i].mode = mode;
			snprintf(ss[i].dir, sizeof(ss[i].dir), "%s%d", argv[2], i);
			if (pthread_create(&ss[i].thread, NULL, run_parallel, &ss[i]) != 0)
			{
				fprintf(stderr, "floor: cannot start thread %d\n", i);
				return 1;
			}
		}
		pthread_barrier_wait(&ready);
		printf("ready\n");
		fflush(stdout);
		cpu0 = clock_us(CLOCK_PROCESS_CPUTIME_ID);
		end_us = now_us() + (long long) (secs * 1e6);
		pthread_barrier_wait(&go);
		for (i = 0; i < k; i++)
		{
			pthread_join(ss[i].thread, NULL);
			total += ss[i].cycles;
		}
		printf("%lld %lld\n", total, clock_us(CLOCK_PROCESS_CPUTIME_ID) - cpu0);
		for (i = 0; i < k; i++)
			zookeeper_close(ss[i].zh);
	}
	return 0;
}
