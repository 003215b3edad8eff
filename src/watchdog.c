/*-------------------------------------------------------------------------
 * watchdog.c
 *	  Our one thread: drives the client while the backend does not, pokes
 *	  for stuck requests, sends the queued work of the connection layer;
 *	  and the client's log ring.
 *
 * Driving the client.  The client (libzookeeper_st) has no thread of its
 * own.  The watchdog calls it whenever the backend does not wait on it
 * (clientio.c): it sleeps in poll(2) on the client's socket and on an
 * eventfd of its own, for as long as the client allows (its next ping or
 * timeout) and nothing else is due, and lets the client read what came.
 * So the session stays alive and watches fire while the backend runs a
 * long statement or sits idle.
 *
 * Stuck requests.  ZooKeeper 3.6.0-3.8.0 servers (Debian 12 ships 3.8.0)
 * can leave a request unanswered until some other request from the same
 * session reaches the server (ZOOKEEPER-4537).  The client sends no ping
 * while a request is outstanding, so a lone session would stall for 2/3 of
 * the session timeout and then drop its connection.  Whenever a request has
 * been outstanding for more than ZK_OVERDUE_US, one cheap read (exists on
 * "/") goes out on the same session, which unsticks the server: sent by
 * the backend for the requests it waits for (poke_if_overdue, from its
 * wait), by the watchdog for those nobody waits for.  The watchdog sleeps
 * until one of those may be overdue, or something else is due, and
 * otherwise until woken (wake_watchdog_locked): a tick of its own on every
 * busy backend would cost a context switch per lock cycle.  It runs
 * whether or not the backend waits, so a delete in flight while the
 * backend sits idle is not stuck either.
 *
 * The watchdog also sends what the other files queue for "once connected"
 * or "when the time is up": releases held back or failed on a connection
 * error (releases.c), searches for abandoned creates (releases.c), and
 * the getData that arms a held node's watch again (held.c).  Like the
 * client's completions, it never calls PostgreSQL and takes no signals; it
 * picks its work and sends it under shared_mu.
 *
 * Logging.  The client would print to stderr, i.e. the server log.  Its
 * messages go through log_to_ring() (client thread) into a small ring that
 * the backend drains at DEBUG1, so they show up only when asked for.
 *
 * What can go wrong: the thread outliving the handle it sends on
 * (close_handle() stops and joins it before closing); a PostgreSQL call
 * in the thread; the ring filling up while the backend does not wait
 * (lines are then counted as dropped).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/eventfd.h>

#include "nls.h"
#include "transport_int.h"

/* The most of each kind of work sent per tick. */
#define PICK_RELEASES		16
#define PICK_HELD			16
#define PICK_HUNTS			4

/* ---- guarded by shared_mu ---- */
static bool watchdog_stop = false;
static bool watchdog_asleep = false;	/* in its poll */
static bool watchdog_idle = false;	/* asleep with nothing due */
static bool poke_in_flight = false;
static int64 poke_sent_us = 0;

/* Written to wake the watchdog; made before its first thread, kept after. */
static int	wake_fd = -1;

/* ---- backend-only ---- */
static pthread_t watchdog_thread;
static bool watchdog_running = false;

/* The client's log lines, guarded by log_mu (not shared_mu). */
#define LOG_RING_SIZE 32
#define LOG_LINE_MAX 300
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_ring[LOG_RING_SIZE][LOG_LINE_MAX];
static int	log_head = 0;		/* next slot to write */
static int	log_count = 0;
static int	log_dropped = 0;

/* What one tick of the watchdog sends, picked under shared_mu */
typedef struct Picked
{
	bool		poke;
	int			nreleases;
	ZkRelease  *releases[PICK_RELEASES];
	int			nheld;
	ZkHeld	   *held[PICK_HELD];
	int			nhunts;
	ZkHunt	   *hunts[PICK_HUNTS];
} Picked;

static void send_picked(zhandle_t *h, const Picked *p);

/* ===================================================================
 * Watchdog and client thread side.  Nothing here may call PostgreSQL.
 * ===================================================================
 */

/* any thread: make the watchdog's poll return */
static void
signal_watchdog(void)
{
	signal_eventfd(wake_fd);
}

/* client thread: a poke's reply says only that the session is alive */
static void
poke_done(int rc, const struct Stat *stat, const void *data)
{
	pthread_mutex_lock(&shared_mu);
	poke_in_flight = false;
	note_answer_locked(rc, poke_sent_us);
	pthread_mutex_unlock(&shared_mu);
}

