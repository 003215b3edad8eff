/*-------------------------------------------------------------------------
 * clientio.c
 *	  Who drives the ZooKeeper client's I/O, and when.
 *
 * We use the single-threaded C client (libzookeeper_st): it has no threads
 * of its own, and does its I/O in whichever thread calls
 * zookeeper_interest() (connects, pings, timeouts) and zookeeper_process()
 * (reads answers and runs their completions and watchers).  It is not
 * thread-safe, so every call into it, from any thread, is made under
 * `shared_mu`, which is recursive: a completion that runs inside
 * zookeeper_process() takes it again, and may send a request.
 *
 * Two threads take turns:
 *
 * - The backend, while it waits (sleep_for, transport.c), polls the
 *   client's socket itself beside its latch, and reads the answers the
 *   moment they come: an answer costs no thread hand-off at all.  A
 *   request is sent by the thread that makes it, at once.
 * - The watchdog (watchdog.c) drives the client the rest of the time: it
 *   keeps the session alive with pings however long the backend is busy
 *   elsewhere (a lock stays held through a statement that runs for many
 *   session timeouts), and reads what comes while nobody waits (a held
 *   node's watch, a release nobody awaits).  While the backend waits, and
 *   for a linger after (ZK_PUMP_LINGER_US, at most a sixth of the session's
 *   timeout), the watchdog leaves the socket alone and sleeps until
 *   something of its own is due: a backend that cycles locks does its own
 *   reading, and its watchdog wakes about once a second instead of once per
 *   answer.  What came meanwhile is read at the next entry point
 *   (client_pump_nowait), or by the watchdog when it looks; woken for work
 *   of its own, the watchdog reads first.
 *
 * Each thread asks the client what it waits for (client_interest_locked),
 * polls without the mutex, then hands over what the poll saw
 * (client_process_locked).  If the client changed sockets meanwhile (a
 * reconnect by the other thread), the poll's events are dropped: they
 * belong to the old socket.
 *
 * What can go wrong: a call into the client without shared_mu (a data race
 * inside the client); the watchdog sleeping on the socket while the
 * backend reads it (a wasted wake-up per answer); the backend's wait set
 * kept on a socket the client has closed (hence backend_wait_set() checks
 * the socket on every wait).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "transport_int.h"

static WaitEventSet *make_wait_set(int fd, int events);
static void drain_eventfd(int fd);

/* ---- guarded by shared_mu ---- */
pthread_mutex_t shared_mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static int	io_fd = -1;			/* the client's socket when last asked */
static uint64 io_epoch = 0;		/* moves when that socket's number does */
static bool backend_pumping = false;	/* the backend's wait polls it */
static int	sends_depth = 0;	/* client_sends_begin() not ended */
static int	corked_fd = -1;		/* the socket corked by the outermost */
static int64 pump_linger_until = 0; /* mono_us: the watchdog keeps off till */
static int64 pump_linger_us = ZK_PUMP_LINGER_US;	/* for this session */

/* Written once by the backend before any thread exists; read by threads. */
static int	event_fd = -1;

/* ---- backend only ---- */
static WaitEventSet *base_set = NULL;	/* latch, postmaster death, event_fd */
static WaitEventSet *socket_set = NULL; /* the same and the socket */
static int	socket_set_fd = -1; /* the socket in it */
static ino_t socket_set_ino = 0;	/* and its inode: a number can be reused */
static int	socket_set_events = 0;

/*
 * Any thread, shared_mu held: what the client waits for on `h`: its socket
 * (-1: none now), ZOOKEEPER_READ/WRITE, and the longest it may wait (us)
 * before it must be called again (a ping, a connect timeout).  Returns the
 * socket's epoch, for client_process_locked().  May run completions (a
 * timed-out connection fails what was in flight).
 */
uint64
client_interest_locked(zhandle_t *h, int *fd, int *interest, int64 *wait_us)
{
	struct timeval tv = {0, 0};
	int			rc;

	*fd = -1;
	*interest = 0;
	rc = zookeeper_interest(h, fd, interest, &tv);
	if (rc != ZOK && rc != ZNOTHING)
	{
		/*
		 * A connection error was handled inside (a reconnect comes): look
		 * again soon.  A handle that is dead (expired, auth failed) waits for
		 * the backend to notice and close it: nothing to look for.
		 */
		*fd = -1;
		*interest = 0;
		tv.tv_sec = 0;
		tv.tv_usec = rc == ZINVALIDSTATE ? ZK_IDLE_TICK_MS * 1000L : 10000;
	}
	*wait_us = (int64) tv.tv_sec * 1000000 + tv.tv_usec;
	if (*fd != io_fd)
	{
		io_fd = *fd;
		io_epoch++;
	}
	return io_epoch;
}

/*
 * Any thread, shared_mu held: let the client act on what a poll saw
 * (ZOOKEEPER_READ/WRITE; 0: the poll timed out), unless its socket changed
 * since `epoch`.  Runs completions and watchers.
 */
