#!/usr/bin/python3
"""Fault tests for zksync: real servers on loopback, faults injected for real.

Run as root by scripts/test.sh after the other suites, against the ensemble
that scripts/zk.sh started.  It starts two PostgreSQL clusters: A, run by
the postgres user, and B, run by a user of its own (zksync_cut) so that an
iptables owner match can cut B's traffic to the ensemble and nothing else.
Every rule it adds is on the loopback interface and is removed at the end.

Output is TAP-like ("ok N - ...", "not ok N - ...") and ends with a line
"faults: N passed, N failed".  Figures (cycles, overlaps, faults, orphans,
inputs) are printed as "# " lines.

    faults.py --scripts DIR --work DIR --zk-port PORT --pg-port PORT [--quick]
              [--only test_a,test_b] [--soak-seconds S] [--soak-seed N]
"""
import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback

import psycopg2
import psycopg2.errors
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

# kazoo's own default waits longer and longer between reconnects, up to an
# hour: after a few faults in a row it would sit out the ensemble's return
# for minutes.  Ours try again at least every second.
KAZOO_RECONNECT = dict(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0)


ROOT = "/zksync-faults"
CUT_USER = "zksync_cut"


class Harness:
    def __init__(self, args):
        self.args = args
        self.n = 0
        self.failed = 0
        self.zk_ports = [args.zk_port + i for i in range(3)]
        self.hosts = ",".join("127.0.0.1:%d" % p for p in self.zk_ports)
        self.rules = []
        self.kazoo_reconnect = KAZOO_RECONNECT
        self.zk = KazooClient(hosts=self.hosts, timeout=10.0, connection_retry=KAZOO_RECONNECT)
        self.zk.start(timeout=30)
        self.clusters = {}

    # ---- reporting ----
    def ok(self, cond, desc):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, desc), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, desc), flush=True)
        return cond

    def note(self, text):
        print("# " + text, flush=True)

    # ---- processes ----
    def zkctl(self, *words):
        env = dict(os.environ, ZK_DIR=self.args.zk_dir, ZK_PORT=str(self.args.zk_port))
        cmd = [os.path.join(self.args.scripts, "zk.sh")] + [str(w) for w in words]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", "env",
                   "ZK_DIR=" + self.args.zk_dir, "ZK_PORT=%d" % self.args.zk_port] + cmd
        return subprocess.run(cmd, env=env, capture_output=True, text=True)

    def zk_start(self, server):
        """Start ZooKeeper server `server` if it is down and wait for the
        quorum; True if it then serves (as leader or follower)."""
        r = self.zkctl("start1", server)
        status = self.zkctl("status").stdout
        serving = any(line.startswith("zk%s " % server) and "Mode:" in line
                      for line in status.splitlines())
        if r.returncode != 0 or not serving:
            self.note("zk%s did not come back: %s %s" % (server, status.strip(), r.stderr.strip()))
        return r.returncode == 0 and serving

    def start_cluster(self, name, os_user, port, extra_conf=""):
        pg_dir = os.path.join(self.args.work, "pg-" + name)
        env = dict(os.environ, PG_DIR=pg_dir, PGPORT=str(port), ZK_HOSTS=self.hosts,
                   PG_OS_USER=os_user)
        pg = os.path.join(self.args.scripts, "pg.sh")
        subprocess.run([pg, "start"], env=env, check=True, capture_output=True)
        conf = os.path.join(pg_dir, "data", "postgresql.conf")
        with open(conf, "a") as f:
            f.write("zksync.root = '%s'\nzksync.session_timeout = 4000\n"
                    "zksync.connect_timeout = 5000\n%s\n" % (ROOT, extra_conf))
        subprocess.run([pg, "stop"], env=env, check=True, capture_output=True)
        subprocess.run([pg, "start"], env=env, check=True, capture_output=True)
        self.clusters[name] = dict(dir=pg_dir, port=port, env=env)
        c = self.connect(name)
        c.cursor().execute("CREATE EXTENSION IF NOT EXISTS zksync")
        c.close()

    def stop_clusters(self):
        for name, cl in self.clusters.items():
            subprocess.run([os.path.join(self.args.scripts, "pg.sh"), "stop"],
                           env=cl["env"], capture_output=True)

    def connect(self, name, app="faults"):
        cl = self.clusters[name]
        for _ in range(100):
            try:
                c = psycopg2.connect(host=cl["dir"], port=cl["port"], user="postgres",
                                     dbname="postgres", application_name=app)
                c.autocommit = True
                return c
            except psycopg2.OperationalError:
                time.sleep(0.1)   # a cluster restarting after a crash
        raise RuntimeError("cannot connect to cluster " + name)

    def server_log(self, name):
        with open(os.path.join(self.clusters[name]["dir"], "server.log"), errors="replace") as f:
            return f.read()

    # ---- the network cut (iptables owner match on cluster B's user) ----
    def _rule(self, target):
        return ["OUTPUT", "-o", "lo", "-p", "tcp", "-m", "owner", "--uid-owner", CUT_USER,
                "-m", "multiport", "--dports", ",".join(map(str, self.zk_ports))] + target

    def cut(self, reset=False):
        rule = self._rule(["-j", "REJECT", "--reject-with", "tcp-reset"] if reset else ["-j", "DROP"])
        subprocess.run(["iptables", "-I"] + rule, check=True)
        self.rules.append(rule)

    def heal(self):
        while self.rules:
            subprocess.run(["iptables", "-D"] + self.rules.pop(), check=False)

    # ---- ZooKeeper, read independently ----
    def nodes(self, path=ROOT):
        out = []
        try:
            children = self.zk.get_children(path)
        except NoNodeError:
            return out
        for c in children:
            full = path + "/" + c
            out.append(full)
            out.extend(self.nodes(full))
        return out

    def ephemerals(self, path=ROOT):
        # the harness's own session may be on a server that has not yet
        # applied a write another session was just answered for: catch up
        # with the leader first, so that what is read here is not older
        self.zk.sync("/")
        found = []
        for n in self.nodes(path):
            st = self.zk.exists(n)
            if st is not None and st.ephemeralOwner:
                found.append(n)
        return found

    def poll(self, fn, secs=30.0, step=0.05):
        deadline = time.time() + secs
        while time.time() < deadline:
            r = fn()
            if r:
                return r
            time.sleep(step)
        return fn()