/*
 * shared_mu held: how long the watchdog may sleep: until something is due
 * (a held-back release, a retry, a request nobody waits for that may be
 * overdue).  With nothing due, ZK_IDLE_TICK_MS, and it is woken by
 * wake_watchdog_locked() when there is: a backend cycling locks with its
 * releases awaited never wakes it.
 */
static int64
due_in_us_locked(void)
{
	int64		now = mono_us();
	int64		sleep_us = ZK_IDLE_TICK_MS * 1000L;

	sleep_us = next_release_due_us_locked(now, sleep_us);
	sleep_us = next_held_due_us_locked(now, sleep_us);
	sleep_us = next_abandoned_due_us_locked(now, sleep_us);
	if (poke_in_flight)
		sleep_us = Min(sleep_us, ZK_TICK_MS * 1000L);
	return sleep_us;
}

/*
 * shared_mu held: drive the client until something is due, or someone
 * wakes us: ask the client what it waits for, sleep without the mutex on
 * its socket (unless the backend reads it now, clientio.c) and on
 * `wake_fd`, then let the client act on what came.
 */
static void
drive_client_locked(zhandle_t *h)
{
	int64		sleep_us = due_in_us_locked();
	int64		client_us,
				keep_off_us;
	int			fd,
				interest,
				events;
	uint64		epoch;
	bool		keep_off;

	epoch = client_interest_locked(h, &fd, &interest, &client_us);
	sleep_us = Min(sleep_us, client_us);
	keep_off = watchdog_keeps_off_locked(mono_us(), &keep_off_us);
	if (keep_off)
	{
		fd = -1;
		sleep_us = Min(sleep_us, keep_off_us);
	}
	watchdog_idle = sleep_us >= ZK_IDLE_TICK_MS * 1000L;
	watchdog_asleep = true;
	pthread_mutex_unlock(&shared_mu);

	events = watchdog_poll(fd, interest, wake_fd, sleep_us);

	pthread_mutex_lock(&shared_mu);
	watchdog_asleep = false;
	watchdog_idle = false;
	if (!keep_off)
		client_process_locked(h, epoch, events);
	else if (!backend_pumps_locked())
	{
		/*
		 * Woken for work of its own while the backend, between waits, has
		 * left answers unread: read them first, so that nothing is judged
		 * overdue that has come.
		 */
		client_pump_nowait(h, true);
	}
}

/*
 * shared_mu held (any thread): there is something for the watchdog to
 * watch; wake it if it sleeps with nothing due.
 */
void
wake_watchdog_locked(void)
{
	if (watchdog_idle)
	{
		watchdog_idle = false;
		signal_watchdog();
	}
}

/*
 * shared_mu held (any thread): the watchdog has work now (a retry, a
 * release held back); wake it if it sleeps.
 */
void
kick_watchdog_locked(void)
{
	if (watchdog_asleep)
	{
		watchdog_asleep = false;
		watchdog_idle = false;
		signal_watchdog();
	}
}

/*
 * shared_mu held, connected: poke if a request, a release or a held
 * node's getData is overdue (ZOOKEEPER-4537), unless a poke is out.
 */
static void
poke_if_overdue_locked(Picked *p, int64 now)
{
	if (poke_in_flight)
		return;
	p->poke = req_overdue_locked(now) || releases_overdue_locked(now) ||
		held_overdue_locked(now);
	if (p->poke)
	{
		poke_in_flight = true;
		poke_sent_us = now;
	}
}

/* shared_mu held: pick this tick's work (see the file comment) */
static void
pick_work_locked(zhandle_t *h, Picked *p)
{
	int64		now = mono_us();
	bool		connected;

	memset(p, 0, sizeof(Picked));
	p->nreleases = pick_due_releases_locked(p->releases, 0, PICK_RELEASES, now);
	connected = zoo_state(h) == ZOO_CONNECTED_STATE;
	if (!connected)
		return;
	poke_if_overdue_locked(p, now);
	p->nreleases = pick_retry_releases_locked(p->releases, p->nreleases,
											  PICK_RELEASES, now);
	p->nheld = pick_held_to_arm_locked(p->held, PICK_HELD, now);
	p->nhunts = pick_hunts_locked(p->hunts, PICK_HUNTS);
}

/*
 * Any thread, without shared_mu: send the poke now if something is overdue
 * and no poke is out (the backend calls it when its own wait for a request
 * has lasted ZK_OVERDUE_US).
 */
void
poke_if_overdue(zhandle_t *h)
{
	Picked		p;

	memset(&p, 0, sizeof(p));
	pthread_mutex_lock(&shared_mu);
	if (zoo_state(h) == ZOO_CONNECTED_STATE)
		poke_if_overdue_locked(&p, mono_us());
	pthread_mutex_unlock(&shared_mu);
	send_picked(h, &p);
}