void
client_process_locked(zhandle_t *h, uint64 epoch, int events)
{
	int			rc;

	if (epoch != io_epoch)
		events = 0;				/* seen on a socket that is gone */
	rc = zookeeper_process(h, events);

	/*
	 * The client reads one message per call: read the others that have come
	 * (answers pipelined behind each other), until it finds nothing more.
	 */
	while (rc == ZOK && (events & ZOOKEEPER_READ))
		rc = zookeeper_process(h, ZOOKEEPER_READ);
}

/* The client's interest as poll(2) events */
static short
poll_events(int interest)
{
	return ((interest & ZOOKEEPER_READ) ? POLLIN : 0) |
		((interest & ZOOKEEPER_WRITE) ? POLLOUT : 0);
}

/* poll(2) results as the client's events */
static int
client_events(short revents)
{
	return ((revents & (POLLIN | POLLHUP | POLLERR)) ? ZOOKEEPER_READ : 0) |
		((revents & POLLOUT) ? ZOOKEEPER_WRITE : 0);
}

/*
 * Any thread: read what has come on `h`'s socket, without waiting.  For the
 * places that must see the latest news (an entry point; the commit check,
 * `always`): unless `always`, only while the watchdog keeps off the socket,
 * since otherwise it reads promptly itself.
 */
void
client_pump_nowait(zhandle_t *h, bool always)
{
	int			fd,
				interest;
	int64		wait_us;
	uint64		epoch;
	struct pollfd p;

	if (h == NULL)
		return;
	pthread_mutex_lock(&shared_mu);
	if (!always && !watchdog_keeps_off_locked(mono_us(), &wait_us))
	{
		pthread_mutex_unlock(&shared_mu);
		return;
	}
	epoch = client_interest_locked(h, &fd, &interest, &wait_us);
	if (fd >= 0 && interest != 0)
	{
		p.fd = fd;
		p.events = poll_events(interest);
		p.revents = 0;
		if (poll(&p, 1, 0) == 1)
			client_process_locked(h, epoch, client_events(p.revents));
	}
	pthread_mutex_unlock(&shared_mu);
}

/*
 * Any thread, shared_mu held: the requests sent until the matching
 * client_sends_end() go out together.  The client writes each request in
 * two pieces (its length, then the rest), each a TCP segment of its own,
 * and every segment costs the server's side a wake-up; corked, the kernel
 * sends them in as few segments as fit.  Nests.
 */
void
client_sends_begin_locked(void)
{
	int			on = 1;

	sends_depth++;
	if (corked_fd >= 0 || io_fd < 0)
		return;
	if (setsockopt(io_fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) == 0)
		corked_fd = io_fd;
}

/* Any thread, shared_mu held: the outermost end sends what was corked */
void
client_sends_end_locked(void)
{
	if (sends_depth > 0 && --sends_depth == 0)
		client_sends_flush_locked();
}

/*
 * Any thread, shared_mu held: send what is corked now (a wait must not keep
 * its own requests back); a batch still open corks its next request again.
 */