def error_of(fn):
    """The psycopg2 error that fn() raises, or None."""
    try:
        fn()
    except psycopg2.Error as e:
        return e
    return None


def q(conn, sql, *params):
    cur = conn.cursor()
    cur.execute(sql, params)
    return cur.fetchone()[0] if cur.description else None


class Call(threading.Thread):
    """One statement run on conn in a thread of its own: its result or
    error, and when it started and ended (time.monotonic())."""

    def __init__(self, conn, sql, *params):
        super().__init__(daemon=True)
        self.conn, self.sql, self.params = conn, sql, params
        self.result = self.error = None
        self.t_start = self.t_end = None
        self.start()

    def run(self):
        self.t_start = time.monotonic()
        try:
            self.result = q(self.conn, self.sql, *self.params)
        except Exception as e:   # psycopg2.Error, or anything else: kept for the test
            self.error = e
        self.t_end = time.monotonic()

    def finished(self, secs):
        self.join(secs)
        return not self.is_alive()


def first_line(e):
    return str(e).splitlines()[0] if e is not None else "no error"


def is_waiting(mon, pid):
    """Backend pid (of mon's cluster) waits in zksync."""
    return q(mon, "SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = %s",
             pid) is True


def zk_sockets(h, pid):
    """States of process pid's TCP sockets to the ensemble (from ss)."""
    out = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True).stdout
    ports = tuple(":%d" % p for p in h.zk_ports)
    return [line.split()[0] for line in out.splitlines()
            if "pid=%d," % pid in line and line.split()[4].endswith(ports)]


def client_settled(h, pid, secs):
    """Poll until backend pid has had no socket to the ensemble for a whole
    second: its client reconnected, was told the session expired, and stopped
    (while cut off it always has one, connected or connecting)."""
    deadline = time.monotonic() + secs
    quiet_since = None
    while time.monotonic() < deadline:
        if zk_sockets(h, pid):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            return True
        time.sleep(0.05)
    return False


def cont(pid):
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


# =====================================================================
# The tests
# =====================================================================

def test_leader_kill(h):
    """Eight backends on two clusters cycle on one lock while the leader is
    killed and restarted and a follower is frozen; an independent checker
    proves no two holders overlapped and fencing tokens only grew."""
    lock = threading.Lock()
    state = dict(inside=0, overlaps=0, cycles=0, errors=0, last_token=0, stale=0, no_token=0)
    per_worker = {}
    stop = threading.Event()

    def worker(i):
        cluster = "A" if i % 2 == 0 else "B"
        conn = h.connect(cluster, "worker-%d" % i)
        per_worker[i] = 0
        while not stop.is_set():
            try:
                cur = conn.cursor()
                cur.execute("SET statement_timeout = '20s'")
                cur.execute("SELECT zksync_write_lock('fence')")
                cur.execute("SELECT zksync_lock_token('fence')")
                token = cur.fetchone()[0]
                with lock:
                    state["inside"] += 1
                    if state["inside"] > 1:
                        state["overlaps"] += 1
                    if token is None:
                        state["no_token"] += 1
                    elif token <= state["last_token"]:
                        state["stale"] += 1
                    else:
                        state["last_token"] = token
                time.sleep(0.002)
                with lock:
                    state["inside"] -= 1
                cur.execute("SELECT zksync_write_unlock('fence')")
                with lock:
                    state["cycles"] += 1
                per_worker[i] += 1
            except psycopg2.Error as e:
                with lock:
                    state["errors"] += 1
                    state.setdefault("messages", set()).add(str(e).splitlines()[0][:120])
                try:
                    conn.cursor().execute("SELECT zksync_unlock_all()")
                except psycopg2.Error:
                    pass
                if conn.closed:
                    conn = h.connect(cluster, "worker-%d" % i)
                time.sleep(0.05)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    faults = 0
    restarted = 0
    rounds = 2 if h.args.quick else 3
    time.sleep(2)
    for r in range(rounds):
        leader = h.zkctl("leader").stdout.strip()
        h.zkctl("kill1", leader)
        faults += 1
        h.note("round %d: killed leader zk%s" % (r + 1, leader))
        time.sleep(2)
        restarted += h.zk_start(leader)
        time.sleep(1)
        follower = [i for i in ("1", "2", "3") if i != h.zkctl("leader").stdout.strip()][0]
        h.zkctl("freeze", follower)
        faults += 1
        h.note("round %d: froze follower zk%s for 1.5 s" % (r + 1, follower))
        time.sleep(1.5)
        h.zkctl("thaw", follower)
        time.sleep(1)
    before = dict(per_worker)
    time.sleep(3)
    progress = all(per_worker[i] > before.get(i, 0) for i in per_worker)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    for m in sorted(state.get("messages", ())):
        h.note("worker error seen: " + m)
    h.note("leader kill: %d cycles, %d overlaps, %d stale tokens, %d faults injected, %d errors"
           % (state["cycles"], state["overlaps"], state["stale"], faults, state["errors"]))
    h.ok(restarted == rounds, "each killed leader was back, serving, before the next fault (%d of %d)"
         % (restarted, rounds))
    h.ok(state["cycles"] > 100, "workers cycled the lock (%d cycles)" % state["cycles"])
    h.ok(state["overlaps"] == 0, "no two holders overlapped (%d overlaps)" % state["overlaps"])
    h.ok(state["stale"] == 0, "fencing tokens strictly increased from holder to holder")
    h.ok(state["no_token"] == 0, "every holder had a fencing token (%d without)" % state["no_token"])
    h.ok(progress, "every worker kept making progress after the faults")
    h.ok(h.poll(lambda: not h.ephemerals(ROOT + "/locks/fence"), 15) is not False
         and not h.ephemerals(ROOT + "/locks/fence"), "no orphan node left")
    return state


