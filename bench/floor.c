/*
 * floor.c - the ZooKeeper C client floor for one uncontended lock cycle.
 *
 *   floor HOSTS DIR MODE N
 *
 * MODE "sync": create (ephemeral sequential), get_children, delete, each a
 * synchronous call.  MODE "pipelined": create and get_children sent back to
 * back and awaited together, then delete: the recipe's operations in the
 * fewest round trips.  Prints one line per cycle, in microseconds.
 * The node names are zksync's, under DIR (which it creates as a container).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define THREADED				/* the synchronous API of the mt client */
#include <zookeeper/zookeeper.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int pending;
static int failed;
static char created[512];

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
done_one(int rc)
{
	pthread_mutex_lock(&mu);
	if (rc != ZOK)
		failed = rc;
	pending--;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

static void
create_done(int rc, const char *value, const struct Stat *stat, const void *data)
{
	if (rc == ZOK)
		snprintf(created, sizeof(created), "%s", value);
	done_one(rc);
}

static void
children_done(int rc, const struct String_vector *strings, const void *data)
{
	done_one(rc);
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

int
main(int argc, char **argv)
{
	const char *hosts, *dir, *mode;
	int			n, i, rc;
	zhandle_t  *zh;
	char		prefix[512];
	struct Stat stat;

	if (argc != 5)
	{
		fprintf(stderr, "usage: floor HOSTS DIR sync|pipelined N\n");
		return 2;
	}
	hosts = argv[1];
	dir = argv[2];
	mode = argv[3];
	n = atoi(argv[4]);
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	zh = zookeeper_init(hosts, watcher, 10000, NULL, NULL, 0);
	/* as zksync does: no DNS resolution of the hosts on every poll */
	zoo_set_servers_resolution_delay(zh, 30000);
	for (i = 0; i < 1000 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++)
	{
		struct timespec ts = {0, 10000000};

		nanosleep(&ts, NULL);
	}
	if (zoo_state(zh) != ZOO_CONNECTED_STATE)
	{
		fprintf(stderr, "floor: not connected\n");
		return 1;
	}
	ensure_parents(zh, dir);
	snprintf(prefix, sizeof(prefix), "%s/_c_00000000-0000-4000-8000-000000000000-__WRIT__", dir);

	for (i = 0; i < n; i++)
	{
		long long	t0 = now_us();

		if (strcmp(mode, "sync") == 0)
		{
			struct String_vector children;

			rc = zoo_create2(zh, prefix, "", 0, &ZOO_OPEN_ACL_UNSAFE,
							 ZOO_EPHEMERAL_SEQUENTIAL, created, sizeof(created), &stat);
			if (rc == ZOK)
				rc = zoo_get_children(zh, dir, 0, &children);
			if (rc == ZOK)
				deallocate_String_vector(&children);
		}
		else
		{
			pthread_mutex_lock(&mu);
			pending = 2;
			failed = ZOK;
			pthread_mutex_unlock(&mu);
			zoo_acreate2(zh, prefix, "", 0, &ZOO_OPEN_ACL_UNSAFE,
						 ZOO_EPHEMERAL_SEQUENTIAL, create_done, NULL);
			zoo_aget_children(zh, dir, 0, children_done, NULL);
			pthread_mutex_lock(&mu);
			while (pending > 0)
				pthread_cond_wait(&cv, &mu);
			rc = failed;
			pthread_mutex_unlock(&mu);
		}
		if (rc == ZNONODE)
		{
			/* the parent was reaped: make it again and redo this cycle */
			ensure_parents(zh, dir);
			i--;
			continue;
		}
		if (rc == ZOK)
			rc = zoo_delete(zh, created, -1);
		if (rc != ZOK)
		{
			fprintf(stderr, "floor: cycle %d failed: %s\n", i, zerror(rc));
			return 1;
		}
		printf("%lld\n", now_us() - t0);
	}
	zookeeper_close(zh);
	return 0;
}