/* Send what was picked (any thread; shared_mu is taken for each call) */
static void
send_picked(zhandle_t *h, const Picked *p)
{
	int			i;

	if (p->poke && CLIENT_SEND(zoo_aexists(h, "/", 0, poke_done, NULL)) != ZOK)
	{
		pthread_mutex_lock(&shared_mu);
		poke_in_flight = false;
		pthread_mutex_unlock(&shared_mu);
	}
	for (i = 0; i < p->nreleases; i++)
		send_release(h, p->releases[i]);
	for (i = 0; i < p->nheld; i++)
		held_send(h, p->held[i]);
	for (i = 0; i < p->nhunts; i++)
		send_hunt(h, p->hunts[i]);
}

/*
 * watchdog thread: drive the client while the backend does not; whenever
 * something is due, whatever the backend is doing, send one cheap read if
 * a request is overdue (ZOOKEEPER-4537), and send again the releases that
 * failed on a connection error; and send each held-back release once its
 * ZK_RELEASE_HOLD_US are up.  It calls only the ZooKeeper client (under
 * shared_mu), never PostgreSQL.  It runs only while its handle is open:
 * close_handle() stops and joins it first.
 */
static void *
watchdog_main(void *arg)
{
	zhandle_t  *h = (zhandle_t *) arg;
	Picked		p;

	pthread_mutex_lock(&shared_mu);
	while (!watchdog_stop)
	{
		drive_client_locked(h);
		if (watchdog_stop)
			break;
		pick_work_locked(h, &p);
		send_picked(h, &p);
	}
	pthread_mutex_unlock(&shared_mu);
	return NULL;
}

/* client thread: keep the client's log lines for the backend to report */
void
log_to_ring(const char *message)
{
	pthread_mutex_lock(&log_mu);
	if (log_count == LOG_RING_SIZE)
		log_dropped++;
	else
	{
		strncpy(log_ring[log_head], message, LOG_LINE_MAX - 1);
		log_ring[log_head][LOG_LINE_MAX - 1] = '\0';
		log_head = (log_head + 1) % LOG_RING_SIZE;
		log_count++;
	}
	pthread_mutex_unlock(&log_mu);
}

/* shared_mu held, the handle closed: no poke is out any more */
void
forget_poke_locked(void)
{
	poke_in_flight = false;
}

/* ===================================================================
 * Backend side.
 * ===================================================================
 */

/*
 * Start the watchdog on a new handle.  Call it with every signal blocked,
 * so that the thread takes none.  False if the thread could not be made.
 */
bool
start_watchdog(zhandle_t *h)
{
	if (wake_fd < 0)
		wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd < 0)
		return false;
	watchdog_stop = false;
	watchdog_running =
		pthread_create(&watchdog_thread, NULL, watchdog_main, h) == 0;
	return watchdog_running;
}

/* Stop the watchdog and wait for it to end; before its handle is closed. */
void
stop_watchdog(void)
{
	if (!watchdog_running)
		return;
	pthread_mutex_lock(&shared_mu);
	watchdog_stop = true;
	signal_watchdog();
	pthread_mutex_unlock(&shared_mu);
	pthread_join(watchdog_thread, NULL);
	watchdog_running = false;
}

/* Is the watchdog running (it sends held-back releases in time)? */
bool
watchdog_is_running(void)
{
	return watchdog_running;
}

/* Report the client's buffered log lines at DEBUG1. */
void
drain_client_log(void)
{
	char		lines[LOG_RING_SIZE][LOG_LINE_MAX];
	int			n,
				dropped,
				i,
				first;

	pthread_mutex_lock(&log_mu);
	n = log_count;
	dropped = log_dropped;
	first = (log_head - log_count + LOG_RING_SIZE) % LOG_RING_SIZE;
	for (i = 0; i < n; i++)
		memcpy(lines[i], log_ring[(first + i) % LOG_RING_SIZE], LOG_LINE_MAX);
	log_count = 0;
	log_dropped = 0;
	pthread_mutex_unlock(&log_mu);

	for (i = 0; i < n; i++)
	{
		size_t		len = strlen(lines[i]);

		while (len > 0 && (lines[i][len - 1] == '\n' || lines[i][len - 1] == '\r'))
			lines[i][--len] = '\0';
		elog(DEBUG1, "zookeeper client: %s", lines[i]);
	}
	if (dropped > 0)
		ereport(DEBUG1,
				(errmsg_plural("%d log line of the ZooKeeper client was dropped",
							   "%d log lines of the ZooKeeper client were dropped",
							   dropped, dropped)));
}