def test_partition(h):
    """Cluster B holds a transaction lock and is cut off for longer than the
    session timeout; A takes the lock; B's COMMIT fails and rolls back."""
    a = h.connect("A")
    b = h.connect("B", "partitioned")
    q(b, "CREATE TABLE IF NOT EXISTS part_t (v text)")
    q(b, "TRUNCATE part_t")
    b.autocommit = False
    q(b, "SELECT zksync_xact_write_lock('part')")
    q(b, "INSERT INTO part_t VALUES ('written under the lock')")
    node = h.ephemerals(ROOT + "/locks/part")
    h.ok(len(node) == 1, "B holds the lock in ZooKeeper")
    h.cut()
    gone = h.poll(lambda: not h.ephemerals(ROOT + "/locks/part"), 30)
    h.ok(gone, "B's session expired on the server: its node is gone")
    t0 = time.time()
    h.ok(q(a, "SELECT zksync_try_write_lock('part', 10000)") is True, "A takes the lock")
    h.note("A got the lock %.2f s after B's node vanished" % (time.time() - t0))
    t0 = time.time()
    err = error_of(b.commit)
    took = time.time() - t0
    h.ok(err is not None and "cannot commit" in str(err) and '"part"' in str(err),
         "B's COMMIT fails, naming the lost lock (%s)" % (str(err).splitlines()[0] if err else "no error"))
    h.note("B's commit gave up after %.2f s" % took)
    b.rollback()
    b.autocommit = True
    c = h.connect("B")
    h.ok(q(c, "SELECT count(*) FROM part_t") == 0, "nothing B wrote is visible")
    c.close()
    h.heal()
    q(a, "SELECT zksync_write_unlock('part')")
    ok = False
    try:
        ok = h.poll(lambda: q(b, "SELECT zksync_try_write_lock('part', 2000)"), 20, 0.2)
    except psycopg2.Error as e:
        h.note("after heal: " + str(e).splitlines()[0])
    h.ok(ok is True, "after the cut heals, B works again (new session)")
    lost_state = q(b, "SELECT string_agg(name || ':' || state, ',') FROM zksync_locks()")
    h.ok(lost_state == "part:held", "B holds only its new lock (%s)" % lost_state)
    q(b, "SELECT zksync_unlock_all()")
    a.close()
    b.close()


def test_expiry_idle_in_transaction(h):
    """B sits idle in a transaction holding a lock; its session expires
    while it is cut off; after the cut heals, COMMIT fails; a session lock
    shows as lost and unlocking it is an ERROR naming it."""
    b = h.connect("B", "idle-in-xact")
    q(b, "SELECT zksync_write_lock('sess')")
    b.autocommit = False
    q(b, "SELECT zksync_xact_read_lock('idle')")
    h.cut()
    h.poll(lambda: not h.ephemerals(ROOT + "/locks/idle"), 30)
    h.heal()
    time.sleep(0.5)
    err = error_of(b.commit)
    h.ok(err is not None and "cannot commit" in str(err),
         "COMMIT after expiry while idle in a transaction fails (%s)"
         % (str(err).splitlines()[0] if err else "no error"))
    b.rollback()
    b.autocommit = True
    states = q(b, "SELECT string_agg(name || ':' || state, ',') FROM zksync_locks()")
    h.ok(states == "sess:lost", "the session lock shows as lost (%s)" % states)
    err = error_of(lambda: q(b, "SELECT zksync_write_unlock('sess')"))
    h.ok(err is not None and '"sess"' in str(err) and "lost" in str(err),
         "unlocking a lost lock is an ERROR naming it")
    h.ok(q(b, "SELECT count(*) FROM zksync_locks()") == 0, "and it is gone afterwards")
    h.ok(q(b, "SELECT zksync_try_write_lock('sess')") is True, "the next call makes a new session")
    q(b, "SELECT zksync_unlock_all()")
    b.close()


def test_release_while_disconnected(h):
    """An unlock whose delete is lost to a connection reset: the backend
    goes idle, and the watchdog sends the delete again after the reconnect,
    on the same session, so the lock is free long before the session would
    expire."""
    b = h.connect("B", "lazy-release")
    q(b, "SELECT zksync_write_lock('lazy')")
    session = q(b, "SELECT session_id FROM zksync_session()")
    h.cut(reset=True)
    t0 = time.time()
    h.ok(q(b, "SELECT zksync_write_unlock('lazy')") is True, "unlock returns at once while cut off")
    time.sleep(0.3)
    h.ok(len(h.ephemerals(ROOT + "/locks/lazy")) == 1, "the node is still there while cut off")
    h.heal()
    a = h.connect("A")
    got = q(a, "SELECT zksync_try_write_lock('lazy', 10000)")
    took = time.time() - t0
    h.ok(got is True, "the lock is free again %.2f s after the unlock, B idle all along" % took)
    h.ok(took < 3.5, "freed by the re-sent delete, not by session expiry (4 s)")
    h.ok(q(b, "SELECT session_id FROM zksync_session()") == session, "B kept its session")
    q(a, "SELECT zksync_unlock_all()")
    a.close()
    b.close()


def test_kill9_backend(h):
    """A backend holding a lock is killed with SIGKILL: the lock frees within
    the session timeout (the session is left to expire)."""
    b = h.connect("B", "doomed")
    q(b, "SELECT zksync_write_lock('k9')")
    pid = q(b, "SELECT pg_backend_pid()")
    a = h.connect("A")
    h.ok(q(a, "SELECT zksync_try_write_lock('k9')") is False, "A is excluded while B holds")
    t0 = time.time()
    os.kill(pid, 9)
    got = q(a, "SELECT zksync_try_write_lock('k9', 15000)")
    took = time.time() - t0
    h.ok(got is True and took < 4.0 + 2.0,
         "lock freed %.2f s after kill -9 (session timeout 4 s)" % took)
    h.note("kill -9: lock free after %.2f s" % took)
    q(a, "SELECT zksync_unlock_all()")
    a.close()
    try:
        b.close()
    except psycopg2.Error:
        pass
    h.connect("B").close()   # wait for B's crash recovery