void
client_sends_flush_locked(void)
{
	int			off = 0;

	if (corked_fd < 0)
		return;
	(void) setsockopt(corked_fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
	corked_fd = -1;
}

/* Any thread, shared_mu held: as flush, and forget a batch an ERROR left open */
void
client_sends_reset_locked(void)
{
	sends_depth = 0;
	client_sends_flush_locked();
}

/* ---- the watchdog's side ---- */

/*
 * shared_mu held: should the watchdog keep off the socket now?  If so,
 * `*until_us` says how long (a sleep from now, at most).
 */
bool
watchdog_keeps_off_locked(int64 now, int64 *until_us)
{
	if (backend_pumping)
	{
		*until_us = pump_linger_us; /* a wait: look again then */
		return true;
	}
	if (now < pump_linger_until)
	{
		*until_us = pump_linger_until - now;
		return true;
	}
	return false;
}

/*
 * watchdog thread, without shared_mu: sleep until `fd` (-1: none) shows
 * `interest`, `wake_fd` is written, or `wait_us` passes.  Returns the
 * client's events seen on `fd`.
 */
int
watchdog_poll(int fd, int interest, int wake_fd, int64 wait_us)
{
	struct pollfd p[2];
	int			n = 0;
	int			events = 0;
	int			timeout_ms;

	p[n].fd = wake_fd;
	p[n].events = POLLIN;
	p[n].revents = 0;
	n++;
	if (fd >= 0 && interest != 0)
	{
		p[n].fd = fd;
		p[n].events = poll_events(interest);
		p[n].revents = 0;
		n++;
	}
	timeout_ms = (int) Min((wait_us + 999) / 1000, (int64) INT_MAX);
	if (poll(p, n, timeout_ms) > 0)
	{
		if (p[0].revents & POLLIN)
			drain_eventfd(wake_fd);
		if (n == 2)
			events = client_events(p[1].revents);
	}
	return events;
}

/* shared_mu held: is the backend in a wait, reading the socket itself? */
bool
backend_pumps_locked(void)
{
	return backend_pumping;
}

/* ---- the backend's side ---- */

/*
 * shared_mu held: the backend is about to wait on `h`: it polls the socket
 * now; the watchdog keeps off it, and looks again every pump_linger_us.
 * That is at most a sixth of the session's timeout, so that the socket is
 * never long unread once the backend stops reading it: the client counts a
 * silent server as gone after two thirds of the timeout.
 */
void
backend_pump_begin_locked(zhandle_t *h)
{
	backend_pumping = true;
	pump_linger_us = Min((int64) ZK_PUMP_LINGER_US,
						 (int64) zoo_recv_timeout(h) * 1000 / 6);
}

/* shared_mu held: the backend's wait is over; the watchdog keeps off a while */
void
backend_pump_end_locked(void)
{
	backend_pumping = false;
	pump_linger_until = mono_us() + pump_linger_us;
}

/*
 * Make the eventfd the watchdog's thread wakes the backend through, and the
 * wait set every wait of the backend starts from (its latch, postmaster
 * death, the eventfd).  Once per backend; throws if the eventfd cannot be
 * made.
 */
void
open_wait_set(void)
{
	if (event_fd < 0)
	{
		event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (event_fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create an eventfd for the ZooKeeper client: %m")));
	}
	if (base_set == NULL)
		base_set = make_wait_set(-1, 0);
}

/* A wait set on the latch, postmaster death, event_fd and socket `fd` */
static WaitEventSet *
make_wait_set(int fd, int events)
{
	WaitEventSet *set = CreateWaitEventSet(TopMemoryContext, fd < 0 ? 3 : 4);

	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(set, WL_SOCKET_READABLE, event_fd, NULL, NULL);
	if (fd >= 0)
		AddWaitEventToSet(set, events, fd, NULL, NULL);
	return set;
}

/* any thread: make a wait on eventfd `fd` return */
void
signal_eventfd(int fd)
{
	uint64		one = 1;
	ssize_t		r = write(fd, &one, sizeof(one));

	(void) r;					/* a full counter still wakes the reader */
}

/* any thread: empty eventfd `fd` after a wait saw it written */
static void
drain_eventfd(int fd)
{
	uint64		buf;
	ssize_t		r = read(fd, &buf, sizeof(buf));

	(void) r;
}

/* any thread: wake the backend's wait */
void
signal_backend(void)
{
	signal_eventfd(event_fd);
}

/*
 * The wait set for a wait of the backend on the client's socket `fd` for
 * `interest` too (fd -1 or no interest: the base set).  The set is made
 * again only when the socket changes (a reconnect; the kernel drops a
 * closed socket from the set by itself, and a new one may get the same
 * number, hence the inode).
 */
WaitEventSet *
backend_wait_set(int fd, int interest)
{
	int			events = ((interest & ZOOKEEPER_READ) ? WL_SOCKET_READABLE : 0) |
	((interest & ZOOKEEPER_WRITE) ? WL_SOCKET_WRITEABLE : 0);
	struct stat st;

	if (fd < 0 || events == 0)
		return base_set;
	if (fstat(fd, &st) != 0)
		st.st_ino = 0;
	if (socket_set != NULL &&
		(socket_set_fd != fd || socket_set_ino != st.st_ino))
	{
		FreeWaitEventSet(socket_set);
		socket_set = NULL;
	}
	if (socket_set == NULL)
	{
		socket_set = make_wait_set(fd, events);
		socket_set_fd = fd;
		socket_set_ino = st.st_ino;
		socket_set_events = events;
	}
	else if (socket_set_events != events)
	{
		ModifyWaitEvent(socket_set, 3, events, NULL);
		socket_set_events = events;
	}
	return socket_set;
}

/*
 * What a wait of the backend returned: empty the eventfd if it was
 * written, and say what the client's socket `fd` showed.
 */
int
backend_wait_events(const WaitEvent *events, int n, int fd)
{
	int			i,
				got = 0;

	for (i = 0; i < n; i++)
	{
		if (events[i].fd == event_fd &&
			(events[i].events & WL_SOCKET_READABLE))
			drain_eventfd(event_fd);
		else if (fd >= 0 && events[i].fd == fd)
		{
			if (events[i].events & WL_SOCKET_READABLE)
				got |= ZOOKEEPER_READ;
			if (events[i].events & WL_SOCKET_WRITEABLE)
				got |= ZOOKEEPER_WRITE;
		}
	}
	return got;
}

/* A handle closed: the next socket is a new one */
void
forget_client_io_locked(void)
{
	client_sends_reset_locked();
	io_fd = -1;
	io_epoch++;
	backend_pumping = false;
	pump_linger_until = 0;
}
