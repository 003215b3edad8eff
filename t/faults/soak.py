"""Randomized soak for zksync: three kinds of client queue on one lock while
faults are injected at random; an independent witness checks the history.

Run by faults.py (test_soak, a short run in CI) and by scripts/soak.sh (a
long one).  It uses faults.py's harness: clusters A (user postgres) and B
(user zksync_cut, which h.cut() cuts off from the ensemble), the kazoo
client h.zk, h.zkctl for the ensemble.

Contenders of {root}/locks/soak:
  - zksync workers on A and B, hand-off on for some and off for others;
    each cycle: BEGIN; zksync_xact_write_lock('soak'); token and node;
    t_in; a short pg_sleep; t_out; COMMIT.  A hold counts only if its
    COMMIT succeeded.
  - a kazoo WriteLock with extra_lock_patterns ["__WRIT__", "__READ__"]
    (see KazooWriteLock for its node name); a hold counts only if the
    connection was not suspended or lost from the start of the acquire to
    the end of the hold.
  - Apache Curator's InterProcessReadWriteLock write lock, in a JVM
    (t/curator/ZkSyncCuratorLock.java, compiled here); the same rule.

Faults, one at a time with random gaps: kill -9 of the leader and restart,
freeze (SIGSTOP) of a follower, cut of cluster B (short, and longer than
the session timeout), TCP resets on B, kill -STOP of a waiting zksync
backend and of a holding one past the session timeout.  Throughout, a
careless neighbour (a kazoo client) deletes the node of a zksync worker
that holds the lock, every 0.5 to 3 s.

Witness (every time is CLOCK_MONOTONIC: Python's monotonic_ns and Java's
nanoTime; t_in is taken after the grant returned and t_out before the
release was sent, so each interval lies inside the real hold):
  - double grants: valid intervals that overlap;
  - stale tokens: valid zksync intervals, in time order, whose fencing
    token does not grow;
  - commits under a lost lock: a COMMIT that succeeded although the
    worker's node was gone from ZooKeeper (its session expired or was
    closed) when the COMMIT was sent (read with kazoo, after a sync);
  - orphans: ephemeral nodes left under the lock once every client has
    stopped cycling while its session is still open;
  - commits after a neighbour's delete: a COMMIT that succeeded although
    the careless neighbour had deleted the worker's node (its delete
    answered) before the COMMIT was sent.
"""
import os
import random
import signal
import subprocess
import threading
import time

import psycopg2
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException
from kazoo.recipe.lock import WriteLock

LOCK = "soak"
JARS = ["curator-recipes", "curator-framework", "curator-client", "zookeeper", "zookeeper-jute",
        "guava", "slf4j-api", "slf4j-nop"]
KINDS = ["leader_kill", "follower_freeze", "cut_short", "cut_long", "reset",
         "stop_waiter", "stop_holder"]


class KazooWriteLock(WriteLock):
    """kazoo's WriteLock, its nodes tagged __WRIT__ instead of __lock__.

    Curator's read-write lock orders the children by the text after
    __WRIT__ or __READ__ and, for any other name, by the whole name: a
    stock kazoo node ("<uuid hex>__lock__<seq>") sorts by its random uuid
    there, so Curator can take the lock while a kazoo client holds it.
    zksync and kazoo order by the trailing sequence number and are not
    concerned.  With the __WRIT__ tag all three agree on the order; the
    recipe is kazoo's, unchanged."""
    _NODE_NAME = "__WRIT__"


def now():
    return time.monotonic_ns()