def test_reset_during_acquire(h):
    """Connections reset (TCP RST) while a backend acquires and releases in
    a loop: creates whose replies were lost are found by their GUID; no
    orphan node is left while the session lives."""
    b = h.connect("B", "reset")
    stop = threading.Event()
    counts = dict(cycles=0, errors=0)

    def loop():
        c = h.connect("B", "reset-loop")
        while not stop.is_set():
            try:
                q(c, "SELECT zksync_write_lock('rst')")
                q(c, "SELECT zksync_write_unlock('rst')")
                counts["cycles"] += 1
            except psycopg2.Error:
                counts["errors"] += 1
                try:
                    q(c, "SELECT zksync_unlock_all()")
                except psycopg2.Error:
                    pass
        c.close()

    t = threading.Thread(target=loop)
    t.start()
    resets = 12 if h.args.quick else 25
    for _ in range(resets):
        time.sleep(random.uniform(0.05, 0.3))
        h.cut(reset=True)
        time.sleep(random.uniform(0.01, 0.2))
        h.heal()
    time.sleep(1)
    stop.set()
    t.join(timeout=60)
    h.note("connection resets: %d, cycles %d, errors %d" % (resets, counts["cycles"], counts["errors"]))
    h.ok(counts["cycles"] > resets, "the loop kept cycling through %d resets" % resets)
    left = h.poll(lambda: not h.ephemerals(ROOT + "/locks/rst"), 15)
    h.ok(left is True, "no orphan node under the lock (sessions still alive)")
    b.close()


def test_orphans(h):
    """Waits ended by try timeout, lock_timeout, statement_timeout and
    cancel, interleaved with connection drops, leave zero nodes behind."""
    a = h.connect("A", "orphan-holder")
    q(a, "SELECT zksync_write_lock('orph')")
    b = h.connect("B", "orphan-waiter")
    pid = q(b, "SELECT pg_backend_pid()")
    c = h.connect("B", "canceller")
    total = 100 if h.args.quick else 200
    kinds = dict(try_timeout=0, lock_timeout=0, statement_timeout=0, cancel=0, other=0)
    drops = 0
    for i in range(total):
        if i % 25 == 12:
            h.cut(reset=True)
            drops += 1
        kind = ("try_timeout", "lock_timeout", "statement_timeout", "cancel")[i % 4]
        try:
            if kind == "try_timeout":
                r = q(b, "SELECT zksync_try_write_lock('orph', 30)")
                kinds[kind] += 1 if r is False else 0
            elif kind in ("lock_timeout", "statement_timeout"):
                sql, expected = {
                    "lock_timeout": ("SELECT zksync_write_lock('orph')", psycopg2.errors.LockNotAvailable),
                    "statement_timeout": ("SELECT zksync_read_lock('orph')", psycopg2.errors.QueryCanceled),
                }[kind]
                q(b, "SET %s = '30ms'" % kind)
                try:
                    q(b, sql)
                except expected:
                    kinds[kind] += 1
                q(b, "RESET " + kind)
            else:
                timer = threading.Timer(0.03, lambda: q(c, "SELECT pg_cancel_backend(%s)", pid))
                timer.start()
                try:
                    q(b, "SELECT zksync_write_lock('orph')")
                except psycopg2.errors.QueryCanceled:
                    kinds[kind] += 1
                timer.join()
        except psycopg2.Error:
            kinds["other"] += 1
            for setting in ("lock_timeout", "statement_timeout"):
                try:
                    q(b, "RESET " + setting)
                except psycopg2.Error:
                    pass
        if i % 25 == 12:
            h.heal()
    nodes = h.poll(lambda: len(h.ephemerals(ROOT + "/locks/orph")) == 1, 15)
    left = len(h.ephemerals(ROOT + "/locks/orph")) - 1
    h.note("orphans: %d waits (%s), %d connection drops, %d nodes left"
           % (total, ", ".join("%s %d" % kv for kv in kinds.items()), drops, left))
    h.ok(nodes is True and left == 0, "zero nodes left behind by %d ended waits" % total)
    h.ok(sum(v for k, v in kinds.items() if k != "other") >= total * 0.8,
         "most waits ended the way they were asked to")
    q(a, "SELECT zksync_unlock_all()")
    for conn in (a, b, c):
        conn.close()


