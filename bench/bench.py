#!/usr/bin/python3
"""zksync benchmark: the same work side by side, in one run, on one ensemble.

Contenders, alternated round by round so that machine drift hits them alike,
all on the first server of --zk-hosts (a write's latency differs from server to
server, and each contender would otherwise land on one at random):
  floor-sync       the ZooKeeper C client: create, get_children, delete (bench/floor.c)
  floor-pipelined  the same with create and get_children in one round trip,
                   then the delete, awaited
  floor-nowait     create and get_children in one round trip, then the delete
                   sent and not waited for: the next cycle's create follows it
  zksync           SELECT zksync_write_lock('b'); SELECT zksync_write_unlock('b')
                   (prepared statements, one warm backend), with
                   zksync.synchronous_release = on: the unlock returns once
                   ZooKeeper applied the delete.  The SQL contenders are
                   driven by bench/sqlcycle.c, a C client on libpq (one
                   connection each, kept across the rounds), as the floor
                   is C: a Python driver's interpreter adds tens of us per
                   statement, more with cold caches after a wait
  zksync-python    the zksync cycle driven from Python (psycopg2) instead,
                   for reference: what the driver adds
  zksync-proc      the same cycle inside a procedure: a PL/pgSQL loop in the
                   backend (PERFORM zksync_write_lock('bp'); PERFORM
                   zksync_write_unlock('bp')), each cycle timed in the
                   backend, no client statement per cycle (a stored
                   procedure's use; synchronous_release on)
  zksync-nowait    the same with zksync.synchronous_release = off: the delete
                   is sent and not waited for
  zksync-xact      BEGIN; SELECT zksync_xact_write_lock('b'); COMMIT
                   (synchronous_release on)
  zksync-multi3    SELECT zksync_write_lock(ARRAY['m1','m2','m3']);
                   SELECT zksync_write_unlock(ARRAY['m1','m2','m3'])
                   (one multi-lock of 3 names; synchronous_release on)
  zksync-3singles  the same 3 names one at a time: lock m1, m2, m3, then
                   unlock m1, m2, m3 (six statements; synchronous_release on)
  floor-multi3     the C client's floor of zksync-multi3: the 3 creates in
                   one multi and the 3 listings, pipelined, then the 3
                   deletes in one multi, awaited (bench/floor.c bulk)
  zksync-sem       SELECT zksync_semaphore_acquire('bs', 3);
                   SELECT zksync_semaphore_release('bs') (prepared statements,
                   zksync's backend, synchronous_release on), nothing else
                   holding a lease
  curator-sem      Apache Curator's InterProcessSemaphoreV2(client,
                   ROOT/semaphores/bs-curator, 3): acquire(), then
                   returnLease() (bench/CuratorSemaphoreCycle.java, compiled
                   with javac at run time against Debian's jars in
                   /usr/share/java; one JVM kept across the rounds)
  kazoo            kazoo Lock acquire/release
  advisory         pg_advisory_lock / pg_advisory_unlock, the local reference
Then bulk: 1000 names locked in one transaction, once by one call of
zksync_xact_write_lock(text[]) and once by a loop of 1000 calls of
zksync_xact_write_lock(text), each timed right after an untimed run of the
same form, so that the names' lock directories exist (they are container
nodes, which the server reaps once they are empty; bench/run.sh's ensemble
checks once an hour, so not during a run), and
its floor: the C client taking 1000 free names at once, creates in multis
and listings all pipelined, then the deletes in multis (bench/floor.c bulk).
Then contention (4 and 16 backends, synchronous_release on, vs kazoo
processes on one lock; the backends share one cluster, so they hand the
lock to each other directly, and 4 backends run once more with
zksync.local_handoff = off and once with synchronous_release off), 64 backends each cycling its own lock
against 64 C-client sessions doing the same (both release modes, each
against the floor of the same mode, the backends driven by pgbench; and
once more with synchronous_release on and the cycles inside a procedure,
each backend looping in PL/pgSQL; with the CPU each side's lock client
spends per cycle), scale (hand-off latency through ZooKeeper with 1, 100
and 1000 contenders queued), a barrier release of 100 waiting backends,
the per-backend cost of a session, and operators: SELECT count(*) FROM
zksync_waits() with 10, 1000 and 10000 locks held (beside the C client's
floor of the same reads, bench/floor.c read), and what deadlock detection
costs a wait that is not a deadlock: A holds a lock, B waits, A releases
after 200 ms or 2200 ms, with B's deadlock_timeout past the hold (1 s or
10 s: nothing to do before it) and with 50 ms (B publishes its wait and
scans once or four times: at 50, 250, 650 and 1450 ms): B's whole wait, the time from A's unlock to
B's grant, and the ZooKeeper requests of B's session (the last client xid
that the servers' cons shows).  --only
operators runs that phase alone and prints its tables; --only uncontended
runs the uncontended cycles alone and prints their table and zksync's
cycle-time ratios to the floor (for a quick before and after); --only cpu,
--only bulk and --only parallel run the CPU-per-cycle phase, the 1000-name
call and the 64-session runs alone.

CPU per cycle (first, before anything else loads the servers): one warm
backend cycling its own lock, thread by thread (the backend's, which
reads its own answers, and the watchdog's), beside the C
floor's whole process (pipelined, delete awaited) and an advisory-lock
cycle in a backend, alternated over rounds; with the 64-session runs' CPU
(zksync and advisory locks driven by pgbench, a C client as the floor is),
in the "CPU per cycle" table.

Prints a table with medians, p99, worst cycle and the ratios (each with its
target and whether it was met), writes OUT/results.md, OUT/latency.dat and
OUT/latency.png (gnuplot).
"""
import argparse
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import logging

import psycopg2
from kazoo.client import KazooClient

# the setting that picks how an unlock releases its node
RELEASE_GUC = "zksync.synchronous_release"
# bulk phase: attempts of one run (untimed and timed) before giving up on it
BULK_ATTEMPTS = 3
# the server's container reaper (bench/run.sh's ensemble: once an hour, none
# during a run; the tests' ensemble, scripts/zk.sh: a second; at most 10000
# deletions a minute): with a one-second interval a pass starts
# within REAP_S of a COMMIT that empties directories and takes REAP_EACH_S
# per directory, plus a margin
REAP_S = 1.5
REAP_EACH_S = 0.006
# one colour per line of the latency plot (gnuplot's own cycle has 8)
PLOT_COLOURS = ("#9400d3", "#009e73", "#56b4e9", "#e69f00", "#f0e442", "#0072b2", "#e51e10", "#000000",
                "#a0522d")
# the Curator semaphore program's classpath, as t/014_curator_semaphore.pl has it
CURATOR_JARS = ("curator-recipes", "curator-framework", "curator-client", "zookeeper", "zookeeper-jute",
                "guava", "slf4j-api", "slf4j-nop")
CURATOR_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "CuratorSemaphoreCycle.java")
# The "inside a procedure" contenders: lock cycles run by a PL/pgSQL loop in
# the backend, the way a stored procedure takes its locks, with no client
# statement per cycle.  Made in each session that uses them, in pg_temp
# (nothing is left behind).  zksync_bench_cycles: n cycles on `name`, each
# timed in the backend (us; the timing brackets the two calls alone).
# zksync_bench_loop: cycles on `name` until the wall clock reaches `stop`
# (epoch seconds), counting those that start at or after `start` (the ones
# before warm the session up).
PROC_FUNCTIONS = (
    """CREATE FUNCTION pg_temp.zksync_bench_cycles(name text, n int) RETURNS float8[]
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    us float8[] := '{}';
BEGIN
    FOR i IN 1 .. n LOOP
        t0 := clock_timestamp();
        PERFORM zksync_write_lock(name);
        PERFORM zksync_write_unlock(name);
        us := us || (extract(epoch FROM clock_timestamp() - t0) * 1e6)::float8;
    END LOOP;
    RETURN us;
END $$""",
    """CREATE FUNCTION pg_temp.zksync_bench_loop(name text, start float8, stop float8) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0;
BEGIN
    WHILE extract(epoch FROM clock_timestamp()) < start LOOP
        PERFORM zksync_write_lock(name);
        PERFORM zksync_write_unlock(name);
    END LOOP;
    WHILE extract(epoch FROM clock_timestamp()) < stop LOOP
        PERFORM zksync_write_lock(name);
        PERFORM zksync_write_unlock(name);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$""")


def pct(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, int(len(s) * p))]


def summary(us):
    return dict(n=len(us), median=statistics.median(us), p99=pct(us, 0.99), worst=max(us),
                rate=1e6 / statistics.mean(us))


def one_server(hosts):
    """The first server of a connect string, with its chroot if any."""
    servers, slash, chroot = hosts.partition("/")
    return servers.split(",")[0] + slash + chroot