class Soak:
    def __init__(self, h, root, seconds, seed, workdir, session_ms=4000):
        self.h = h
        self.seconds = seconds
        self.rnd = random.Random(seed)
        self.seed = seed
        self.workdir = workdir
        self.session_ms = session_ms
        self.path = root + "/locks/" + LOCK
        self.mu = threading.Lock()
        self.intervals = []        # (t_in, t_out, who, valid, token)
        self.cycles = {"zksync": 0, "kazoo": 0, "curator": 0}
        self.invalid = {"zksync": 0, "kazoo": 0, "curator": 0}
        self.errors = {}
        self.deadlock_details = []
        self.zk_not_back = 0        # killed ZooKeeper servers that did not serve again
        self.lost_commits = []     # (who, node)
        self.deleted = {}          # node -> when the neighbour's delete was answered
        self.neighbour_commits = []  # (who, node)
        self.stop_cycles = threading.Event()
        self.workers = {}          # i -> dict(state, pid, cycles, cluster)
        self.faults = {k: 0 for k in KINDS}
        self.skipped = {k: 0 for k in KINDS}
        self.stopped_pids = set()
        self.curator = None
        self.curator_lines = []
        self.curator_stopped = threading.Event()
        self.kazoo_stopped = threading.Event()
        self.kazoo = None

    # ---------------------------------------------------------------- zksync
    def record_error(self, who, e):
        text = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        detail = getattr(getattr(e, "diag", None), "message_detail", None)
        with self.mu:
            self.errors[text] = self.errors.get(text, 0) + 1
            if "deadlock detected" in text:
                self.deadlock_details.append("%s: %s" % (who, detail))

    def node_gone(self, node):
        """True if node is certainly gone (read after a sync), False if it
        exists, None if ZooKeeper could not be asked."""
        zk = self.h.zk
        # bounded: a kazoo request can sit unanswered in a 3.8.0 server
        # (ZOOKEEPER-4537), and the worker asking holds the lock meanwhile
        try:
            if zk.exists_async(node).get(timeout=5) is not None:
                return False
            zk.sync_async(node).get(timeout=5)
            return zk.exists_async(node).get(timeout=5) is None
        except KazooException:
            return None
        except Exception:
            return None

    def zksync_worker(self, i, cluster, handoff):
        w = self.workers[i]
        app = "soak-%d" % i
        conn = None
        while not self.stop_cycles.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self.h.connect(cluster, app)
                    cur = conn.cursor()
                    cur.execute("SET zksync.local_handoff = %s" % ("on" if handoff else "off"))
                    cur.execute("SET statement_timeout = '30s'")
                    # every wait past 10 ms is scanned for deadlocks: the
                    # churn (a FIFO queue, hand-offs, faults) must never be one
                    cur.execute("SET deadlock_timeout = '10ms'")
                    cur.execute("SELECT pg_backend_pid()")
                    w["pid"] = cur.fetchone()[0]
                cur = conn.cursor()
                cur.execute("BEGIN")
                w["state"] = "waiting"
                cur.execute("SELECT zksync_xact_write_lock(%s)", (LOCK,))
                cur.execute("SELECT zksync_lock_token(%s), (SELECT node FROM zksync_locks()"
                            " WHERE name = %s AND mode = 'write' AND state = 'held')", (LOCK, LOCK))
                token, node = cur.fetchone()
                t_in = now()
                w["node"] = node
                w["state"] = "holding"
                cur.execute("SELECT pg_sleep(%s)", (self.rnd.uniform(0.0, 0.02),))
                t_out = now()
                gone = self.node_gone(node) if node else None
                w["state"] = "committing"
                committed = False
                t_commit = now()
                try:
                    cur.execute("COMMIT")
                    committed = True
                except psycopg2.Error as e:
                    self.record_error(app, e)
                w["state"] = "idle"
                w["node"] = None
                with self.mu:
                    deleted_at = self.deleted.get(node)
                    if committed and deleted_at is not None and deleted_at < t_commit:
                        self.neighbour_commits.append((app, node))
                with self.mu:
                    self.intervals.append((t_in, t_out, "zksync-%d%s" % (i, cluster), committed, token))
                    if committed:
                        self.cycles["zksync"] += 1
                        w["cycles"] += 1
                        if gone:
                            self.lost_commits.append((app, node))
                    else:
                        self.invalid["zksync"] += 1
            except psycopg2.Error as e:
                w["state"] = "idle"
                self.record_error(app, e)
                for sql in ("ROLLBACK", "SELECT zksync_unlock_all()"):
                    try:
                        if conn is not None and not conn.closed:
                            conn.cursor().execute(sql)
                    except psycopg2.Error:
                        pass
                time.sleep(0.05)
            except Exception as e:   # e.g. the cluster restarting: try again
                w["state"] = "idle"
                self.record_error(app, e)
                time.sleep(0.2)
        w["state"] = "done"
        w["conn"] = conn            # kept open: its session must stay alive for the orphan check

    # ----------------------------------------------------------------- kazoo
    def kazoo_worker(self):
        zk = KazooClient(hosts=self.h.hosts, timeout=self.session_ms / 1000.0,
                         connection_retry=self.h.kazoo_reconnect)
        suspensions = [0]

        def listener(state):
            if state in (KazooState.SUSPENDED, KazooState.LOST):
                suspensions[0] += 1

        zk.add_listener(listener)
        zk.start(timeout=30)
        self.kazoo = zk
        while not self.stop_cycles.is_set():
            lock = KazooWriteLock(zk, self.path, "soak-kazoo",
                                  extra_lock_patterns=["__WRIT__", "__READ__"])
            before = suspensions[0]
            try:
                got = lock.acquire(timeout=2.0)
            except Exception as e:
                self.record_error("kazoo", e)
                try:
                    lock.cancel()
                    lock.release()
                except Exception:
                    pass
                time.sleep(0.1)
                continue
            if not got:
                continue
            t_in = now()
            time.sleep(self.rnd.uniform(0.0, 0.02))
            t_out = now()
            valid = suspensions[0] == before and zk.state == KazooState.CONNECTED
            try:
                lock.release()
            except Exception as e:
                self.record_error("kazoo", e)
            with self.mu:
                self.intervals.append((t_in, t_out, "kazoo", valid, None))
                if valid:
                    self.cycles["kazoo"] += 1
                else:
                    self.invalid["kazoo"] += 1
            time.sleep(self.rnd.uniform(0.0, 0.03))
        self.kazoo_stopped.set()

    def poke_kazoo(self):
        """kazoo has no answer to ZOOKEEPER-4537 (a request that sits in a
        3.8.0 server until another request of the session arrives): send
        one cheap read on each kazoo session every 200 ms, as zksync's
        watchdog does for overdue requests, so that neither the witness nor
        the kazoo contender stalls the soak."""
        while not self.kazoo_stopped.is_set():
            for zk in (self.h.zk, self.kazoo):
                try:
                    # only while connected: kazoo queues a request made while
                    # it reconnects and writes a byte to a socket pair that
                    # nobody reads until then; pokes every 200 ms would fill
                    # it, and then block every caller of that client (a
                    # zksync worker asking node_gone() while it holds the lock)
                    if zk is not None and zk.connected:
                        zk.exists_async("/")
                except Exception:
                    pass
            time.sleep(0.2)

    # ---------------------------------------------------------------- Curator
    def start_curator(self):
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "curator",
                           "ZkSyncCuratorLock.java")
        out = os.path.join(self.workdir, "curator-classes")
        os.makedirs(out, exist_ok=True)
        cp = ":".join("/usr/share/java/%s.jar" % j for j in JARS)
        r = subprocess.run(["javac", "-nowarn", "-cp", cp, "-d", out, src],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("javac failed: " + (r.stderr or r.stdout)[-500:])
        self.curator = subprocess.Popen(
            ["java", "-Xmx128m", "-cp", out + ":" + cp, "ZkSyncCuratorLock", self.h.hosts,
             self.path, str(self.session_ms), "20", "30", str(self.seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1)
        ready = threading.Event()

        def reader():
            t_in = c_in = None
            lost = False
            for line in self.curator.stdout:
                words = line.split()
                if not words:
                    continue
                self.curator_lines.append(line.rstrip())
                if words[0] == "READY":
                    ready.set()
                elif words[0] == "IN":
                    t_in, c_in, lost = int(words[1]), words[2], False
                elif words[0] == "LOST":
                    lost = True
                elif words[0] == "OUT" and t_in is not None:
                    valid = not lost and words[2] == c_in
                    with self.mu:
                        self.intervals.append((t_in, int(words[1]), "curator", valid, None))
                        if valid:
                            self.cycles["curator"] += 1
                        else:
                            self.invalid["curator"] += 1
                    t_in = None
                elif words[0] == "ERROR":
                    self.record_error("curator", " ".join(words))
                elif words[0] == "STOPPED":
                    self.curator_stopped.set()
            ready.set()

        threading.Thread(target=reader, daemon=True).start()
        if not ready.wait(60) or self.curator.poll() is not None:
            raise RuntimeError("the Curator client did not start: %s" % self.curator_lines[-5:])

    # ---------------------------------------------------------------- faults
    def pick_pid(self, want):
        """A zksync worker backend that is `want` (waiting or holding) now."""
        if want == "waiting":
            pids = []
            for mon in self.mons.values():
                try:
                    cur = mon.cursor()
                    cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'soak-%%'"
                                " AND wait_event_type = 'Extension'")
                    pids += [r[0] for r in cur.fetchall()]
                except psycopg2.Error:
                    pass
            # mostly a waiter that may be handed the lock inside its cluster
            handoff = {w["pid"] for w in self.workers.values() if w["handoff"]}
            preferred = [p for p in pids if p in handoff]
            if preferred and self.rnd.random() < 0.75:
                pids = preferred
            return self.rnd.choice(pids) if pids else None
        pids = [w["pid"] for w in self.workers.values() if w["state"] == "holding" and w.get("pid")]
        return self.rnd.choice(pids) if pids else None

    def inject(self, kind):
        h = self.h
        r = self.rnd
        if kind == "leader_kill":
            leader = h.zkctl("leader").stdout.strip()
            if not leader:
                return False
            h.zkctl("kill1", leader)
            time.sleep(r.uniform(1.0, 2.5))
            if not h.zk_start(leader):
                self.zk_not_back += 1
        elif kind == "follower_freeze":
            leader = h.zkctl("leader").stdout.strip()
            followers = [i for i in ("1", "2", "3") if i != leader]
            if not leader:
                return False
            f = r.choice(followers)
            h.zkctl("freeze", f)
            try:
                time.sleep(r.uniform(0.5, 3.0))
            finally:
                h.zkctl("thaw", f)
        elif kind in ("cut_short", "cut_long", "reset"):
            h.cut(reset=(kind == "reset"))
            try:
                time.sleep({"cut_short": r.uniform(0.5, 2.0),
                            "cut_long": self.session_ms / 1000.0 + r.uniform(1.0, 2.5),
                            "reset": r.uniform(0.05, 0.3)}[kind])
            finally:
                h.heal()
        else:
            pid = None
            deadline = time.monotonic() + 3
            while pid is None and time.monotonic() < deadline:
                pid = self.pick_pid("waiting" if kind == "stop_waiter" else "holding")
                if pid is None:
                    time.sleep(0.005)
            if pid is None:
                return False
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                return False
            self.stopped_pids.add(pid)
            try:
                time.sleep(self.session_ms / 1000.0 + r.uniform(1.0, 2.0))
            finally:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                self.stopped_pids.discard(pid)
        return True

    def neighbour(self, deadline):
        """The careless neighbour: deletes a held zksync node now and then."""
        r = random.Random(self.seed + 1)
        while time.monotonic() < deadline:
            time.sleep(r.uniform(0.5, 3.0))
            held = [w.get("node") for w in self.workers.values()
                    if w["state"] == "holding" and w.get("node")]
            if not held:
                continue
            node = r.choice(held)
            try:
                self.h.zk.delete_async(node).get(timeout=5)
            except Exception:
                continue        # gone already, or not answered: not counted
            with self.mu:
                self.deleted[node] = now()

    def fault_loop(self, deadline):
        plan = list(KINDS)
        self.rnd.shuffle(plan)    # each kind once first, then at random
        while time.monotonic() < deadline:
            time.sleep(self.rnd.uniform(0.5, 2.0))
            if time.monotonic() >= deadline:
                break
            kind = plan.pop(0) if plan else self.rnd.choice(KINDS)
            try:
                done = self.inject(kind)
            except Exception as e:
                self.h.note("soak: injecting %s failed: %r" % (kind, e))
                done = False
            if done:
                self.faults[kind] += 1
            else:
                self.skipped[kind] += 1
                if self.faults[kind] == 0:
                    plan.append(kind)     # try again later

    # ---------------------------------------------------------------- witness
    def double_grants(self):
        valid = sorted((iv for iv in self.intervals if iv[3]), key=lambda iv: iv[0])
        found = []
        last = None          # the valid interval that ends last so far
        for iv in valid:
            if last is not None and iv[0] < last[1]:
                found.append((last, iv))
            if last is None or iv[1] > last[1]:
                last = iv
        return found

    def stale_tokens(self):
        valid = sorted((iv for iv in self.intervals if iv[3] and iv[2].startswith("zksync")),
                       key=lambda iv: iv[0])
        stale = []
        prev = None
        for iv in valid:
            if iv[4] is None or (prev is not None and iv[4] <= prev[4]):
                stale.append((prev, iv))
            if iv[4] is not None:
                prev = iv
        return stale

    # ------------------------------------------------------------------- run
    def local_view_after(self):
        """zksync_local_locks and zksync_stats of both clusters, once the
        workers' backends have exited (polled: they exit after their
        connections close)."""
        out = dict(left=0, untracked=0, acquired=0, lost=0)
        for c in ("A", "B"):
            conn = self.h.connect(c, "soak-check")
            cur = conn.cursor()

            def left():
                cur.execute("SELECT count(*) FROM zksync_local_locks")
                return cur.fetchone()[0] == 0
            self.h.poll(left, 10.0)
            cur.execute("SELECT count(*) FROM zksync_local_locks")
            out["left"] += cur.fetchone()[0]
            cur.execute("SELECT untracked, acquired, lost FROM zksync_stats")
            u, a, l = cur.fetchone()
            out["untracked"] += u
            out["acquired"] += a
            out["lost"] += l
            conn.close()
        return out

    def run(self):
        h = self.h
        t_start = time.monotonic()
        self.mons = {c: h.connect(c, "soak-monitor") for c in ("A", "B")}
        self.start_curator()
        threads = []
        # six zksync workers, hand-off on for some and off for others on each cluster
        for i, (cluster, handoff) in enumerate([("A", True), ("A", True), ("A", False),
                                                ("B", True), ("B", False), ("B", False)]):
            self.workers[i] = dict(state="idle", pid=None, cycles=0, cluster=cluster,
                                   handoff=handoff)
            threads.append(threading.Thread(target=self.zksync_worker, args=(i, cluster, handoff),
                                            daemon=True))
        threads.append(threading.Thread(target=self.kazoo_worker, daemon=True))
        threads.append(threading.Thread(target=self.poke_kazoo, daemon=True))
        for t in threads:
            t.start()
        try:
            time.sleep(2)
            neighbour = threading.Thread(target=self.neighbour,
                                         args=(time.monotonic() + self.seconds,), daemon=True)
            neighbour.start()
            self.fault_loop(time.monotonic() + self.seconds)
            neighbour.join(10)
        finally:
            h.heal()
            for pid in list(self.stopped_pids):
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            for i in ("1", "2", "3"):
                h.zkctl("thaw", i)
            h.zkctl("start1", "1")   # start1 starts any server that is down
            h.zkctl("start1", "2")
            h.zkctl("start1", "3")
        # settle: sessions that a fault doomed expire, then everybody must cycle again
        time.sleep(self.session_ms / 1000.0 + 1.0)
        before = {i: w["cycles"] for i, w in self.workers.items()}
        before_k, before_c = self.cycles["kazoo"], self.cycles["curator"]
        progress = h.poll(lambda: all(w["cycles"] > before[i] for i, w in self.workers.items())
                          and self.cycles["kazoo"] > before_k
                          and self.cycles["curator"] > before_c, 30, 0.1)
        # stop cycling, sessions stay open
        self.stop_cycles.set()
        try:
            self.curator.stdin.write("stop\n")
            self.curator.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        for t in threads:
            t.join(60)
        curator_stopped = self.curator_stopped.wait(30)
        stuck = [t for t in threads if t.is_alive()]
        h.poll(lambda: not h.ephemerals(self.path), 3.0)
        orphans = h.ephemerals(self.path)
        # now the sessions may end
        for w in self.workers.values():
            conn = w.get("conn")
            if conn is not None and not conn.closed:
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
        for mon in self.mons.values():
            mon.close()
        # the workers' backends are gone: nothing of theirs is left in the
        # local view, and the counters saw at least every counted cycle
        local = self.local_view_after()
        try:
            self.curator.stdin.write("quit\n")
            self.curator.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.curator.wait(20)
        except subprocess.TimeoutExpired:
            self.curator.kill()
        try:
            self.kazoo.stop()
            self.kazoo.close()
        except Exception:
            pass

        doubles = self.double_grants()
        stale = self.stale_tokens()
        took = time.monotonic() - t_start
        total = sum(self.cycles.values())
        nfaults = sum(self.faults.values())
        by_kind = ", ".join("%s %d" % (k, v) for k, v in self.faults.items())
        h.note("soak: seed %d; %d s of faults; zksync workers %s"
               % (self.seed, self.seconds,
                  ", ".join("%d on %s hand-off %s: %d" % (i, w["cluster"], "on" if w["handoff"] else "off",
                                                         w["cycles"])
                            for i, w in sorted(self.workers.items()))))
        for text, n in sorted(self.errors.items(), key=lambda kv: -kv[1])[:12]:
            h.note("soak: error seen %d x: %s" % (n, text))
        for a, b in doubles[:10]:
            h.note("soak: double grant: %s [%d, %d] and %s [%d, %d] overlap %.3f ms"
                   % (a[2], a[0], a[1], b[2], b[0], b[1], (min(a[1], b[1]) - b[0]) / 1e6))
        for a, b in stale[:10]:
            h.note("soak: stale token: %s after %s" % (b, a))
        for who, node in self.lost_commits[:10]:
            h.note("soak: %s committed although its node %s was gone" % (who, node))
        h.note("soak: holds not counted (commit failed, or connection suspended): zksync %d, "
               "kazoo %d, curator %d" % (self.invalid["zksync"], self.invalid["kazoo"],
                                         self.invalid["curator"]))
        h.note("soak: %d s, cycles %d (zksync %d, kazoo %d, curator %d), faults injected %d (%s), "
               "double grants %d, stale tokens %d, orphans %d, commits under lost lock %d, "
               "neighbour's deletes %d, commits after a neighbour deleted the node %d"
               % (took, total, self.cycles["zksync"], self.cycles["kazoo"], self.cycles["curator"],
                  nfaults, by_kind, len(doubles), len(stale), len(orphans), len(self.lost_commits),
                  len(self.deleted), len(self.neighbour_commits)))
        for who, node in self.neighbour_commits[:10]:
            h.note("soak: %s committed although the neighbour had deleted its node %s" % (who, node))
        h.ok(all(self.faults[k] > 0 for k in KINDS),
             "soak: every kind of fault was injected (%s; not possible when tried: %s)"
             % (by_kind, ", ".join("%s %d" % kv for kv in self.skipped.items() if kv[1]) or "none"))
        h.ok(self.cycles["zksync"] > 0 and self.cycles["kazoo"] > 0 and self.cycles["curator"] > 0,
             "soak: all three kinds of client held the lock (zksync %d, kazoo %d, curator %d)"
             % (self.cycles["zksync"], self.cycles["kazoo"], self.cycles["curator"]))
        if not (progress and not stuck and curator_stopped):
            h.note("soak: after the faults: zksync workers %s; kazoo %d -> %d, curator %d -> %d; "
                   "threads still running %d; curator stopped %s"
                   % (", ".join("%d %s %d -> %d" % (i, w["state"], before[i], w["cycles"])
                                for i, w in sorted(self.workers.items())),
                      before_k, self.cycles["kazoo"], before_c, self.cycles["curator"],
                      len(stuck), curator_stopped))
        h.ok(progress and not stuck and curator_stopped,
             "soak: after the faults every client made progress again and stopped when asked")
        h.ok(not doubles, "soak: no double grants (%d)" % len(doubles))
        false_deadlocks = sum(n for text, n in self.errors.items() if "deadlock detected" in text)
        h.ok(self.zk_not_back == 0,
             "soak: every killed ZooKeeper server served again before the next fault (%d did not)"
             % self.zk_not_back)
        for d in self.deadlock_details[:5]:
            h.note("soak: deadlock reported to %s" % d)
        h.ok(false_deadlocks == 0,
             "soak: no deadlock reported with deadlock_timeout = 10ms (%d)" % false_deadlocks)
        h.ok(not stale, "soak: fencing tokens grew from holder to holder (%d stale)" % len(stale))
        h.ok(not self.lost_commits,
             "soak: no COMMIT succeeded under a lost lock (%d)" % len(self.lost_commits))
        h.ok(self.deleted and not self.neighbour_commits,
             "soak: the neighbour deleted held nodes (%d), and no COMMIT succeeded after its delete (%d)"
             % (len(self.deleted), len(self.neighbour_commits)))
        h.ok(local["left"] == 0 and local["untracked"] == 0,
             "soak: once the workers left, zksync_local_locks was empty on both clusters "
             "(%d left, %d untracked)" % (local["left"], local["untracked"]))
        h.ok(local["acquired"] >= self.cycles["zksync"] and local["lost"] > 0,
             "soak: zksync_stats counted every zksync cycle (acquired %d >= %d) and the lost holds "
             "(%d; the neighbour deleted %d)" % (local["acquired"], self.cycles["zksync"], local["lost"],
                                                 len(self.deleted)))
        h.ok(not orphans, "soak: no orphan node under the lock, sessions still open (%s)"
             % [n.rsplit("/", 1)[1] for n in orphans])


def run(h, root, seconds, seed=None, workdir="/tmp"):
    """The soak on harness h: `seconds` of faults (a seed repeats the schedule
    of kinds and pauses, not the interleaving)."""
    if not seed:
        seed = random.SystemRandom().randrange(1, 1 << 30)
    Soak(h, root, seconds, seed, workdir).run()