def test_bad_input(h):
    """A few thousand random names and arguments to every function: each is
    accepted or refused with an ERROR, the server never crashes, and no node
    appears outside zksync.root."""
    rnd = random.Random(4537)
    before = set(h.zk.get_children("/"))
    a = h.connect("A", "fuzz")
    alphabet = ["a", "Z", "0", ".", "/", "-", "_", " ", "\x01", "\x1f", "\x7f", "\u0085",
                "\u00e9", "\u2603", "\ud7ff", "\ue000", "\uf8ff", "\ufff0", "\uffef", "\U0001F512",
                "..", "%", "'", "\\", "\t", "\n", "zookeeper", "__WRIT__", "__READ__"]
    calls = [
        "SELECT zksync_try_write_lock(%s)", "SELECT zksync_try_read_lock(%s, %s)",
        "SELECT zksync_try_xact_write_lock(%s, %s)", "SELECT zksync_write_unlock(%s)",
        "SELECT zksync_read_unlock(%s)", "SELECT zksync_lock_token(%s)",
        "SELECT count(*) FROM zksync_lock_holders(%s)", "SELECT zksync_barrier_set(%s)",
        "SELECT zksync_barrier_unset(%s)", "SELECT zksync_barrier_is_set(%s)",
        "SELECT zksync_barrier_wait(%s, %s)", "SELECT zksync_dbarrier_enter(%s, %s, %s)",
        "SELECT zksync_dbarrier_exit(%s, %s)",
    ]
    total = 1500 if h.args.quick else 3000
    accepted = refused = 0
    states = {}
    for i in range(total):
        kind = rnd.random()
        if kind < 0.1:
            name = None
        elif kind < 0.2:
            name = "".join(rnd.choice("abc") for _ in range(rnd.randint(190, 260)))
        else:
            name = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
        sql = rnd.choice(calls)
        nparams = sql.count("%s")
        params = [name] + [rnd.choice([None, -1, 0, 1, 2, 10, -2147483648, 2147483647])
                           if j > 0 else None for j in range(1, nparams)]
        if "barrier_wait" in sql or "dbarrier" in sql:
            # no blocking for long: a small or invalid timeout
            params = [name] + [rnd.choice([None, -1, 0, 1, 2, 5])
                               if ("enter" in sql and j == 1) else rnd.choice([-1, 0, 1, None])
                               for j in range(1, nparams)]
            if "enter" in sql and params[-1] is None:
                params[-1] = 0
            if "barrier_wait" in sql and params[-1] is None:
                params[-1] = 0
            if "exit" in sql and params[-1] is None:
                params[-1] = 0
        try:
            q(a, sql, *params)
            accepted += 1
        except psycopg2.Error as e:
            refused += 1
            states[e.pgcode] = states.get(e.pgcode, 0) + 1
            if a.closed:
                break
    crashed = "terminated by signal" in h.server_log("A")
    h.note("bad input: %d calls, %d accepted, %d refused, SQLSTATEs %s"
           % (total, accepted, refused, sorted(states.items())))
    h.ok(not a.closed, "the connection survived every call")
    h.ok(not crashed, "the server never crashed (no 'terminated by signal' in its log)")
    h.ok(set(states) <= {"22023", "22004", "55000", "XX000"} and "XX000" not in states,
         "every refusal was a clear ERROR with a SQLSTATE (%s)" % ",".join(sorted(states)))
    q(a, "SELECT zksync_unlock_all()")
    a.close()
    after = set(h.zk.get_children("/"))
    h.ok(after <= before | {ROOT.strip("/")}, "no node appeared outside zksync.root (%s)"
         % sorted(after - before))
    for barrier in h.nodes(ROOT + "/barriers"):
        h.zk.delete(barrier)


def test_acl(h):
    """With zksync.auth, an unauthenticated client cannot delete a lock node
    or the lock's directory entries."""
    h.start_cluster("C", "postgres", h.args.pg_port + 2,
                    "zksync.auth = 'zksync:s3cret'\nzksync.root = '/zksync-acl'")
    c = h.connect("C")
    q(c, "SELECT zksync_write_lock('secure')")
    nodes = [n for n in (h.nodes("/zksync-acl/locks/secure")) if "__WRIT__" in n]
    h.ok(len(nodes) == 1, "the lock node exists")
    denied = False
    try:
        h.zk.delete(nodes[0])
    except NoAuthError:
        denied = True
    h.ok(denied, "an unauthenticated kazoo client cannot delete it")
    other = KazooClient(hosts=h.hosts, auth_data=[("digest", "zksync:s3cret")])
    other.start(timeout=30)
    children = other.get_children("/zksync-acl/locks/secure")
    other.stop()
    h.ok(len(children) == 1, "the identity's own clients can still read it")
    q(c, "SELECT zksync_write_unlock('secure')")
    h.ok(h.poll(lambda: not h.ephemerals("/zksync-acl"), 10), "released normally by its owner")
    c.close()


# ---- issue 10: a live session for every grant, releases that finish ----

def lock_node(conn, name, mode="write"):
    """This backend's node for (name, mode), from zksync_locks()."""
    return q(conn, "SELECT node FROM zksync_locks() WHERE name = %s AND mode = %s", name, mode)


def close_quietly(*conns):
    for c in conns:
        try:
            if not c.closed:
                c.cursor().execute("SELECT zksync_unlock_all()")
        except psycopg2.Error:
            pass
        try:
            c.close()
        except psycopg2.Error:
            pass


def _paused_waiter_round(h, r, lock, handoff, third):
    path = ROOT + "/locks/" + lock
    a1 = h.connect("A", "pw-holder")
    b1 = h.connect("A", "pw-waiter")
    mon = h.connect("A", "pw-monitor")
    c = h.connect(third, "pw-third")
    if third == "A":
        q(c, "SET zksync.local_handoff = off")
    if not handoff:
        q(b1, "SET zksync.local_handoff = off")
    q(b1, "SET statement_timeout = '60s'")
    pid = q(b1, "SELECT pg_backend_pid()")
    q(a1, "SELECT zksync_write_lock(%s)", lock)
    a_node = lock_node(a1, lock)
    call = Call(b1, "SELECT zksync_write_lock(%s)", lock)
    queued = h.poll(lambda: is_waiting(mon, pid) and len(h.ephemerals(path)) == 2, 15)
    b_nodes = [n for n in h.ephemerals(path) if n != a_node]
    gone = got = False
    try:
        os.kill(pid, signal.SIGSTOP)
        gone = bool(b_nodes) and h.poll(lambda: b_nodes[0] not in h.ephemerals(path), 30)
        q(a1, "SELECT zksync_write_unlock(%s)", lock)
        got = q(c, "SELECT zksync_try_write_lock(%s, 10000)", lock)
    finally:
        cont(pid)
    ended = call.finished(30)
    label = "round %d (B1 hand-off %s, C on cluster %s)" % (r, "on" if handoff else "off", third)
    h.ok(queued and gone and got is True,
         "%s: B1 queued behind A1, stopped until its node vanished; A1 unlocked; C took the lock"
         % label)
    err = call.error
    h.ok(ended and isinstance(err, psycopg2.Error) and (err.pgcode or "").startswith("08")
         and "expired" in str(err),
         "%s: B1's wait fails with a class 08 ERROR saying the session expired (%s)"
         % (label, "still waiting" if not ended else "returned as the holder" if err is None
            else "%s %s" % (getattr(err, "pgcode", None), first_line(err))))
    c_node = lock_node(c, lock)
    left = h.ephemerals(path)
    h.ok(c_node is not None and left == [c_node],
         "%s: C still holds, alone in the queue (%s)" % (label, [n.rsplit("/", 1)[1] for n in left]))
    close_quietly(c, b1, a1, mon)