class SqlCycle:
    """A bench/sqlcycle.c process: one connection with `statements`
    ({name: sql}) prepared, GUCs `gucs` ({name: value}) set at connect."""

    def __init__(self, exe, host, port, app, gucs, statements):
        opts = " ".join("-c %s=%s" % (k, v) for k, v in gucs.items())
        for v in gucs.values():
            if any(ch in str(v) for ch in " '\\"):
                raise ValueError("sqlcycle: a setting with a space or quote: %r" % v)
        conninfo = ("host=%s port=%d user=postgres dbname=postgres application_name=%s "
                    "options='%s'" % (host, port, app, opts))
        self.p = subprocess.Popen([exe, conninfo] + ["%s=%s" % kv for kv in statements.items()],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            self.p.kill()
            raise RuntimeError("sqlcycle did not start (exit %s)" % self.p.wait())

    def run(self, names, n):
        """n cycles of the prepared statements `names`, in that order: [us]."""
        self.p.stdin.write("%d %s\n" % (n, " ".join(names)))
        self.p.stdin.flush()
        us = []
        for line in self.p.stdout:
            if line.strip() == "end":
                return us
            us.append(int(line))
        raise RuntimeError("sqlcycle ended (exit %s)" % self.p.wait())

    def stop(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


class Bench:
    def __init__(self, a):
        self.a = a
        self.root = "/zksync-bench"
        self.lat = {}
        # The phases of one session at a time (uncontended, CPU per cycle,
        # bulk, the operators' reads) talk to this one server, every
        # contender alike: a write's latency and cost differ from server to
        # server (the leader, a follower; up to 2x on one machine), and a
        # backend keeps its session on one server for the whole run while the
        # floor's process connects anew each round.  The phases of many
        # sessions use every server.
        self.one = one_server(a.zk_hosts)
        self.on_one = ["zksync.hosts = '%s'" % self.one]

    def pg(self, app="bench", sets=()):
        return connect(self.a.pg_host, self.a.pg_port, self.root, app, sets)

    def kz(self):
        z = KazooClient(hosts=self.one, timeout=10.0)
        z.start(timeout=30)
        return z

    # ---- uncontended contenders: each returns a list of cycle times (us) ----
    def floor(self, mode, n):
        out = subprocess.run([self.a.floor, self.one, self.root + "/locks/floor", mode, str(n)],
                             capture_output=True, text=True, check=True).stdout
        return [int(x) for x in out.split()]

    def floor_bulk(self, names, n, dirs):
        """n cycles of `names` locks at once on dirs<1..names> (floor.c
        bulk): [(lock us, release us, creates alone us)]."""
        out = subprocess.run([self.a.floor, self.one, dirs, "bulk", str(names), str(n)],
                             capture_output=True, text=True, check=True).stdout
        v = [int(x) for x in out.split()]
        return list(zip(v[0::3], v[1::3], v[2::3]))

    def floor_parallel(self, mode, sessions, secs):
        """Cycles per second of `sessions` C-client sessions, session k
        cycling on its own lock directory floor-par<k>; its CPU and the
        machine's busy share in self.cpu."""
        p = subprocess.Popen([self.a.floor, self.a.zk_hosts, self.root + "/locks/floor-par", mode,
                              "-p", str(sessions), str(secs)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # it prints "ready" once its sessions are connected, then runs
        line = p.stdout.readline()
        busy0 = machine_busy()
        out, err = p.communicate()
        busy1 = machine_busy()
        if p.returncode != 0 or line.strip() != "ready":
            raise RuntimeError("floor failed: %s" % (err or line).strip())
        cycles, cpu_us = (int(x) for x in out.split()[:2])
        self.cpu = dict(cycles=cycles, client=cpu_us / 1e6, driver=0.0,
                        busy=busy_share(busy0, busy1))
        return cycles / secs

    def two_statements(self, conn, lock, unlock, n):
        """n cycles of two prepared statements (lock, unlock)."""
        return self.statements(conn, [lock, unlock], n)

    def statements(self, conn, names, n):
        """n cycles of prepared statements `names`, in that order."""
        cur = conn.cursor()
        execs = ["EXECUTE " + x for x in names]
        us = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            for e in execs:
                cur.execute(e)
            us.append((time.perf_counter_ns() - t0) // 1000)
        return us

    @staticmethod
    def make_procs(conn):
        """PROC_FUNCTIONS, in this session's pg_temp."""
        cur = conn.cursor()
        for f in PROC_FUNCTIONS:
            cur.execute(f)

    def proc_cycles(self, conn, name, n):
        """n cycles on `name` inside PL/pgSQL (zksync_bench_cycles, made by
        make_procs), in calls of at most 250 cycles: [us], each timed in
        the backend."""
        cur = conn.cursor()
        us = []
        while len(us) < n:
            cur.execute("SELECT pg_temp.zksync_bench_cycles(%s, %s)", (name, min(250, n - len(us))))
            us.extend(int(x) for x in cur.fetchone()[0])
        return us

    def kazoo(self, zk, n):
        lock = zk.Lock(self.root + "/kazoo/b")
        us = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            lock.acquire()
            lock.release()
            us.append((time.perf_counter_ns() - t0) // 1000)
        return us

    def curator_start(self, max_leases, warmup):
        """Compile bench/CuratorSemaphoreCycle.java and start it on
        ROOT/semaphores/bs-curator; it runs `warmup` untimed cycles first."""
        cp = ":".join("/usr/share/java/%s.jar" % j for j in CURATOR_JARS)
        for j in cp.split(":"):
            if not os.access(j, os.R_OK):
                raise RuntimeError("%s is missing: install libcurator-recipes-java and "
                                   "default-jdk-headless (scripts/install-deps.sh)" % j)
        self.curator_dir = tempfile.mkdtemp(prefix="zksync-bench-curator.")
        r = subprocess.run(["javac", "-nowarn", "-cp", cp, "-d", self.curator_dir, CURATOR_SRC],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("javac failed: " + (r.stderr or r.stdout)[-500:])
        p = subprocess.Popen(["java", "-cp", self.curator_dir + ":" + cp, "CuratorSemaphoreCycle",
                              self.one, self.root + "/semaphores/bs-curator", str(max_leases),
                              str(warmup)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        if line.strip() != "READY":
            p.kill()
            raise RuntimeError("the Curator semaphore program did not start: %r" % line)
        return p

    def curator_sem(self, p, n):
        """n acquire/returnLease cycles of the Curator program: [us]."""
        p.stdin.write("%d\n" % n)
        p.stdin.flush()
        us = []
        for line in p.stdout:
            if line.strip() == "END":
                return us
            us.append(int(line))
        raise RuntimeError("the Curator semaphore program ended (exit %s)" % p.wait())

    def curator_stop(self, p):
        p.stdin.close()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        subprocess.run(["rm", "-rf", self.curator_dir], check=False)

    def sql_driver(self, app, release, statements):
        return SqlCycle(self.a.sqlcycle, self.a.pg_host, self.a.pg_port, app,
                        {"zksync.root": self.root, "zksync.hosts": self.one, RELEASE_GUC: release},
                        statements)

    def uncontended(self):
        statements = {"l": "SELECT zksync_write_lock('b')", "u": "SELECT zksync_write_unlock('b')",
                      "begin": "BEGIN", "xl": "SELECT zksync_xact_write_lock('b')",
                      "commit": "COMMIT",
                      "al": "SELECT pg_advisory_lock(4537)", "au": "SELECT pg_advisory_unlock(4537)",
                      "sa": "SELECT zksync_semaphore_acquire('bs', 3)",
                      "sr": "SELECT zksync_semaphore_release('bs')",
                      "ml": "SELECT zksync_write_lock(ARRAY['m1', 'm2', 'm3'])",
                      "mu": "SELECT zksync_write_unlock(ARRAY['m1', 'm2', 'm3'])"}
        for i in (1, 2, 3):
            statements["l%d" % i] = "SELECT zksync_write_lock('m%d')" % i
            statements["u%d" % i] = "SELECT zksync_write_unlock('m%d')" % i
        drv = self.sql_driver("bench-zksync", "on", statements)
        # its own lock: the other backend's session would stand in its queue
        nowait = self.sql_driver("bench-zksync-nowait", "off",
                                 {"l": "SELECT zksync_write_lock('bn')",
                                  "u": "SELECT zksync_write_unlock('bn')"})
        # the procedure's loop, and the cycle driven from Python (psycopg2)
        conn = self.pg("bench-zksync-py", [RELEASE_GUC + " = on"] + self.on_one)
        cur = conn.cursor()
        cur.execute("PREPARE l AS SELECT zksync_write_lock('bpy')")
        cur.execute("PREPARE u AS SELECT zksync_write_unlock('bpy')")
        self.make_procs(conn)
        zk = self.kz()
        curator = self.curator_start(3, 200)
        runs = [
            ("floor-sync", lambda n: self.floor("sync", n)),
            ("floor-pipelined", lambda n: self.floor("pipelined", n)),
            ("floor-nowait", lambda n: self.floor("nowait", n)),
            ("zksync", lambda n: drv.run(["l", "u"], n)),
            ("zksync-proc", lambda n: self.proc_cycles(conn, "bp", n)),
            ("zksync-python", lambda n: self.two_statements(conn, "l", "u", n)),
            ("zksync-nowait", lambda n: nowait.run(["l", "u"], n)),
            ("zksync-xact", lambda n: drv.run(["begin", "xl", "commit"], n)),
            ("zksync-multi3", lambda n: drv.run(["ml", "mu"], n)),
            ("zksync-3singles", lambda n: drv.run(["l1", "l2", "l3", "u1", "u2", "u3"], n)),
            ("floor-multi3", lambda n: [a + b for a, b, _ in self.floor_bulk(3, n, self.root + "/locks/floor-m")]),
            ("zksync-sem", lambda n: drv.run(["sa", "sr"], n)),
            ("curator-sem", lambda n: self.curator_sem(curator, n)),
            ("kazoo", lambda n: self.kazoo(zk, n)),
            ("advisory", lambda n: drv.run(["al", "au"], n)),
        ]
        for name, fn in runs:      # warm up every path once
            fn(20)
        for r in range(self.a.rounds):
            order = runs[r % len(runs):] + runs[:r % len(runs)]
            for name, fn in order:
                self.lat.setdefault(name, []).extend(fn(self.a.cycles))
            print("  round %d/%d done" % (r + 1, self.a.rounds), file=sys.stderr, flush=True)
        zk.stop()
        self.curator_stop(curator)
        drv.stop()
        nowait.stop()
        conn.close()

    # ---- CPU per cycle, one backend, per thread ----
    def cpu_single(self, n, rounds):
        """CPU per cycle of one warm backend cycling its own lock (zksync,
        synchronous_release on, from the client and inside a procedure; and
        pg_advisory_lock), thread by thread, and of the C floor's process
        (pipelined, delete awaited), alternated over `rounds` rounds of `n`
        cycles.  Returns {contender: [per round:
        {"cpu": us per cycle, "cs": context switches per cycle, "threads":
        [(label, us, cs) per cycle]}]}.  The driver's own CPU is not counted."""
        conn = self.pg("bench-cpu", [RELEASE_GUC + " = on"] + self.on_one)
        cur = conn.cursor()
        cur.execute("PREPARE l AS SELECT zksync_write_lock('cpu')")
        cur.execute("PREPARE u AS SELECT zksync_write_unlock('cpu')")
        cur.execute("PREPARE al AS SELECT pg_advisory_lock(4538)")
        cur.execute("PREPARE au AS SELECT pg_advisory_unlock(4538)")
        self.make_procs(conn)
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        out = {}

        def backend(cycles):
            cycles(20)
            t0 = thread_usage(pid)
            cycles(n)
            t1 = thread_usage(pid)
            threads = []
            for i, tid in enumerate(sorted(t1)):
                if tid not in t0:
                    continue
                label = "backend" if tid == pid else THREAD_LABELS.get(i, "thread %d" % i)
                threads.append((label, (t1[tid][0] - t0[tid][0]) / 1e3 / n,
                                (t1[tid][1] - t0[tid][1]) / n))
            return dict(cpu=sum(t[1] for t in threads), cs=sum(t[2] for t in threads), threads=threads)

        def floor():
            p = subprocess.run([self.a.floor, self.one, self.root + "/locks/floor-cpu", "pipelined",
                                str(n)], capture_output=True, text=True, check=True)
            m = re.search(r"cpu_us (\d+) context_switches (\d+)", p.stderr)
            return dict(cpu=int(m.group(1)) / n, cs=int(m.group(2)) / n, threads=[])

        runs = [("zksync", lambda: backend(lambda k: self.two_statements(conn, "l", "u", k))),
                ("floor", floor),
                ("advisory", lambda: backend(lambda k: self.two_statements(conn, "al", "au", k))),
                ("zksync-proc", lambda: backend(lambda k: self.proc_cycles(conn, "cpu", k)))]
        for r in range(rounds):
            for name, fn in runs[r % len(runs):] + runs[:r % len(runs)]:
                out.setdefault(name, []).append(fn())
        conn.close()
        return out

    # ---- bulk: every row's name in one transaction ----
    def bulk(self, names, reps):
        """`reps` runs of each form of locking `names` names row-1 ..
        row-N in one transaction (synchronous_release on): one array call
        ("array") and a loop of single calls ("loop"), with the C client's
        floor of the array call ("floor"), the order rotated run by run.  Each
        timed run follows an untimed run of the same form at once, so the
        lock directories exist: they are containers, which the server reaps
        once they are empty (see REAP_S).  The reaper goes through the
        empty ones it found one by one (6 ms apart), deleting each that is
        empty when reached, so before each form's untimed run the phase waits
        out a pass that an earlier run's COMMIT may have started (REAP_S); the
        floor takes new directories each run.  Returns {form: [(lock us,
        COMMIT (release) us, directories made during the run or None)]} and
        {form: [the ERRORs of failed attempts]}: an attempt (untimed run and
        timed run) that fails is rolled back, noted and made again, up to
        BULK_ATTEMPTS times."""
        floor_creates = self.floor_creates = []   # floor: the creates alone, us
        conn = self.pg("bench-bulk", [RELEASE_GUC + " = on"] + self.on_one)
        cur = conn.cursor()
        cur.execute("PREPARE ba AS SELECT zksync_xact_write_lock("
                    "ARRAY(SELECT 'row-' || i FROM generate_series(1, %d) i))" % names)
        cur.execute("PREPARE bs(text) AS SELECT zksync_xact_write_lock($1)")
        rows = ["row-%d" % i for i in range(1, names + 1)]
        zk = self.kz()
        dirs = [self.root + "/locks/" + r for r in rows]

        def array():
            cur.execute("EXECUTE ba")

        def loop():
            for r in rows:
                cur.execute("EXECUTE bs(%s)", (r,))

        last_commit = [0.0]

        def run(fn, timed):
            if not timed:
                # a reaper pass over the names' emptied directories: wait it out
                time.sleep(max(0.0, last_commit[0] + REAP_S + names * REAP_EACH_S - time.time()))
            cur.execute("BEGIN")
            start = time.time()
            t0 = time.perf_counter_ns()
            fn()
            t1 = time.perf_counter_ns()
            made = 0
            if timed:
                # directories created since the run began (reaped after the
                # untimed run): counted while held, so none is gone yet
                stats = [zk.exists_async(d) for d in dirs]
                since = int(start * 1000)
                made = sum(1 for st in (f.get() for f in stats) if st is not None and st.ctime >= since)
            t2 = time.perf_counter_ns()
            try:
                cur.execute("COMMIT")
            finally:
                last_commit[0] = time.time()
            t3 = time.perf_counter_ns()
            return (t1 - t0) // 1000, (t3 - t2) // 1000, made

        def floor(r):
            # its own untimed cycle first, then one timed, on new directories
            lock_us, release_us, creates_us = self.floor_bulk(names, 1, self.root + "/locks/floor-%d-row-" % r)[0]
            floor_creates.append(creates_us)
            return lock_us, release_us, None

        def attempts(name, fn):
            for _ in range(BULK_ATTEMPTS):
                try:
                    run(fn, False)
                    out.setdefault(name, []).append(run(fn, True))
                    return
                except psycopg2.Error as e:
                    errors.setdefault(name, []).append(str(e).strip().splitlines()[0])
                    cur.execute("ROLLBACK")
                    print("  bulk %s: %s" % (name, errors[name][-1]), file=sys.stderr, flush=True)
                    time.sleep(2)

        forms = [("array", lambda: attempts("array", array)),
                 ("loop", lambda: attempts("loop", loop)),
                 ("floor", lambda: out.setdefault("floor", []).append(floor(r)))]
        out, errors = {}, {}
        for r in range(reps):
            for name, fn in forms[r % len(forms):] + forms[:r % len(forms)]:
                fn()
        zk.stop()
        conn.close()
        return out, errors

    # ---- contention ----
    def contended(self, worker, args, procs, secs):
        """Cycles per second of `procs` processes running worker(k, *args,
        ready, start, secs, queue), k = 0 .. procs-1 (processes: no GIL
        between them).  They start together once all are connected and
        warm, and count the cycles they finish in `secs` seconds.  Each
        reports (cycles, CPU seconds of its lock client, CPU seconds of
        the worker itself); the sums land in self.cpu, with the machine's
        busy share over the run."""
        q = multiprocessing.Queue()
        ready = multiprocessing.Queue()
        start = multiprocessing.Event()
        ps = [multiprocessing.Process(target=guarded, args=(worker, (k,) + args, ready, start, secs, q))
              for k in range(procs)]
        for p in ps:
            p.start()
        try:
            for _ in ps:
                got = ready.get(timeout=120)
                if got is not True:
                    raise RuntimeError("a worker failed: %s" % got)
            busy0 = machine_busy()
            start.set()
            total, client, driver = 0, 0.0, 0.0
            for _ in ps:
                got = q.get(timeout=secs + 120)
                if isinstance(got, str):
                    raise RuntimeError("a worker failed: %s" % got)
                total += got[0]
                client += got[1]
                driver += got[2]
            busy1 = machine_busy()
            self.cpu = dict(cycles=total, client=client, driver=driver,
                            busy=busy_share(busy0, busy1))
        finally:
            start.set()
            for p in ps:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
        return total / secs

    def zksync_contended(self, backends, secs, handoff="on", release="on"):
        """`backends` backends on one lock."""
        return self.contended(zksync_worker, (self.a.pg_host, self.a.pg_port, self.root,
                                              [RELEASE_GUC + " = " + release,
                                               "zksync.local_handoff = " + handoff],
                                              "contended"),
                              backends, secs)

    def zksync_parallel(self, backends, secs, release):
        """`backends` backends, backend k cycling on its own lock par<k>,
        driven by pgbench (see pgbench_parallel)."""
        return self.pgbench_parallel("SELECT zksync_write_lock('par' || :client_id);\n"
                                     "SELECT zksync_write_unlock('par' || :client_id);\n",
                                     backends, secs, ["-c %s=%s" % (RELEASE_GUC, release)])

    def advisory_parallel(self, backends, secs):
        """`backends` backends, backend k cycling on its own advisory lock."""
        return self.pgbench_parallel("SELECT pg_advisory_lock(5000 + :client_id);\n"
                                     "SELECT pg_advisory_unlock(5000 + :client_id);\n",
                                     backends, secs, [])

    def proc_parallel(self, backends, secs):
        """Cycles per second of `backends` backends, backend k cycling on its
        own lock parp<k> inside one statement (zksync_bench_loop,
        synchronous_release on): the stored procedure's use, no client
        statement per cycle.  Every backend warms up until a common start
        and counts the cycles it starts in the `secs` seconds after it; the
        CPU of the backends (all their threads) is read over the same
        seconds.  Sets self.cpu as contended() (no driver: the backends
        drive themselves)."""
        conns = [self.pg("bench-proc", [RELEASE_GUC + " = on"]) for _ in range(backends)]
        pids, counts = [], [None] * backends
        try:
            for c in conns:
                self.make_procs(c)
                cur = c.cursor()
                cur.execute("SELECT pg_backend_pid()")
                pids.append(cur.fetchone()[0])
            # each session's first call connects it to ZooKeeper: a second and
            # a half to connect them all and warm up
            start = time.time() + 1.5
            stop = start + secs

            def run(k):
                try:
                    cur = conns[k].cursor()
                    cur.execute("SELECT pg_temp.zksync_bench_loop(%s, %s, %s)", ("parp%d" % k, start, stop))
                    counts[k] = cur.fetchone()[0]
                except Exception as e:
                    counts[k] = e

            ts = [threading.Thread(target=run, args=(k,)) for k in range(backends)]
            for t in ts:
                t.start()
            time.sleep(max(0.0, start - time.time()))
            u0, busy0 = {q: thread_usage(q) for q in pids}, machine_busy()
            time.sleep(max(0.0, stop - time.time()))
            u1, busy1 = {q: thread_usage(q) for q in pids}, machine_busy()
            for t in ts:
                t.join(timeout=secs + 60)
        finally:
            for c in conns:
                c.close()
        failed = [x for x in counts if not isinstance(x, int)]
        if failed:
            raise RuntimeError("a backend's loop failed: %s" % failed[0])
        cycles = sum(counts)
        self.cpu = dict(cycles=cycles, client=sum(cpu_between(u0, u1, q) for q in pids), driver=0.0,
                        busy=busy_share(busy0, busy1))
        return cycles / secs

    def pgbench_parallel(self, script, backends, secs, options):
        """Cycles per second of `backends` backends each running `script`
        (one cycle) in a loop, driven by pgbench (prepared statements, two
        driver threads): a C client, as the floor is, so that the driver
        takes little of the machine.  pgbench runs a second of warm-up
        first; the CPU of the backends (all their threads) and of pgbench
        is read over the `secs` seconds after it, and the rate is pgbench's
        progress over the same seconds.  Sets self.cpu as contended()."""
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(script)
        os.chmod(f.name, 0o644)
        app = "bench-par-%d" % os.getpid()
        env = dict(os.environ, PGAPPNAME=app,
                   PGOPTIONS=" ".join(["-c zksync.root=%s" % self.root] + options))
        pgbench = os.path.join(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                              check=True).stdout.strip(), "pgbench")
        p = subprocess.Popen([pgbench, "-h", self.a.pg_host, "-p", str(self.a.pg_port), "-U", "postgres",
                              "-n", "-M", "prepared", "-c", str(backends), "-j", "2",
                              "-T", str(int(secs + 3)), "-P", "1", "-f", f.name, "postgres"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            time.sleep(1.5)
            conn = self.pg("bench-par-probe")
            cur = conn.cursor()
            cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,))
            pids = [r[0] for r in cur.fetchall()] + [p.pid]
            conn.close()
            if len(pids) != backends + 1:
                raise RuntimeError("pgbench has %d of its %d backends" % (len(pids) - 1, backends))
            t0 = time.time()
            u0, busy0 = {q: thread_usage(q) for q in pids}, machine_busy()
            time.sleep(secs)
            u1, busy1 = {q: thread_usage(q) for q in pids}, machine_busy()
            t1 = time.time()
            out, err = p.communicate(timeout=secs + 60)
        finally:
            if p.poll() is None:
                p.kill()
            os.unlink(f.name)
        if p.returncode != 0:
            raise RuntimeError("pgbench failed: %s" % err.strip()[-500:])
        # "progress: 3.0 s, 1234.5 tps, ..." lines cover the second before each time
        rates = [float(x) for x in re.findall(r"progress: [\d.]+ s, ([\d.]+) tps", err)]
        # pgbench started about 1.5 s before t0: its seconds 2 .. 1 + secs are the window
        window = rates[2:2 + int(secs)] or rates
        rate = statistics.mean(window)
        cycles = rate * secs
        self.cpu = dict(cycles=cycles, client=sum(cpu_between(u0, u1, q) for q in pids[:-1]),
                        driver=cpu_between(u0, u1, p.pid),
                        busy=busy_share(busy0, busy1))
        return rate

    def kazoo_contended(self, procs, secs):
        return self.contended(kazoo_worker, (self.a.zk_hosts, self.root + "/kazoo/contended"), procs, secs)

    # ---- scale: hand-off latency with N contenders queued ----
    def handoff(self, queued, reps):
        zk = self.kz()
        holder = self.pg("bench-holder")
        waiter = self.pg("bench-waiter")
        hcur, wcur = holder.cursor(), waiter.cursor()
        # through ZooKeeper: the hand-off between backends of one cluster
        # would hide how the queue's length weighs
        wcur.execute("SET zksync.local_handoff = off")
        lockdir = self.root + "/locks/scale"
        us = []
        for _ in range(reps):
            hcur.execute("SELECT zksync_write_lock('scale')")
            done = {}

            def wait():
                wcur.execute("SELECT zksync_write_lock('scale')")
                done["t"] = time.perf_counter_ns()

            t = threading.Thread(target=wait)
            t.start()
            while len(zk.get_children(lockdir)) < 2:
                time.sleep(0.002)
            # the other contenders queue behind the waiter
            fills = [zk.create_async(lockdir + "/_c_fill-__WRIT__", b"", ephemeral=True, sequence=True)
                     for _ in range(queued - 1)]
            paths = [f.get() for f in fills]
            t0 = time.perf_counter_ns()
            hcur.execute("SELECT zksync_write_unlock('scale')")
            t.join()
            us.append((done["t"] - t0) // 1000)
            wcur.execute("SELECT zksync_write_unlock('scale')")
            for f in [zk.delete_async(p) for p in paths]:
                f.get()
        zk.stop()
        holder.close()
        waiter.close()
        return us

    def barrier_release(self, waiters, reps):
        results = []
        for _ in range(reps):
            ctl = self.pg("bench-barrier")
            cur = ctl.cursor()
            cur.execute("SELECT zksync_barrier_set('release')")
            conns = [self.pg("bench-barrier-w") for _ in range(waiters)]
            ends = []
            lock = threading.Lock()

            def wait(c):
                c.cursor().execute("SELECT zksync_barrier_wait('release')")
                with lock:
                    ends.append(time.perf_counter_ns())

            ts = [threading.Thread(target=wait, args=(c,)) for c in conns]
            for t in ts:
                t.start()
            while True:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'")
                if cur.fetchone()[0] >= waiters:
                    break
                time.sleep(0.01)
            t0 = time.perf_counter_ns()
            cur.execute("SELECT zksync_barrier_unset('release')")
            for t in ts:
                t.join()
            results.append((max(ends) - t0) // 1000)
            for c in conns:
                c.close()
            ctl.close()
        return results

    def backend_cost(self, samples):
        rss, vm, first, plain = [], [], [], []
        for _ in range(samples):
            c = self.pg("bench-cost")
            cur = c.cursor()
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
            t0 = time.perf_counter_ns()
            cur.execute("SELECT 1")
            plain.append((time.perf_counter_ns() - t0) // 1000)
            cur.execute("LOAD 'zksync'")
            before = memory_kb(pid)
            t0 = time.perf_counter_ns()
            cur.execute("SELECT zksync_try_write_lock('cost')")
            first.append((time.perf_counter_ns() - t0) // 1000)
            cur.execute("SELECT zksync_write_unlock('cost')")
            time.sleep(0.2)
            after = memory_kb(pid)
            rss.append(after[0] - before[0])
            vm.append(after[1] - before[1])
            c.close()
        return statistics.median(rss), statistics.median(vm), statistics.median(first), statistics.median(plain)

    # ---- operators: every wait in view, and what deadlock detection costs ----
    def waits_scale(self, ns, runs, holders=8):
        """SELECT count(*) FROM zksync_waits() with n distinct write locks
        held, for each n in ns (ascending), `runs` timed reads after an
        untimed one, and the C client's floor of the same reads (floor.c
        read).  The locks are added to those held before by `holders`
        backends in parallel (fewer for a few names), each taking its
        share in one array call; they live under a root of their own, so
        that nothing but them is read.  Returns {n: dict(us=[...], rows=rows
        the last read returned, floor=[us], take_ms=the time to take the
        added locks, takers=backends that took them)}."""
        root = self.root + "-ops"
        conns = [connect(self.a.pg_host, self.a.pg_port, root, "bench-ops-holder",
                         ["zksync.max_holds = %d" % (max(ns) + 100)]) for _ in range(holders)]
        reader = connect(self.a.pg_host, self.a.pg_port, root, "bench-ops-reader", self.on_one)
        rcur = reader.cursor()
        out, held = {}, 0
        for n in sorted(ns):
            k = max(1, min(holders, (n - held) // 100))
            cuts = [held + (n - held) * i // k for i in range(k + 1)]
            errors = []

            def take(c, lo, hi):
                try:
                    c.cursor().execute("SELECT zksync_write_lock(ARRAY(SELECT 'op-' || i "
                                       "FROM generate_series(%s, %s) i))", (lo, hi))
                except psycopg2.Error as e:
                    errors.append(str(e).strip())

            ts = [threading.Thread(target=take, args=(conns[i], cuts[i] + 1, cuts[i + 1])) for i in range(k)]
            t0 = time.perf_counter_ns()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            take_ms = (time.perf_counter_ns() - t0) / 1e6
            if errors:
                raise RuntimeError("taking %d locks: %s" % (n - held, errors[0]))
            took, held = n - held, n
            rcur.execute("SELECT count(*) FROM zksync_waits()")
            us = []
            for _ in range(runs):
                t0 = time.perf_counter_ns()
                rcur.execute("SELECT count(*) FROM zksync_waits()")
                rows = rcur.fetchone()[0]
                us.append((time.perf_counter_ns() - t0) // 1000)
            fl = subprocess.run([self.a.floor, self.one, root + "/locks", "read", str(runs)],
                                capture_output=True, text=True, check=True).stdout.split()
            if int(fl[-1]) != n:
                raise RuntimeError("the floor read %s nodes, not the %d held" % (fl[-1], n))
            out[n] = dict(us=us, rows=rows, floor=[int(x) for x in fl[0::2]], take_ms=take_ms, took=took,
                          takers=k)
            print("  zksync_waits() with %d locks held: %s ms (floor %s ms); taking %d of them: %.0f ms"
                  % (n, " / ".join("%.1f" % (x / 1000) for x in us),
                     " / ".join("%.1f" % (x / 1000) for x in out[n]["floor"]), took, take_ms),
                  file=sys.stderr, flush=True)
        for c in conns:
            c.cursor().execute("SELECT zksync_unlock_all()")
            c.close()
        reader.close()
        return out

    def handover(self, deadlock_timeout_ms, hold_ms, reps, handoff="on"):
        """A holds 'op-handover', B (deadlock_timeout_ms, local_handoff
        `handoff`) asks for it, A releases it hold_ms after B's call began.
        Per rep: (B's whole call us, from A's unlock call to B's return us,
        the ZooKeeper requests B's session made during its call).  The
        requests are the growth of the session's last client xid (its
        request counter; pings do not count) as the servers' `cons` shows
        it, read before the call and once it is over, its background
        deletes included."""
        holder = self.pg("bench-ops-holder")
        waiter = self.pg("bench-ops-waiter", ["deadlock_timeout = '%dms'" % deadlock_timeout_ms,
                                              "zksync.local_handoff = " + handoff])
        hcur, wcur = holder.cursor(), waiter.cursor()
        wcur.execute("SELECT zksync_write_lock('op-handover')")
        wcur.execute("SELECT zksync_write_unlock('op-handover')")
        wcur.execute("SELECT session_id FROM zksync_session()")
        sid = int(wcur.fetchone()[0], 16)
        out = []
        for _ in range(reps):
            hcur.execute("SELECT zksync_write_lock('op-handover')")
            time.sleep(0.05)
            before = session_xid(self.a.zk_hosts, sid)
            got = {}

            def wait():
                got["start"] = time.perf_counter_ns()
                wcur.execute("SELECT zksync_write_lock('op-handover')")
                got["done"] = time.perf_counter_ns()

            t = threading.Thread(target=wait)
            t.start()
            while "start" not in got:
                time.sleep(0.001)
            time.sleep(max(0.0, got["start"] / 1e9 + hold_ms / 1000 - time.perf_counter_ns() / 1e9))
            t0 = time.perf_counter_ns()
            hcur.execute("SELECT zksync_write_unlock('op-handover')")
            t.join()
            time.sleep(0.2)        # the record's delete, sent in the background
            after = session_xid(self.a.zk_hosts, sid)
            wcur.execute("SELECT zksync_write_unlock('op-handover')")
            out.append(((got["done"] - got["start"]) // 1000, (got["done"] - t0) // 1000,
                        None if before is None or after is None else after - before))
        holder.close()
        waiter.close()
        return out


def connect(host, port, root, app, sets=()):
    c = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres",
                         application_name=app)
    c.autocommit = True
    cur = c.cursor()
    cur.execute("SET zksync.root = %s", (root,))
    for setting in sets:
        cur.execute("SET " + setting)
    return c


def guarded(worker, args, ready, start, secs, q):
    """Run a contention worker; a failure is reported rather than hanging
    the parent, which waits for every worker's ready and count."""
    try:
        worker(*args, ready, start, secs, q)
    except Exception as e:
        ready.put("%s: %s" % (type(e).__name__, e))
        q.put("%s: %s" % (type(e).__name__, e))


def zksync_worker(k, host, port, root, sets, name, ready, start, secs, q):
    if "%" in name:
        name = name % k
    c = connect(host, port, root, "bench-contended", sets)
    cur = c.cursor()
    cur.execute("PREPARE l AS SELECT zksync_write_lock(%s)", (name,))
    cur.execute("PREPARE u AS SELECT zksync_write_unlock(%s)", (name,))
    cur.execute("EXECUTE l")
    cur.execute("EXECUTE u")
    cur.execute("SELECT pg_backend_pid()")
    backend = cur.fetchone()[0]
    ready.put(True)
    start.wait()
    n = 0
    cpu0, own0 = cpu_seconds(backend), time.process_time()
    end = time.time() + secs
    while time.time() < end:
        cur.execute("EXECUTE l")
        cur.execute("EXECUTE u")
        n += 1
    cpu1, own1 = cpu_seconds(backend), time.process_time()
    c.close()
    q.put((n, cpu1 - cpu0, own1 - own0))


def kazoo_worker(k, hosts, path, ready, start, secs, q):
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=30)
    lock = zk.Lock(path)
    lock.acquire()
    lock.release()
    ready.put(True)
    start.wait()
    n = 0
    own0 = time.process_time()
    end = time.time() + secs
    while time.time() < end:
        lock.acquire()
        lock.release()
        n += 1
    own1 = time.process_time()
    zk.stop()
    q.put((n, own1 - own0, 0.0))


def cpu_seconds(pid):
    """CPU time of a process, all its threads (the ZooKeeper client's
    included): the scheduler's nanosecond counts (thread_usage), or else
    clock ticks."""
    threads = thread_usage(pid)
    if threads:
        return sum(ns for ns, _ in threads.values()) / 1e9
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# the threads of a backend after its own: zksync's watchdog, which drives
# the (single-threaded) ZooKeeper client while the backend does not wait
THREAD_LABELS = {1: "watchdog thread"}


def thread_usage(pid):
    """{tid: (CPU ns, context switches)} of every thread of a process."""
    out = {}
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                ns = int(f.read().split()[0])
            cs = 0
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        cs += int(line.split()[1])
            out[int(t)] = (ns, cs)
        except (OSError, ValueError, IndexError):
            pass
    return out


def cpu_lines(single, par_cpu, K):
    """The "CPU per cycle" table: one backend (medians over the rounds; the
    ratio to floor + advisory is the median of the rounds' ratios) and K
    backends or sessions, and the ratio to floor + advisory."""
    def med(k, f):
        return statistics.median(x[f] for x in single[k])

    lines = ["| CPU per cycle, us (context switches per cycle) | zksync (synchronous_release on) "
             "| C floor (pipelined, delete awaited) | advisory lock | zksync / (floor + advisory) |",
             "|---|---|---|---|---|"]
    z, f, ad = med("zksync", "cpu"), med("floor", "cpu"), med("advisory", "cpu")
    # the ratio of each round (its three runs back to back), then the median:
    # the machine's speed drifts between rounds more than within one
    per_round = sorted(zr["cpu"] / (fr["cpu"] + ar["cpu"])
                       for zr, fr, ar in zip(single["zksync"], single["floor"], single["advisory"]))
    r = statistics.median(per_round)
    lines.append("| 1 backend / 1 session (median of %d rounds) | %.0f (%.1f) | %.0f (%.1f) | %.0f (%.1f) | %.2f |"
                 % (len(single["zksync"]), z, med("zksync", "cs"), f, med("floor", "cs"), ad,
                    med("advisory", "cs"), r))
    zp = med("zksync-proc", "cpu")
    proc_round = statistics.median(pr["cpu"] / fr["cpu"] for pr, fr in zip(single["zksync-proc"], single["floor"]))
    lines.append("| 1 backend, the cycles inside a procedure (zksync / floor) | %.0f (%.1f) | %.0f (%.1f) | - | %.2f |"
                 % (zp, med("zksync-proc", "cs"), f, med("floor", "cs"), proc_round))
    ratios = {"single": r, "single-proc": proc_round}
    if par_cpu:
        per = {k: 1e6 * sum(c["client"] for c in par_cpu[k]) / max(1, sum(c["cycles"] for c in par_cpu[k]))
               for k in ("zksync-on", "zksync-proc-on", "floor-pipelined", "advisory")}
        lines.append("| %d backends / %d sessions, each its own lock (all runs) | %.0f | %.0f | %.0f | %.2f |"
                     % (K, K, per["zksync-on"], per["floor-pipelined"], per["advisory"],
                        per["zksync-on"] / (per["floor-pipelined"] + per["advisory"])))
        lines.append("| %d backends, the cycles inside a procedure (zksync / floor) | %.0f | %.0f | - | %.2f |"
                     % (K, per["zksync-proc-on"], per["floor-pipelined"],
                        per["zksync-proc-on"] / per["floor-pipelined"]))
        ratios["parallel"] = per["zksync-on"] / (per["floor-pipelined"] + per["advisory"])
        ratios["parallel-proc"] = per["zksync-proc-on"] / per["floor-pipelined"]
    lines.append("")
    lines.append("zksync's backend by thread, us per cycle (context switches), median of the rounds: "
                 + "; ".join("%s %.0f (%.1f)" % (label,
                                                 statistics.median(t[1] for x in single["zksync"]
                                                                   for t in x["threads"] if t[0] == label),
                                                 statistics.median(t[2] for x in single["zksync"]
                                                                   for t in x["threads"] if t[0] == label))
                             for label in [t[0] for t in single["zksync"][0]["threads"]])
                 + ". Inside a procedure: a PL/pgSQL loop in the backend calls the lock and the unlock "
                   "(PERFORM), no client statement per cycle (the stored procedure's use). "
                   "The backend's CPU counts all its threads (the SQL of both statements included); "
                   "the floor's, its whole process; the driver's is not counted. The one-backend ratio is "
                   "the median of the rounds' own ratios (%s)." % ", ".join("%.2f" % x for x in per_round))
    return lines, ratios


def machine_busy():
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])
    return total - v[3] - v[4], total


def busy_share(busy0, busy1):
    """The machine's busy share between two machine_busy() readings."""
    return (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])


def cpu_between(u0, u1, pid):
    """CPU seconds of process `pid` (its threads seen in both) between two
    snapshots {pid: thread_usage(pid)}."""
    return sum(u1[pid][t][0] - u0[pid][t][0] for t in u1.get(pid, {}) if t in u0.get(pid, {})) / 1e9


def memory_kb(pid):
    """(RssAnon, VmRSS) of a process.  RssAnon is the memory private to it:
    what it adds to the machine.  VmRSS also counts shared pages it merely
    touched (the library, shared buffers, zksync's shared slots)."""
    got = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("RssAnon", "VmRSS"):
                got[key] = int(line.split()[1])
    return got.get("RssAnon", 0), got.get("VmRSS", 0)


def session_xid(hosts, sid):
    """The last client xid of ZooKeeper session `sid` (an int) on whichever
    server of `hosts` it is connected to, from the four-letter word cons;
    None if no server lists it.  The C client numbers its requests one by
    one (pings and other special requests use negative xids, which the
    server does not record here)."""
    for hp in hosts.split(","):
        host, port = hp.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(b"cons")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            continue
        for m in re.finditer(r"sid=0x([0-9a-f]+),.*?lcxid=0x([0-9a-f]+)", data.decode(errors="replace")):
            if int(m.group(1), 16) == sid:
                return int(m.group(2), 16)
    return None


def check_cluster(a):
    """The cluster's zksync must know RELEASE_GUC (the contenders set it),
    and the cluster must take the most connections a phase opens at once."""
    c = connect(a.pg_host, a.pg_port, "/zksync-bench", "bench-check")
    cur = c.cursor()
    cur.execute("LOAD 'zksync'")
    cur.execute("SELECT count(*) FROM pg_settings WHERE name = %s", (RELEASE_GUC,))
    have = cur.fetchone()[0] > 0
    cur.execute("SHOW max_connections")
    most = int(cur.fetchone()[0])
    cur.execute("SELECT count(*) FROM pg_proc WHERE proname = 'zksync_xact_write_lock' "
                "AND proargtypes[0] = 'text[]'::regtype")
    multi = cur.fetchone()[0] > 0
    cur.execute("SELECT current_setting('zksync.max_holds', true)")
    holds = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM pg_proc WHERE proname IN ('zksync_waits', 'zksync_blocking')")
    views = cur.fetchone()[0] == 2
    c.close()
    if not have:
        sys.exit("bench.py: the cluster's zksync has no %s: install the current build "
                 "and restart the cluster" % RELEASE_GUC)
    if not multi:
        sys.exit("bench.py: the cluster's zksync has no multi-locks (zksync_xact_write_lock(text[])): "
                 "install the current build and run ALTER EXTENSION or recreate the extension")
    if not views:
        sys.exit("bench.py: the cluster's zksync has no zksync_waits() and zksync_blocking(): "
                 "install the current build and recreate the extension")
    if holds is not None and int(holds) < a.bulk_names:
        sys.exit("bench.py: zksync.max_holds = %s, the bulk phase holds %d names"
                 % (holds, a.bulk_names))
    need = max(a.sessions, 101) + 5      # the barrier phase opens 101
    if most < need:
        sys.exit("bench.py: the cluster has max_connections = %d, the benchmark needs %d" % (most, need))


# the operators phase: locks held while zksync_waits() reads them all
OPS_LOCKS = (10, 1000, 10000)
# its waits: (label, deadlock_timeout ms, hold ms, local_handoff), each
# past deadlock_timeout beside one as long that ends before it
OPS_WAITS = (
    ("deadlock_timeout = 1 s, hold 200 ms (no detection)", 1000, 200, "on"),
    ("the same, local_handoff off (the grant from ZooKeeper)", 1000, 200, "off"),
    ("deadlock_timeout = 50 ms, hold 200 ms (published, one scan)", 50, 200, "on"),
    ("the same, local_handoff off", 50, 200, "off"),
    ("deadlock_timeout = 10 s, hold 2200 ms (no detection)", 10000, 2200, "on"),
    ("deadlock_timeout = 50 ms, hold 2200 ms (published, four scans)", 50, 2200, "on"),
)


def operators(b, a):
    """Run the operators phase: (waits, handovers, runs)."""
    quick = a.rounds <= 2
    runs = a.ops_runs or (3 if quick else 5)
    reps = a.ops_reps or (4 if quick else 10)
    print("== operators: zksync_waits() with %s locks held, %d runs each"
          % (", ".join(str(n) for n in OPS_LOCKS), runs), file=sys.stderr)
    waits = b.waits_scale(OPS_LOCKS, runs)
    print("== operators: hand-over within and past deadlock_timeout, %d runs each" % reps, file=sys.stderr)
    hand = {}
    for w in OPS_WAITS:
        hand[w] = b.handover(w[1], w[2], (2 if quick else 3) if w[2] > 1000 else reps, w[3])
    return waits, hand, runs


def operators_lines(waits, hand, runs):
    """The operators tables, and their rows of the ratio table."""
    lines, ratios = [], []
    lines.append("| locks held | rows read | zksync_waits() median ms (%d runs) | each run ms | per lock us "
                 "| floor: C client, the same reads, median ms | zksync / floor | taking the added locks ms |"
                 % runs)
    lines.append("|---|---|---|---|---|---|---|---|")
    for n in OPS_LOCKS:
        w = waits[n]
        med = statistics.median(w["us"])
        fmed = statistics.median(w["floor"])
        lines.append("| %d | %d | %.1f | %s | %.1f | %.1f | %.2f | %.0f (%d names, %d backend%s) |"
                     % (n, w["rows"], med / 1000, " / ".join("%.1f" % (x / 1000) for x in w["us"]),
                        med / n, fmed / 1000, med / fmed, w["take_ms"], w["took"], w["takers"],
                        "" if w["takers"] == 1 else "s"))
    lines.append("")
    lines.append("SELECT count(*) FROM zksync_waits() from another backend of the cluster, under a root that "
                 "holds nothing else; each set of runs follows an untimed one. The floor (bench/floor.c read) "
                 "lists the lock directories, then each directory, all sent at once, and gets every node as "
                 "its listing comes in: what zksync_waits() asks of ZooKeeper (one listing and one read per "
                 "lock). The locks are write locks on names never used before, taken by backends in "
                 "parallel, one array call each, adding to those held for the row before.")
    lines.append("")
    lines.append("| a wait that is not a deadlock: A holds, B waits, A releases | runs | B's wait median ms "
                 "| B's wait - hold, median ms | A's unlock to B's grant, median ms (worst) "
                 "| B's ZooKeeper requests during its call (median) |")
    lines.append("|---|---|---|---|---|---|")
    med = {}
    for w in OPS_WAITS:
        v = hand[w]
        total = statistics.median(x[0] for x in v) / 1000
        grant = statistics.median(x[1] for x in v) / 1000
        reqs = [x[2] for x in v if x[2] is not None]
        med[w] = dict(total=total, grant=grant, reqs=statistics.median(reqs) if reqs else float("nan"))
        lines.append("| %s | %d | %.1f | %.1f | %.2f (%.2f) | %s |"
                     % (w[0], len(v), total, total - w[2], grant, max(x[1] for x in v) / 1000,
                        "%g" % med[w]["reqs"] if reqs else "-"))
    lines.append("")
    base, one, long_base, four = (med[OPS_WAITS[i]] for i in (0, 2, 4, 5))
    lines.append("Both backends in one cluster, on one lock; B's wait is its whole call, from before its "
                 "create to its return. Nothing happens before deadlock_timeout; at it, the wait publishes "
                 "itself under {root}/waits and scans, then scans again 200 ms later and at doubling "
                 "intervals up to max(deadlock_timeout, 1 s). Requests: the growth of B's session's last client xid on its server (cons), pings "
                 "not counted, the wait record's delete included. The first scan added %g requests, each "
                 "further scan %g."
                 % (one["reqs"] - base["reqs"], (four["reqs"] - one["reqs"]) / 3))
    lines.append("")
    n = OPS_LOCKS[-1]
    ratios.append(ratio_row("zksync_waits() with %d locks held, ms (%d locks in under 1 s)" % (n, n),
                            statistics.median(waits[n]["us"]) / 1000, "%.0f", "<= 1000",
                            "median of %d runs, %d rows" % (runs, waits[n]["rows"])))
    ratios.append(ratio_row("hold 200 ms, A's unlock to B's grant: B past deadlock_timeout (50 ms, one scan) "
                            "/ within it (1 s)", one["grant"] / base["grant"], "%.2f", "(no target)",
                            "medians %.2f / %.2f ms" % (one["grant"], base["grant"])))
    ratios.append(ratio_row("hold 2200 ms, A's unlock to B's grant: B past deadlock_timeout (50 ms, four "
                            "scans) / within it (10 s)", four["grant"] / long_base["grant"], "%.2f",
                            "(no target)", "medians %.2f / %.2f ms" % (four["grant"], long_base["grant"])))
    return lines, ratios


def uncontended_lines(b):
    """The uncontended phase alone (--only uncontended): each contender's
    cycle time, and zksync's against the floor that awaits its delete."""
    s = {k: summary(v) for k, v in b.lat.items()}
    lines = ["| contender | cycles | median ms | p99 ms |", "|---|---|---|---|"]
    for k in sorted(s):
        lines.append("| %s | %d | %.3f | %.3f |" % (k, s[k]["n"], s[k]["median"] / 1000, s[k]["p99"] / 1000))
    lines += ["", "| ratio | value | target | met | from |", "|---|---|---|---|---|"]
    med = {k: s[k]["median"] / 1000 for k in s}
    for k, target in (("zksync", "<= 1.10"), ("zksync-proc", "<= 1.10"), ("zksync-python", "(no target)"),
                      ("zksync-xact", "(no target)")):
        lines.append(cycle_ratio_row(med, "%s / floor-pipelined cycle time" % k, k, "floor-pipelined",
                                     "%.3f", target))
    return lines


def cycle_ratio_row(med, name, a, b, fmt, target):
    """A ratio row of contenders a and b's median cycle times (med: ms)."""
    return ratio_row(name, med[a] / med[b], fmt, target, "medians %.3f / %.3f ms" % (med[a], med[b]))


def ratio_row(name, value, fmt, target, source):
    """One row of the ratio table.  target: "<= X", ">= X", or a note in
    parentheses for none; met is judged on the value as printed."""
    shown = fmt % value
    if target.startswith("<= "):
        met = "yes" if float(shown) <= float(target[3:]) else "NO"
    elif target.startswith(">= "):
        met = "yes" if float(shown) >= float(target[3:]) else "NO"
    else:
        met = "-"
    return "| %s | %s | %s | %s | %s |" % (name, shown, target, met, source)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-host", required=True)
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--zk-hosts", required=True)
    ap.add_argument("--floor", required=True)
    ap.add_argument("--sqlcycle", required=True, help="bench/sqlcycle.c, built")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--cycles", type=int, default=250)
    ap.add_argument("--contention-secs", type=float, default=8)
    ap.add_argument("--sessions", type=int, default=64,
                    help="backends (and C-client sessions) each on its own lock")
    ap.add_argument("--bulk-names", type=int, default=1000,
                    help="names locked in one transaction in the bulk phase")
    ap.add_argument("--bulk-runs", type=int, default=0,
                    help="timed runs of each bulk form (default: rounds / 2, at least 1)")
    ap.add_argument("--ops-runs", type=int, default=0,
                    help="timed zksync_waits() reads for each number of locks held "
                         "(default 5, 3 with 2 rounds or fewer)")
    ap.add_argument("--ops-reps", type=int, default=0,
                    help="runs of each hand-over of the operators phase (default 10, 4 with 2 rounds or fewer)")
    ap.add_argument("--cpu-cycles", type=int, default=0,
                    help="cycles of each round of the CPU-per-cycle phase (default 1500, 300 with 2 rounds or fewer)")
    ap.add_argument("--only", choices=["operators", "uncontended", "cpu", "bulk", "parallel"],
                    help="run only this phase and print its tables (OUT/results.md is left alone)")
    ap.add_argument("--machine", default="")
    a = ap.parse_args()
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    os.makedirs(a.out, exist_ok=True)
    check_cluster(a)
    b = Bench(a)
    t_start = time.time()
    load_start = os.getloadavg()[0]
    if a.only == "operators":
        ops_lines, ops_ratios = operators_lines(*operators(b, a))
        print("\n".join(ops_lines + ["| ratio | value | target | met | from |", "|---|---|---|---|---|"]
                        + ops_ratios))
        return

    if a.only == "bulk":
        runs = a.bulk_runs or max(1, a.rounds // 2)
        bulk, _ = b.bulk(a.bulk_names, runs)
        med = {k: statistics.median(x[0] for x in bulk[k]) / 1000 for k in ("array", "floor")}
        print("%d-name array call / its C-client floor: %.2f (medians %.1f / %.1f ms; array runs %s)"
              % (a.bulk_names, med["array"] / med["floor"], med["array"], med["floor"],
                 " / ".join("%.1f (%s made again)" % (x[0] / 1000, x[2]) for x in bulk["array"])))
        return

    if a.only == "parallel":
        K = a.sessions
        for name, fn in (("zksync-on", lambda: b.zksync_parallel(K, a.contention_secs, "on")),
                         ("floor-pipelined", lambda: b.floor_parallel("pipelined", K, a.contention_secs)),
                         ("zksync-proc-on", lambda: b.proc_parallel(K, a.contention_secs)),
                         ("advisory", lambda: b.advisory_parallel(K, a.contention_secs))):
            rate = fn()
            print("%s, %d sessions: %.0f cycles/s, lock client's CPU %.0f us per cycle, machine busy %.0f%%"
                  % (name, K, rate, 1e6 * b.cpu["client"] / max(1, b.cpu["cycles"]), 100 * b.cpu["busy"]))
        return

    cpu_n = a.cpu_cycles or (300 if a.rounds <= 2 else 1500)
    cpu_rounds = 3 if a.rounds <= 2 else 7
    print("== CPU per cycle, one backend: %d rounds x %d cycles" % (cpu_rounds, cpu_n), file=sys.stderr)
    single_cpu = b.cpu_single(cpu_n, cpu_rounds)
    if a.only == "cpu":
        print("\n".join(cpu_lines(single_cpu, None, 1)[0]))
        return

    print("== uncontended cycles, %d rounds x %d cycles, contenders alternated" % (a.rounds, a.cycles),
          file=sys.stderr)
    b.uncontended()
    if a.only == "uncontended":
        print("\n".join(uncontended_lines(b)))
        return
    bulk_runs = a.bulk_runs or max(1, a.rounds // 2)
    print("== bulk: %d names in one transaction, array call and loop, %d runs each"
          % (a.bulk_names, bulk_runs), file=sys.stderr)
    bulk, bulk_errors = b.bulk(a.bulk_names, bulk_runs)
    print("== contention", file=sys.stderr)
    cont = {}
    for rep in range(2):
        for n in (4, 16):
            cont.setdefault(("zksync", n), []).append(b.zksync_contended(n, a.contention_secs))
            cont.setdefault(("kazoo", n), []).append(b.kazoo_contended(n, a.contention_secs))
        cont.setdefault(("zksync-zk", 4), []).append(b.zksync_contended(4, a.contention_secs, "off"))
        cont.setdefault(("zksync-nowait", 4), []).append(
            b.zksync_contended(4, a.contention_secs, release="off"))
    K = a.sessions
    print("== %d sessions, each on its own lock" % K, file=sys.stderr)
    par, par_cpu = {}, {}
    pruns = [("zksync-on", lambda: b.zksync_parallel(K, a.contention_secs, "on")),
             ("floor-pipelined", lambda: b.floor_parallel("pipelined", K, a.contention_secs)),
             ("zksync-proc-on", lambda: b.proc_parallel(K, a.contention_secs)),
             ("zksync-off", lambda: b.zksync_parallel(K, a.contention_secs, "off")),
             ("floor-nowait", lambda: b.floor_parallel("nowait", K, a.contention_secs)),
             ("advisory", lambda: b.advisory_parallel(K, a.contention_secs))]
    for rep in range(2):
        for name, fn in (pruns if rep % 2 == 0 else pruns[::-1]):
            par.setdefault(name, []).append(fn())
            par_cpu.setdefault(name, []).append(b.cpu)
    print("== scale: hand-off with 1, 100, 1000 queued", file=sys.stderr)
    scale = {n: b.handoff(n, 15) for n in (1, 100, 1000)}
    print("== barrier release of 100 waiting backends", file=sys.stderr)
    barrier = b.barrier_release(100, 3)
    rss_kb, vm_kb, first_us, plain_us = b.backend_cost(5)
    ops_lines, ops_ratios = operators_lines(*operators(b, a))
    print("== done in %.0f s" % (time.time() - t_start), file=sys.stderr)
    load_end = os.getloadavg()[0]

    s = {k: summary(v) for k, v in b.lat.items()}
    lines = []
    lines.append("| contender | cycles | cycles/s | median ms | p99 ms | worst ms |")
    lines.append("|---|---|---|---|---|---|")
    for k in ("floor-sync", "floor-pipelined", "floor-nowait", "zksync", "zksync-proc", "zksync-python",
              "zksync-nowait", "zksync-xact", "zksync-multi3", "zksync-3singles", "floor-multi3", "zksync-sem", "curator-sem", "kazoo",
              "advisory"):
        v = s[k]
        lines.append("| %s | %d | %.0f | %.3f | %.3f | %.3f |"
                     % (k, v["n"], v["rate"], v["median"] / 1000, v["p99"] / 1000, v["worst"] / 1000))
    lines.append("")
    lines.append("The SQL contenders are driven by bench/sqlcycle.c (C, libpq, prepared statements, one "
                 "connection each, kept across the rounds); zksync-python: the zksync cycle driven from Python "
                 "(psycopg2) instead, what such a driver adds. "
                 "zksync: synchronous_release on (the unlock awaits the delete); zksync-nowait: off. "
                 "floor-pipelined awaits its delete; floor-nowait sends it and goes on. "
                 "zksync-multi3: one cycle locks and unlocks the names m1, m2, m3 by one array call each; "
                 "zksync-3singles: six single calls (lock m1, m2, m3, unlock m1, m2, m3); both "
                 "synchronous_release on, in zksync's backend. floor-multi3: the C client's 3 creates in one "
                 "multi with the 3 listings pipelined, then the 3 deletes in one multi, awaited. "
                 "zksync-sem: zksync_semaphore_acquire('bs', 3) then zksync_semaphore_release('bs'), "
                 "synchronous_release on; curator-sem: Curator's InterProcessSemaphoreV2 (3 leases), "
                 "acquire() then returnLease(), in one warm JVM; neither has another lease holder.")
    lines.append("")
    N = a.bulk_names
    bmed = {k: {f: statistics.median(x[i] for x in bulk[k]) / 1000 if bulk.get(k) else float("nan")
                for i, f in enumerate(("lock", "commit"))}
            for k in ("array", "loop", "floor")}
    lines.append("| %d names in one transaction, used before (median of %d run%s) | calls | ms per call "
                 "| all calls ms (each run) | COMMIT (release) ms | directories made again | failed attempts |"
                 % (N, bulk_runs, "" if bulk_runs == 1 else "s"))
    lines.append("|---|---|---|---|---|---|---|")
    blabel = {"array": ("zksync_xact_write_lock(text[]) of the %d names" % N, "1"),
              "loop": ("zksync_xact_write_lock(text), a loop of %d calls from the client" % N, "%d" % N),
              "floor": ("floor: C client, %d creates (multis of 500) and %d listings pipelined" % (N, N),
                        "-")}
    for k in ("array", "loop", "floor"):
        lab, calls = blabel[k]
        lines.append("| %s | %s | %s | %.1f (%s) | %.1f | %s | %s |"
                     % (lab, calls, "%.3f" % (bmed[k]["lock"] / int(calls)) if calls != "-" else "-",
                        bmed[k]["lock"], " / ".join("%.1f" % (x[0] / 1000) for x in bulk.get(k, [])),
                        bmed[k]["commit"],
                        " / ".join("-" if x[2] is None else "%d" % x[2] for x in bulk.get(k, [])),
                        "-" if k == "floor" else len(bulk_errors.get(k, []))))
    lines.append("")
    lines.append("Names row-1 .. row-%d, synchronous_release on; each timed run follows an untimed run "
                 "of the same form at once, the untimed run after any reaper pass that the previous "
                 "run's COMMIT started. Directories made again: lock directories (containers) "
                 "that the server reaped between the two runs or during the timed one, out of %d. "
                 "The floor's release: the %d deletes in multis, awaited. A failed attempt (its untimed "
                 "or timed run ended in an ERROR) is rolled back and made again, up to %d times a run."
                 % (N, N, N, BULK_ATTEMPTS))
    for k in ("array", "loop"):
        for e in sorted(set(bulk_errors.get(k, []))):
            lines.append("")
            lines.append("ERROR in the %s form (%d of its attempts): %s"
                         % (k, bulk_errors[k].count(e), e))
    lines.append("")
    lines.append("| contention (one lock) | cycles/s (2 runs) |")
    lines.append("|---|---|")
    label = {"zksync": "zksync, %d backends",
             "zksync-zk": "zksync, %d backends, local_handoff off (every grant from ZooKeeper)",
             "zksync-nowait": "zksync, %d backends, synchronous_release off",
             "kazoo": "kazoo, %d processes"}
    for k in (("zksync", 4), ("zksync-zk", 4), ("zksync-nowait", 4), ("kazoo", 4), ("zksync", 16),
              ("kazoo", 16)):
        lines.append("| %s | %s |" % (label[k[0]] % k[1], " / ".join("%.0f" % x for x in cont[k])))
    lines.append("")
    lines.append("On one lock, the backends run with synchronous_release on in every row but the one "
                 "that says it is off.")
    lines.append("")
    lines.append("| %d sessions, each cycling its own lock | aggregate cycles/s (2 runs) "
                 "| lock client's CPU per cycle, us | machine CPU busy |" % K)
    lines.append("|---|---|---|---|")
    plabel = {"zksync-on": "zksync, %d backends, synchronous_release on" % K,
              "floor-pipelined": "floor, %d C-client sessions, delete awaited (pipelined)" % K,
              "zksync-proc-on": "zksync, %d backends, the cycles inside a procedure, synchronous_release on" % K,
              "zksync-off": "zksync, %d backends, synchronous_release off" % K,
              "floor-nowait": "floor, %d C-client sessions, delete not awaited (nowait)" % K,
              "advisory": "advisory lock, %d backends, each its own key" % K}
    for k in ("zksync-on", "zksync-proc-on", "floor-pipelined", "zksync-off", "floor-nowait", "advisory"):
        cycles = sum(c["cycles"] for c in par_cpu[k])
        lines.append("| %s | %s | %.0f | %.0f%% |"
                     % (plabel[k], " / ".join("%.0f" % x for x in par[k]),
                        1e6 * sum(c["client"] for c in par_cpu[k]) / max(1, cycles),
                        100 * statistics.mean(c["busy"] for c in par_cpu[k])))
    driver = sum(c["driver"] for k in ("zksync-on", "zksync-off") for c in par_cpu[k])
    lines.append("")
    lines.append("Lock client: the backends (all their threads), the floor's process. The backends are "
                 "driven by pgbench (C, prepared statements, 2 threads), which adds %.0f us per cycle "
                 "to zksync's, except inside a procedure: there each backend runs a PL/pgSQL loop of "
                 "lock and unlock calls for the whole window, one statement, and nothing drives it; "
                 "machine CPU: all %d cores, anything running."
                 % (1e6 * driver / max(1, sum(c["cycles"] for k in ("zksync-on", "zksync-off")
                                               for c in par_cpu[k])), os.cpu_count()))
    lines.append("")
    lines.append("| contenders queued (hand-off through ZooKeeper) | hand-off median ms | p99 ms |")
    lines.append("|---|---|---|")
    for n, v in scale.items():
        lines.append("| %d | %.3f | %.3f |" % (n, statistics.median(v) / 1000, pct(v, 0.99) / 1000))
    lines.append("")
    lines.append("barrier release of 100 waiting backends (unset to last return): %s ms"
                 % " / ".join("%.1f" % (x / 1000) for x in barrier))
    lines.append("per backend: first call (connect) %.1f ms (a plain SELECT 1: %.2f ms), "
                 "memory added by a session: private (RssAnon) %d kB, VmRSS %d kB"
                 % (first_us / 1000, plain_us / 1000, rss_kb, vm_kb))
    lines.append("")
    clines, cratios = cpu_lines(single_cpu, par_cpu, K)
    lines.extend(clines)
    lines.append("")
    lines.extend(ops_lines)

    med = {k: s[k]["median"] / 1000 for k in s}
    c4 = {k: statistics.median(cont[(k, 4)]) for k in ("zksync", "zksync-zk", "zksync-nowait", "kazoo")}
    pm = {k: statistics.median(v) for k, v in par.items()}
    r_kazoo = s["zksync"]["rate"] / s["kazoo"]["rate"]
    r_cont = c4["zksync"] / c4["kazoo"]
    r_par_on = pm["zksync-on"] / pm["floor-pipelined"]
    r_par_proc = pm["zksync-proc-on"] / pm["floor-pipelined"]
    r_par_off = pm["zksync-off"] / pm["floor-nowait"]
    r_scale = statistics.median(scale[1000]) / statistics.median(scale[1])
    r_bulk = bmed["array"]["lock"] / med["zksync"]
    lines.append("| ratio | value | target | met | from |")
    lines.append("|---|---|---|---|---|")
    for name, num, den, fmt, target in (
            ("zksync (synchronous_release on) / floor-pipelined cycle time",
             "zksync", "floor-pipelined", "%.3f", "<= 1.10"),
            ("zksync inside a procedure (synchronous_release on) / floor-pipelined cycle time",
             "zksync-proc", "floor-pipelined", "%.3f", "<= 1.10"),
            ("zksync driven from Python (psycopg2) / floor-pipelined cycle time",
             "zksync-python", "floor-pipelined", "%.3f", "(no target)"),
            ("zksync-nowait (synchronous_release off) / floor-nowait cycle time",
             "zksync-nowait", "floor-nowait", "%.3f", "<= 1.05"),
            ("zksync 3-name multi-lock cycle / one single-lock cycle time",
             "zksync-multi3", "zksync", "%.2f", "<= 1.3"),
            ("floor: 3-name multi cycle / single cycle (floor-multi3 / floor-pipelined)",
             "floor-multi3", "floor-pipelined", "%.2f", "(no target)"),
            ("zksync 3-name multi-lock cycle / 3 single-lock cycles in a row",
             "zksync-multi3", "zksync-3singles", "%.2f", "(no target)")):
        lines.append(cycle_ratio_row(med, name, num, den, fmt, target))
    lines.append(ratio_row("%d-name array call (names used before) / one single-lock cycle time" % N,
                           r_bulk, "%.1f", "<= 5", "medians %.3f / %.3f ms"
                           % (bmed["array"]["lock"], med["zksync"])))
    fc = statistics.median(b.floor_creates) / 1000 if b.floor_creates else float("nan")
    lines.append(ratio_row("floor: %d creates alone in multis, no listing (nothing known of the grant) "
                           "/ one single-lock floor cycle" % N,
                           fc / med["floor-pipelined"], "%.1f", "(no target)",
                           "medians %.1f / %.3f ms" % (fc, med["floor-pipelined"])))
    lines.append(ratio_row("%d-name array call / the floor's %d creates alone" % (N, N),
                           bmed["array"]["lock"] / fc, "%.1f", "(no target)",
                           "medians %.1f / %.1f ms" % (bmed["array"]["lock"], fc)))
    lines.append(ratio_row("%d-name array call / its C-client floor (names used before)" % N,
                           bmed["array"]["lock"] / bmed["floor"]["lock"], "%.1f", "<= 1.5",
                           "medians %.1f / %.1f ms" % (bmed["array"]["lock"], bmed["floor"]["lock"])))
    lines.append(ratio_row("COMMIT releasing %d names / the floor's release" % N,
                           bmed["array"]["commit"] / bmed["floor"]["commit"], "%.1f", "(no target)",
                           "medians %.1f / %.1f ms" % (bmed["array"]["commit"], bmed["floor"]["commit"])))
    lines.append(ratio_row("loop of %d single calls / one %d-name array call" % (N, N),
                           bmed["loop"]["lock"] / bmed["array"]["lock"], "%.1f", "(no target)",
                           "medians %.1f / %.1f ms" % (bmed["loop"]["lock"], bmed["array"]["lock"])))
    lines.append(ratio_row("zksync (synchronous_release on) / kazoo uncontended rate", r_kazoo, "%.2f",
                           ">= 1.8", "%.0f / %.0f cycles/s"
                           % (s["zksync"]["rate"], s["kazoo"]["rate"])))
    lines.append(ratio_row("zksync semaphore / Curator semaphore rate",
                           s["zksync-sem"]["rate"] / s["curator-sem"]["rate"], "%.2f", ">= 1.5",
                           "%.0f / %.0f cycles/s" % (s["zksync-sem"]["rate"], s["curator-sem"]["rate"])))
    lines.append(ratio_row("zksync 4 backends / kazoo 4 processes (one lock)", r_cont, "%.2f",
                           ">= 3", "%.0f / %.0f cycles/s" % (c4["zksync"], c4["kazoo"])))
    lines.append(ratio_row("zksync 4 backends, local_handoff off / kazoo 4 processes",
                           c4["zksync-zk"] / c4["kazoo"], "%.2f", "(no target)",
                           "%.0f / %.0f cycles/s" % (c4["zksync-zk"], c4["kazoo"])))
    lines.append(ratio_row("zksync 4 backends, synchronous_release off / kazoo 4 processes",
                           c4["zksync-nowait"] / c4["kazoo"], "%.2f", "(no target)",
                           "%.0f / %.0f cycles/s" % (c4["zksync-nowait"], c4["kazoo"])))
    lines.append(ratio_row("zksync %d backends / floor %d sessions, own locks, synchronous_release on "
                           "/ pipelined" % (K, K), r_par_on, "%.3f", ">= 0.8",
                           "%.0f / %.0f cycles/s" % (pm["zksync-on"], pm["floor-pipelined"])))
    lines.append(ratio_row("zksync %d backends, the cycles inside a procedure / floor %d sessions, own locks, "
                           "synchronous_release on / pipelined" % (K, K), r_par_proc, "%.3f", ">= 0.8",
                           "%.0f / %.0f cycles/s" % (pm["zksync-proc-on"], pm["floor-pipelined"])))
    lines.append(ratio_row("zksync %d backends / floor %d sessions, own locks, synchronous_release off "
                           "/ nowait" % (K, K), r_par_off, "%.3f", ">= 0.9",
                           "%.0f / %.0f cycles/s" % (pm["zksync-off"], pm["floor-nowait"])))
    lines.append(ratio_row("zksync CPU per cycle / (C floor + advisory lock), 1 backend", cratios["single"],
                           "%.2f", "<= 1.3", "the CPU per cycle table"))
    lines.append(ratio_row("zksync CPU per cycle / (C floor + advisory lock), %d backends" % K,
                           cratios["parallel"], "%.2f", "(no target)", "the CPU per cycle table"))
    lines.append(ratio_row("zksync CPU per cycle inside a procedure / C floor, 1 backend",
                           cratios["single-proc"], "%.2f", "(no target)", "the CPU per cycle table"))
    lines.append(ratio_row("zksync CPU per cycle inside a procedure / C floor, %d backends" % K,
                           cratios["parallel-proc"], "%.2f", "(no target)", "the CPU per cycle table"))
    lines.append(ratio_row("hand-off with 1000 queued / with 1", r_scale, "%.2f", "<= 3",
                           "medians %.3f / %.3f ms" % (statistics.median(scale[1000]) / 1000,
                                                       statistics.median(scale[1]) / 1000)))
    lines.extend(ops_ratios)
    lines.append(ratio_row("zksync / advisory lock cycle time", med["zksync"] / med["advisory"], "%.0f",
                           "(local reference)",
                           "medians %.3f / %.3f ms" % (med["zksync"], med["advisory"])))
    text = "\n".join(lines)
    text = ("Run: %.0f s; load average (1 min) at the start %.1f, at the end %.1f (anything else "
            "running on the machine shows here).\n\n" % (time.time() - t_start, load_start, load_end)) + text
    if a.machine:
        text = a.machine + "\n" + text
    print(text)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(text + "\n")

    # latency distributions (CDF) for the plot
    names = ["floor-sync", "floor-pipelined", "floor-nowait", "zksync", "zksync-proc", "zksync-nowait",
             "zksync-xact", "zksync-multi3", "kazoo"]
    with open(os.path.join(a.out, "latency.dat"), "w") as f:
        for k in names:
            v = sorted(b.lat[k])
            f.write("# %s\n" % k)
            for i, x in enumerate(v):
                f.write("%.3f %.5f\n" % (x / 1000, (i + 1) / len(v)))
            f.write("\n\n")
    plot = os.path.join(a.out, "latency.png")
    gp = ("set terminal png size 900,560; set output '%s'; set logscale x; set grid;"
          "set xlabel 'cycle time, ms (log scale)'; set ylabel 'fraction of cycles';"
          "set key bottom right; set title 'Uncontended lock cycle: latency distribution';"
          "plot " % plot + ", ".join("'%s' index %d with lines lw 2 lc rgb '%s' title '%s'"
                                      % (os.path.join(a.out, "latency.dat"), i, PLOT_COLOURS[i], k)
                                      for i, k in enumerate(names)))
    subprocess.run(["gnuplot", "-e", gp], check=False)


if __name__ == "__main__":
    main()