def test_paused_waiter(h):
    """A waiter of the holder's own cluster is stopped (SIGSTOP) past its
    session timeout; meanwhile the holder unlocks and a third backend takes
    the lock; on SIGCONT the waiter's call fails (class 08, expired) instead
    of returning as a second holder, with and without the in-cluster
    hand-off (SPEC 14)."""
    rounds = [(True, "B"), (True, "A"), (True, "B"), (False, "B")]
    for r, (handoff, third) in enumerate(rounds, 1):
        _paused_waiter_round(h, r, "pw%d" % r, handoff, third)


def test_paused_holder(h):
    """A backend holding a transaction lock is stopped past its session
    timeout; another cluster takes the lock; after SIGCONT its COMMIT fails
    naming the lock and nothing it wrote is visible."""
    path = ROOT + "/locks/ph"
    a = h.connect("A", "paused-holder")
    other = h.connect("B", "ph-taker")
    q(a, "CREATE TABLE IF NOT EXISTS ph_t (v text)")
    q(a, "TRUNCATE ph_t")
    pid = q(a, "SELECT pg_backend_pid()")
    a.autocommit = False
    q(a, "SELECT zksync_xact_write_lock('ph')")
    q(a, "INSERT INTO ph_t VALUES ('written under the lock')")
    held = len(h.ephemerals(path)) == 1
    gone = got = False
    try:
        os.kill(pid, signal.SIGSTOP)
        gone = h.poll(lambda: not h.ephemerals(path), 30)
        got = q(other, "SELECT zksync_try_write_lock('ph', 10000)")
    finally:
        cont(pid)
    h.ok(held and gone and got is True,
         "the holder was stopped until its node vanished; another cluster took the lock")
    err = error_of(a.commit)
    h.ok(err is not None and "cannot commit" in str(err) and '"ph"' in str(err),
         "the stopped holder's COMMIT fails, naming the lost lock (%s)" % first_line(err))
    try:
        a.rollback()
    except psycopg2.Error:
        pass
    a.autocommit = True
    check = h.connect("A")
    h.ok(q(check, "SELECT count(*) FROM ph_t") == 0, "nothing the stopped holder wrote is visible")
    o_node = lock_node(other, "ph")
    h.ok(o_node is not None and h.ephemerals(path) == [o_node], "the other cluster still holds, alone")
    close_quietly(check, other, a)


def test_outage(h):
    """Cluster B cut off (DROP) for less than the session timeout: stacking
    and unlocking a session hold return at once, cancel and
    statement_timeout end waits within 1 s, unlocked holds show as
    releasing; after healing, no node of the ended waits or released holds
    is left, on the same session (SPEC 13, 15)."""
    timeout_ms = 9000            # the client notices the cut at 2/3 of it, expiry at all of it
    a = h.connect("A", "outage-holder")
    b = h.connect("B", "outage")
    w1 = h.connect("B", "outage-cancel")
    w2 = h.connect("B", "outage-timeout")
    ctl = h.connect("B", "outage-ctl")
    for c in (b, w1, w2):
        q(c, "SET zksync.session_timeout = %s", timeout_ms)
    for name in ("o_stack", "o_free", "o_late"):
        q(b, "SELECT zksync_write_lock(%s)", name)
    session = q(b, "SELECT session_id FROM zksync_session()")
    granted = q(b, "SELECT timeout_ms FROM zksync_session()")
    bpid = q(b, "SELECT pg_backend_pid()")
    own_nodes = [lock_node(b, n) for n in ("o_stack", "o_free", "o_late")]
    q(a, "SELECT zksync_write_lock('o_wait')")
    a_node = lock_node(a, "o_wait")
    wait_path = ROOT + "/locks/o_wait"
    p1, p2 = q(w1, "SELECT pg_backend_pid()"), q(w2, "SELECT pg_backend_pid()")
    for c in (w1, w2):   # connect the waiters' sessions first: their waits start at once
        q(c, "SELECT zksync_try_read_lock('o_warm')")
        q(c, "SELECT zksync_read_unlock('o_warm')")
    c1 = Call(w1, "SELECT zksync_write_lock('o_wait')")
    h.poll(lambda: is_waiting(ctl, p1), 10)
    q(w2, "SET statement_timeout = 3000")
    c2 = Call(w2, "SELECT zksync_write_lock('o_wait')")
    queued = h.poll(lambda: is_waiting(ctl, p1) and is_waiting(ctl, p2)
                    and len(h.ephemerals(wait_path)) == 3, 10)
    wait_nodes = [n for n in h.ephemerals(wait_path) if n != a_node]
    h.ok(queued and granted == timeout_ms and len(wait_nodes) == 2,
         "set-up: B holds three locks (session timeout %s ms), two B backends wait" % granted)

    def timed(sql, limit=1.5):
        """Run sql on b in a thread, give it `limit` s: (seconds, error or
        'still running'); the test's clock keeps going if b blocks."""
        call = Call(b, sql)
        if not call.finished(limit):
            seen = q(ctl, "SELECT concat_ws(' ', wait_event_type, wait_event) FROM pg_stat_activity"
                          " WHERE pid = %s", bpid)
            return time.monotonic() - call.t_start, "still running, waiting on %s" % seen
        return call.t_end - call.t_start, call.error

    def shown(took, err):
        return "%.2f s, %s" % (took, err if isinstance(err, str) else first_line(err))

    released = []
    h.cut()
    t_cut = time.monotonic()
    # -- at once after the cut, before the client can have noticed it
    took, err = timed("SELECT zksync_write_lock('o_stack')")
    h.ok(err is None and took < 1.0,
         "re-taking a held lock right after the cut returns at once (%s)" % shown(took, err))
    t0 = time.monotonic()
    q(ctl, "SELECT pg_cancel_backend(%s)", p1)
    ended = c1.finished(1.5)
    took = (c1.t_end if ended else time.monotonic()) - t0
    h.ok(ended and isinstance(c1.error, psycopg2.errors.QueryCanceled) and took < 1.0,
         "cancel ends a wait %.2f s after pg_cancel_backend, ensemble unreachable (%s)"
         % (took, first_line(c1.error) if ended else "still waiting"))
    if err is None:
        took, err = timed("SELECT zksync_write_unlock('o_free')")
        if err is None:
            released.append("o_free")
        h.ok(err is None and took < 1.0,
             "unlocking a session hold right after the cut returns at once (%s)" % shown(took, err))
        call = Call(b, "SELECT string_agg(state, ',') FROM zksync_locks() WHERE name = 'o_free'")
        state = call.result if call.finished(1.5) else "query still running"
        h.ok(state == "releasing", "the unlocked hold shows as releasing (%s)" % state)
    else:
        h.ok(False, "unlocking a session hold right after the cut: not tried, b is blocked")
    ended = c2.finished(max(0.0, c2.t_start + 4.5 - time.monotonic()))
    over = (c2.t_end if ended else time.monotonic()) - c2.t_start - 3.0
    h.ok(ended and isinstance(c2.error, psycopg2.errors.QueryCanceled) and over < 1.0,
         "statement_timeout ends a wait %.2f s after it fires, ensemble unreachable (%s)"
         % (over, first_line(c2.error) if ended else "still waiting"))
    # -- once the client has noticed (its connected socket is gone); no query on b
    # before that, so it is not its own statements that find out
    noticed = h.poll(lambda: err is None and "ESTAB" not in zk_sockets(h, bpid),
                     timeout_ms / 1000.0 * 0.85 - (time.monotonic() - t_cut), 0.05)
    h.note("client noticed the cut after %.2f s" % (time.monotonic() - t_cut))
    results = []
    if noticed:
        for sql in ("SELECT zksync_write_lock('o_stack')", "SELECT zksync_write_unlock('o_stack')",
                    "SELECT zksync_write_unlock('o_stack')", "SELECT zksync_write_unlock('o_stack')",
                    "SELECT zksync_write_unlock('o_late')"):
            took, err = timed(sql, 1.2)
            results.append((sql, took, err))
            if err is not None:
                break
        if len(results) == 5 and all(e is None for _, _, e in results):
            released += ["o_stack", "o_late"]
    bad = [(s, t, e) for s, t, e in results if e is not None or t >= 1.0]
    h.ok(noticed and len(results) == 5 and not bad,
         "while the client knows it is disconnected, re-taking a held lock and three unlocks "
         "each return at once (%s)" % ("; ".join("%s: %s" % (s[7:], shown(t, e)) for s, t, e in bad)
                                       or "max %.2f s" % max([t for _, t, _ in results] or [0])))
    states = None
    if not bad and noticed:
        took, err = timed("SELECT 1", 1.0)
        if err is None:
            states = q(b, "SELECT string_agg(name || ':' || state, ',' ORDER BY name) FROM zksync_locks()")
    h.ok(states == "o_free:releasing,o_late:releasing,o_stack:releasing",
         "released holds show as releasing until the delete is applied (%s)" % states)
    in_time = time.monotonic() - t_cut < timeout_ms / 1000.0 - 0.8
    h.heal()
    h.note("healed %.2f s after the cut" % (time.monotonic() - t_cut))
    mine = [own_nodes[i] for i, n in enumerate(("o_stack", "o_free", "o_late")) if n in released]
    left = lambda: [n for n in wait_nodes + mine if n and h.zk.exists(n)]
    h.poll(lambda: not left(), 10)
    h.ok(in_time and not left(),
         "after healing, no node of the ended waits or of the released holds (%s) is left (%s)"
         % (",".join(released), [n.rsplit("/", 1)[1] for n in left()]))
    # b may still be busy with a statement that blocked
    h.poll(lambda: not b.isexecuting(), 15)
    names = lambda: q(b, "SELECT coalesce(string_agg(name, ','), '') FROM zksync_locks()"
                         " WHERE name = ANY(%s)", released)
    gone = bool(released) and h.poll(lambda: names() == "", 10)
    h.ok(gone, "the released holds (%s) are gone from zksync_locks() (%s)"
         % (",".join(released), names()))
    now = q(b, "SELECT session_id FROM zksync_session()")
    h.ok(now == session,
         "B kept its session: the deletes were applied, the session did not end (%s, %s)"
         % (session, now))
    close_quietly(w1, w2, ctl, b, a)


def test_prepare_lost(h):
    """A session lock is lost while a transaction runs (cut past the session
    timeout, healed): PREPARE TRANSACTION fails with the lost-lock ERROR and
    nothing is prepared (SPEC 17)."""
    b = h.connect("B", "prepare")
    q(b, "CREATE TABLE IF NOT EXISTS prep_t (v text)")
    q(b, "TRUNCATE prep_t")
    q(b, "SELECT zksync_write_lock('prep')")
    q(b, "BEGIN")
    q(b, "INSERT INTO prep_t VALUES ('written under the lock')")
    h.cut()
    gone = h.poll(lambda: not h.ephemerals(ROOT + "/locks/prep"), 30)
    h.heal()
    h.ok(gone, "B's session expired while the transaction ran")
    err = error_of(lambda: q(b, "PREPARE TRANSACTION 'zksync_lost_lock'"))
    h.ok(err is not None and '"prep"' in str(err)
         and ("cannot commit" in str(err) or "cannot prepare" in str(err) or "lost" in str(err)),
         "PREPARE TRANSACTION fails, naming the lost lock (%s)" % first_line(err))
    try:
        q(b, "ROLLBACK")
    except psycopg2.Error:
        pass
    check = h.connect("B")
    prepared = q(check, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'zksync_lost_lock'")
    h.ok(prepared == 0, "nothing shows in pg_prepared_xacts (%d)" % prepared)
    if prepared:
        q(check, "ROLLBACK PREPARED 'zksync_lost_lock'")
    h.ok(q(check, "SELECT count(*) FROM prep_t") == 0, "nothing the transaction wrote is visible")
    close_quietly(check, b)


def test_unlock_all_warning(h):
    """A session expires (cut past the timeout, healed) and the client
    learns it, but no call has noticed yet: zksync_unlock_all() and DISCARD
    ALL each give a WARNING naming the lost lock."""
    for sql, name in (("SELECT zksync_unlock_all()", "ua_lost"), ("DISCARD ALL", "da_lost")):
        b = h.connect("B", "unnoticed")
        pid = q(b, "SELECT pg_backend_pid()")
        q(b, "SELECT zksync_write_lock(%s)", name)
        h.cut()
        gone = h.poll(lambda: not h.ephemerals(ROOT + "/locks/" + name), 30)
        h.heal()
        # no query on b may notice the loss first: watch its sockets instead
        learnt = client_settled(h, pid, 20)
        h.ok(gone and learnt, "%s: the session expired; after the heal the client reconnected"
             " and closed its socket (it learnt of the expiry)" % sql)
        early = [n.strip() for n in b.notices]
        del b.notices[:]
        err = error_of(lambda: q(b, sql))
        warnings = [n.strip() for n in b.notices if n.startswith("WARNING")]
        h.ok(err is None and any('"%s"' % name in w for w in warnings),
             "%s warns, naming the lost lock (%s%s)"
             % (sql, warnings or first_line(err), "; before it: %s" % early if early else ""))
        h.ok(q(b, "SELECT count(*) FROM zksync_locks()") == 0, "%s: nothing is left" % sql)
        close_quietly(b)


def test_release_noauth(h):
    """A release that ZooKeeper refuses (ZNOAUTH: the lock's directory made
    world-readable only) is not silent: the unlock warns, and the backend
    closes its session so that its node goes anyway."""
    name = "noauth"
    path = ROOT + "/locks/" + name
    admin = KazooClient(hosts=h.hosts, timeout=10.0, auth_data=[("digest", "faults:admin")])
    admin.start(timeout=30)
    b = h.connect("A", "noauth")
    try:
        q(b, "SELECT zksync_write_lock(%s)", name)
        node = lock_node(b, name)
        admin.set_acls(path, [make_acl("world", "anyone", read=True),
                              make_digest_acl("faults", "admin", all=True)])
        refused = False
        try:
            h.zk.delete(node)
        except NoAuthError:
            refused = True
        h.ok(refused, "the lock's directory now refuses deletes to the world (ZNOAUTH)")
        del b.notices[:]
        t0 = time.monotonic()
        err = error_of(lambda: q(b, "SELECT zksync_write_unlock(%s)", name))
        took = time.monotonic() - t0
        warnings = [n.strip() for n in b.notices if n.startswith("WARNING")]
        base = node.rsplit("/", 1)[1]
        h.ok(any(('"%s"' % name in w) or (base in w) for w in warnings),
             "the refused release warns, naming the lock or node (%.2f s; %s)"
             % (took, warnings or first_line(err) or "silent"))
        # the session is alive (the backend is), so only closing it removes the node
        gone = h.poll(lambda: not h.ephemerals(path), 3.0)
        h.ok(gone, "the backend closed its session: no node left under the lock (%s)"
             % [n.rsplit("/", 1)[1] for n in h.ephemerals(path)])
    finally:
        try:
            admin.set_acls(path, OPEN_ACL_UNSAFE)
        except Exception:
            pass
        admin.stop()
    h.ok(q(b, "SELECT zksync_try_write_lock(%s)", name) is True, "the next call works again")
    close_quietly(b)


def test_soak(h):
    """Randomized soak: zksync backends on both clusters (hand-off on and
    off), a kazoo WriteLock and an Apache Curator write lock queue on one
    lock under random faults; no double grant, stale token, commit under a
    lost lock or orphan node (t/faults/soak.py)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import soak
    soak.run(h, ROOT, h.args.soak_seconds, h.args.soak_seed, h.args.work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scripts", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--zk-dir", required=True)
    ap.add_argument("--zk-port", type=int, required=True)
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--soak-seconds", type=int, default=60, help="faults phase of test_soak")
    ap.add_argument("--soak-seed", type=int, default=0, help="0: a random seed (printed)")
    args = ap.parse_args()
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)

    if subprocess.run(["id", CUT_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        CUT_USER], check=True)
    os.makedirs(args.work, exist_ok=True)
    os.chmod(args.work, 0o755)
    h = Harness(args)
    so = os.path.join(subprocess.run(["pg_config", "--pkglibdir"], capture_output=True,
                                     text=True).stdout.strip(), "zksync.so")
    if os.path.exists(so):
        h.note("installed %s: %d bytes, changed %s UTC" % (
            so, os.path.getsize(so),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(so)))))
    tests = [test_leader_kill, test_partition, test_expiry_idle_in_transaction,
             test_release_while_disconnected, test_kill9_backend, test_reset_during_acquire, test_orphans, test_bad_input, test_acl,
             test_paused_waiter, test_paused_holder, test_outage, test_prepare_lost,
             test_unlock_all_warning, test_release_noauth, test_soak]
    try:
        try:
            h.start_cluster("A", "postgres", args.pg_port)
            h.start_cluster("B", CUT_USER, args.pg_port + 1)
        except Exception as e:
            h.ok(False, "start the two clusters: %r" % e)
            tests = []
        for t in tests:
            if args.only and t.__name__ not in args.only.split(","):
                continue
            h.note("--- " + t.__name__ + ": " + t.__doc__.split("\n")[0])
            t0 = time.time()
            try:
                t(h)
            except Exception as e:   # a broken test is a failed test
                h.ok(False, "%s raised %r" % (t.__name__, e))
                tb = traceback.extract_tb(e.__traceback__)
                h.note("raised at " + " <- ".join("%s:%d" % (f.name, f.lineno) for f in reversed(tb)
                                                  if f.filename.endswith("faults.py")))
            finally:
                h.heal()
            h.note("%s took %.1f s" % (t.__name__, time.time() - t0))
    finally:
        h.heal()
        h.stop_clusters()
        h.zk.stop()
    print("faults: %d passed, %d failed" % (h.n - h.failed, h.failed))
    sys.exit(1 if h.failed else 0)


if __name__ == "__main__":
    main()
