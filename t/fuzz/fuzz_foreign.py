#!/usr/bin/python3
"""Fuzz zksync with foreign data: a careless or hostile ZooKeeper client.

    fuzz_foreign.py --hosts H [--root /zksync-fuzz] [--cases N] [--seed S]
                    [--batch B] [--server-log FILE]

PostgreSQL is reached through libpq's environment (PGHOST, PGPORT, PGUSER);
the server must have zksync (it is created in "postgres", a UTF8 database,
and in a LATIN1 database the fuzz makes).  A kazoo client writes, case by
case, mutated, truncated, oversized (100 KB), invalid-UTF-8, NUL-holding,
deeply nested and unterminated JSON, and odd child names, into

    {root}/locks/{name}/...                     contenders' owner data
    {root}/semaphores/{name}                    a semaphore's recorded count
    {root}/semaphores/{name}/leases/..., locks/...  leases and mutex contenders
    {root}/waits/{session}                      wait records
    {root}/deadlocks/{session}                  deadlock marks
    {root}/locks/{odd name}                     odd lock names

and after each batch of B cases (default 10) calls every view
(zksync_waits(), zksync_blocking(pid), zksync_lock_holders(name),
zksync_semaphore_leases(name), zksync_locks()) in both databases, and a
lock and a semaphore acquire with a short timeout (deadlock_timeout short,
so the deadlock scan reads the records and marks).  It checks that the
server is still up and no backend died (no "terminated by signal" in the
server log), that every ERROR is a clean one with a SQLSTATE (no XX000,
none of class 22021 "invalid byte sequence"), and that every text returned
and every message is valid UTF-8.  Deterministic for a seed.  Prints
"# fuzz: N cases, ..." and exits 1 on any failure.
"""
import argparse
import random
import sys
import time

import psycopg2
from kazoo.client import KazooClient
from kazoo.exceptions import (BadArgumentsError, NoNodeError, NodeExistsError,
                              ZookeeperError)

LOCKS = ["f0", "f1", "f2"]
SEMAPHORES = ["s0", "s1"]

# bytes that break UTF-8 or C strings
BAD_BYTES = [b"\x00", b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80",
             b"\xc0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xbf\xbf", b"\xf8\x88\x80\x80\x80"]
# JSON escapes, whole and broken
ESCAPES = [b"\\u", b"\\u0", b"\\u00", b"\\u00e", b"\\u00e9", b"\\ud800", b"\\udc00",
           b"\\ud83d\\ude00", b"\\ud800\\u0041", b"\\u0000", b"\\", b"\\x41", b"\\\"",
           b"\\n", b"\\uZZZZ", b"\\u20ac"]
NUMBERS = [b"0", b"-1", b"1", b"2147483647", b"2147483648", b"4294967297",
           b"-2147483649", b"99999999999999999999999", b"1e9", b"0x10", b"1.5",
           b"", b"null", b"true", b"\"5\"", b"5x", b"--1", b"9" * 400, b"-"]


class Failure(Exception):
    pass


class Fuzz:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.root = args.root.rstrip("/")
        self.cases = 0
        self.batches = 0
        self.refused = 0            # writes ZooKeeper itself refused
        self.errors = {}            # SQLSTATE -> count of clean errors
        self.failures = []
        self.log_offset = 0
        self.created = []
        self.zk = KazooClient(hosts=args.hosts, timeout=10.0)
        self.zk.start(timeout=30)
        self.zk.ensure_path(self.root)
        self.conns = {}

    # ---------------------------------------------------------- PostgreSQL
    def conn(self, db):
        c = self.conns.get(db)
        if c is None or c.closed:
            c = psycopg2.connect(dbname=db)
            c.autocommit = True
            with c.cursor() as cur:
                cur.execute("SET client_encoding = 'UTF8'")
                cur.execute("SET zksync.root = %s", (self.root,))
                cur.execute("SET deadlock_timeout = '10ms'")
            self.conns[db] = c
        return c

    def setup_databases(self):
        c = psycopg2.connect(dbname="postgres")
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS zksync")
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'fuzz_latin1'")
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE fuzz_latin1 ENCODING 'LATIN1' "
                            "TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
        c.close()
        c = psycopg2.connect(dbname="fuzz_latin1")
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS zksync")
        c.close()

    def fail(self, what):
        self.failures.append(what)
        print("not ok - %s" % what, flush=True)

    def check_text(self, where, value):
        """A value psycopg2 decoded: it must be text that survived strict UTF-8."""
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                self.fail("%s: returned text is not valid UTF-8: %r" % (where, value[:80]))

    def run(self, db, sql, params=None):
        """Run one statement; a clean ERROR is counted, anything else fails."""
        try:
            c = self.conn(db)
        except psycopg2.Error as e:
            self.fail("%s: cannot connect: %s" % (db, str(e).strip()[:200]))
            return None
        try:
            with c.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            for row in rows:
                for v in row:
                    self.check_text("%s: %s" % (db, sql), v)
            return rows
        except UnicodeDecodeError as e:
            self.fail("%s: %s: text is not valid UTF-8: %s" % (db, sql, e))
            self.reset(db)
        except psycopg2.Error as e:
            code = e.pgcode
            if code is None:
                self.fail("%s: %s: no SQLSTATE (server gone?): %s" % (db, sql, str(e).strip()[:300]))
                self.reset(db)
                return None
            for part in (e.pgerror, e.diag.message_primary, e.diag.message_detail):
                self.check_text("%s: %s: message" % (db, sql), part)
            if code.startswith("XX") or code == "22021":
                self.fail("%s: %s: ERROR %s: %s" % (db, sql, code, (e.pgerror or "").strip()[:300]))
            else:
                self.errors[code] = self.errors.get(code, 0) + 1
        return None

    def reset(self, db):
        c = self.conns.pop(db, None)
        if c is not None:
            try:
                c.close()
            except psycopg2.Error:
                pass

    def check_log(self):
        if not self.args.server_log:
            return
        try:
            with open(self.args.server_log, "rb") as f:
                f.seek(self.log_offset)
                new = f.read()
                self.log_offset = f.tell()
        except OSError:
            return
        for line in new.split(b"\n"):
            if b"terminated by signal" in line or b"TRAP:" in line:
                self.fail("server log: %s" % line.decode("utf-8", "replace")[:300])

    # ----------------------------------------------------------- the data
    def uuid(self):
        h = "%032x" % self.rng.getrandbits(128)
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    def json_str(self, s):
        return b'"' + s + b'"'

    def base_owner(self, extra=()):
        r = self.rng
        members = [
            (b"host", self.json_str(b"fuzzhost")),
            (b"port", b"5432"),
            (b"database", self.json_str(b"postgres")),
            (b"pid", str(r.randint(1, 99999)).encode()),
            (b"application_name", self.json_str(b"fuzz")),
            (b"cluster", self.json_str(str(r.getrandbits(63)).encode())),
            (b"backend_start", self.json_str(b"2026-01-01 00:00:00+00")),
        ]
        members.extend(extra)
        return members

    def mutate_value(self, v):
        r = self.rng
        k = r.randrange(9)
        if k == 0:
            return r.choice(NUMBERS)
        if k == 1:
            return self.json_str(v.strip(b'"') + r.choice(ESCAPES) + r.choice([b"", b"x", b"41"]))
        if k == 2:
            return self.json_str(r.choice(BAD_BYTES) + v.strip(b'"') + r.choice(BAD_BYTES))
        if k == 3:
            return self.json_str(bytes(r.randrange(256) for _ in range(r.randrange(1, 40))))
        if k == 4:
            return self.json_str(b"x" * r.choice([700, 5000, 100 * 1024]))
        if k == 5:
            n = r.choice([10, 1000, 30000])
            return r.choice([b"[", b"{\"a\":", b"[{\"b\":"]) * n
        if k == 6:
            return b'"' + v.strip(b'"')          # unterminated
        if k == 7:
            return b"{\"nested\":" + v + b"}"
        return v

    def render(self, members):
        r = self.rng
        parts = []
        for key, value in members:
            if r.random() < 0.25:
                value = self.mutate_value(value)
            if r.random() < 0.05:
                key = key[:1] + b"\\u00" + b"%02x" % key[1] + key[2:]     # an escaped key
            parts.append(self.json_str(key) + r.choice([b":", b" : ", b":\n"]) + value)
            if r.random() < 0.05:
                parts.append(parts[-1])                                  # a duplicate
        if r.random() < 0.3:
            r.shuffle(parts)
            # the reader only takes owner data that starts with {"host":
            host = [p for p in parts if p.startswith(b'"host"')]
            if host and r.random() < 0.7:
                parts.remove(host[0])
                parts.insert(0, host[0])
        data = b"{" + b",".join(parts) + b"}"
        return self.mutate_bytes(data)

    def mutate_bytes(self, data):
        r = self.rng
        k = r.randrange(10)
        if k == 0 and data:
            return data[:r.randrange(len(data))]                # truncated anywhere
        if k == 1 and data:
            # truncated right after an escape's start
            i = data.find(b"\\u")
            return data[:i + r.randrange(2, 5)] if i >= 0 else data[:-1]
        if k == 2 and data:
            b = bytearray(data)
            for _ in range(r.randrange(1, 8)):
                b[r.randrange(len(b))] = r.randrange(256)
            return bytes(b)
        if k == 3 and data:
            i = r.randrange(len(data))
            return data[:i] + r.choice(BAD_BYTES + ESCAPES) + data[i:]
        if k == 4:
            return bytes(r.randrange(256) for _ in range(r.randrange(0, 64)))
        if k == 5:
            return r.choice([b"", b"{", b"{\"host\":", b"{\"host\":\"\\u", b"{\"host\":\"x\\u4\"",
                             b"{\"host\":\"a\",\"pid\":", b"\x00" * 10, b"{\"host\":\"\x00\"}"])
        if k == 6:
            return data + b"\x00" + data                         # NUL inside
        return data

    def child_name(self, tag, seq=True):
        """A contender's name: mostly zksync/Curator-like, sometimes odd."""
        r = self.rng
        k = r.randrange(12)
        base = "_c_%s-%s" % (self.uuid(), tag)
        if k == 0:
            return base + "n" * 700, True                       # long, sequential
        if k == 1:
            return base + "12345678901", False                  # 11 digits
        if k == 2:
            return base + "-000000001", False                   # negative-looking
        if k == 3:
            return "no-sequence-" + self.uuid(), False
        if k == 4:
            return "é€ü-" + tag, True                           # non-ASCII
        if k == 5:
            return "__lock__", True                             # kazoo's marker
        if k == 6:
            return base + "9999999999", False                   # the largest sequence
        return base, True

    # ------------------------------------------------------------ writing
    def put(self, path, data, ephemeral=False, sequence=False):
        """Write one case; returns the path written, or None if refused."""
        self.cases += 1
        try:
            p = self.zk.create(path, data, ephemeral=ephemeral, sequence=sequence,
                               makepath=True)
        except NodeExistsError:
            try:
                self.zk.set(path, data)
                p = path
            except ZookeeperError:
                self.refused += 1
                return None
        except (BadArgumentsError, ZookeeperError, UnicodeError, ValueError):
            self.refused += 1
            return None
        self.created.append(p)
        return p

    def one_case(self):
        r = self.rng
        k = r.randrange(8)
        if k <= 1:
            # a lock contender with owner data
            lock = r.choice(LOCKS)
            tag = r.choice(["__WRIT__", "__READ__", "write-", "read-", "__rlock__"])
            name, seq = self.child_name(tag)
            self.put("%s/locks/%s/%s" % (self.root, lock, name),
                     self.render(self.base_owner()), ephemeral=True, sequence=seq)
        elif k == 2:
            # a lease or a semaphore's mutex contender
            sem = r.choice(SEMAPHORES)
            sub, tag = r.choice([("leases", "lease-"), ("locks", "lock-")])
            name, seq = self.child_name(tag)
            self.put("%s/semaphores/%s/%s/%s" % (self.root, sem, sub, name),
                     self.render(self.base_owner()), ephemeral=True, sequence=seq)
        elif k == 3:
            # a semaphore's recorded count
            sem = r.choice(SEMAPHORES)
            count = r.choice(NUMBERS + [b"1", b"2", b"3"])
            data = self.mutate_bytes(b"{\"max_leases\":" + count + b"}") \
                if r.random() < 0.5 else b"{\"max_leases\":" + count + b"}"
            self.cases += 1
            path = "%s/semaphores/%s" % (self.root, sem)
            try:
                self.zk.ensure_path(path)
                self.zk.set(path, data)
            except ZookeeperError:
                self.refused += 1
        elif k == 4:
            # a wait record, for a made-up session or a real one
            session = r.choice(self.sessions + ["0x%x" % r.getrandbits(56), "0x0", "x", "0x" + "f" * 40])
            lock = r.choice(LOCKS)
            node = "%s/locks/%s/_c_%s-__WRIT__%010d" % (self.root, lock, self.uuid(), r.randrange(100))
            extra = [(b"kind", self.json_str(b"lock")), (b"what", self.json_str(b"write lock")),
                     (b"name", self.json_str(lock.encode())), (b"node", self.json_str(node.encode())),
                     (b"czxid", str(r.getrandbits(40)).encode()),
                     (b"leaving", self.json_str(b"/a\\n/b"))]
            self.put("%s/waits/%s" % (self.root, session),
                     self.render(self.base_owner(extra)), ephemeral=True)
        elif k == 5:
            # a deadlock mark
            session = r.choice(self.sessions + ["0x%x" % r.getrandbits(56)])
            data = self.mutate_bytes(r.choice([b"x", b"Process 1 on cluster 2 waits for zksync write lock \"f0\"",
                                               bytes(r.randrange(256) for _ in range(100))]))
            self.put("%s/deadlocks/%s" % (self.root, session), data, ephemeral=True)
        elif k == 6:
            # an odd lock name (a directory under locks/) with a contender
            name = r.choice(["n" * 700, "é" * 100, "-1", "00000000001", " ", "x" * 199, "x" * 201,
                             "zksync\u00e9", "\u20ac\u20ac"])
            child, seq = self.child_name("__WRIT__")
            self.put("%s/locks/%s/%s" % (self.root, name, child),
                     self.render(self.base_owner()), ephemeral=True, sequence=seq)
        else:
            # plain random bytes as a contender's data
            lock = r.choice(LOCKS)
            self.put("%s/locks/%s/_c_%s-__READ__" % (self.root, lock, self.uuid()),
                     bytes(r.randrange(256) for _ in range(r.choice([0, 1, 16, 300, 100 * 1024]))),
                     ephemeral=True, sequence=True)

    # ------------------------------------------------------------ checking
    def check_batch(self):
        r = self.rng
        for db in ("postgres", "fuzz_latin1"):
            self.run(db, "SELECT * FROM zksync_waits()")
            self.run(db, "SELECT * FROM zksync_locks()")
            self.run(db, "SELECT * FROM zksync_blocking(pg_backend_pid())")
            rows = self.run(db, "SELECT DISTINCT pid FROM zksync_waits() WHERE pid IS NOT NULL LIMIT 3") or []
            for (pid,) in rows:
                self.run(db, "SELECT * FROM zksync_blocking(%s)", (pid,))
            for lock in LOCKS:
                self.run(db, "SELECT * FROM zksync_lock_holders(%s)", (lock,))
            for sem in SEMAPHORES:
                self.run(db, "SELECT * FROM zksync_semaphore_leases(%s)", (sem,))
            # the views' text is valid in the database encoding, checked there too
            self.run(db, "SELECT count(*) FROM zksync_waits() w "
                         "WHERE convert_from(convert_to(w::text, 'UTF8'), 'UTF8') IS NULL")
        db = r.choice(["postgres", "fuzz_latin1"])
        lock = r.choice(LOCKS)
        got = self.run(db, "SELECT zksync_try_write_lock(%s, %s)", (lock, r.choice([0, 50, 150])))
        if got and got[0][0]:
            self.run(db, "SELECT zksync_write_unlock(%s)", (lock,))
        sem = r.choice(SEMAPHORES)
        got = self.run(db, "SELECT zksync_semaphore_acquire(%s, %s, %s)",
                       (sem, r.choice([1, 2, 3]), r.choice([0, 50, 150])))
        if got and got[0][0]:
            self.run(db, "SELECT zksync_semaphore_release(%s)", (sem,))
        # the server is up
        try:
            c = psycopg2.connect(dbname="postgres")
            c.close()
        except psycopg2.Error as e:
            self.fail("the server does not answer: %s" % str(e).strip()[:200])
        self.check_log()

    def clean_batch(self):
        for p in reversed(self.created):
            try:
                self.zk.delete(p)
            except (NoNodeError, ZookeeperError):
                pass
        self.created = []

    def known_sessions(self):
        """The ZooKeeper sessions of our backends, for records and marks."""
        out = []
        for db in ("postgres", "fuzz_latin1"):
            rows = self.run(db, "SELECT session_id FROM zksync_session()") or []
            out += [s for (s,) in rows if s]
        return out

    def main(self):
        self.setup_databases()
        # connect each backend to ZooKeeper once, so that it has a session
        for db in ("postgres", "fuzz_latin1"):
            self.run(db, "SELECT zksync_try_write_lock('f0', 0)")
            self.run(db, "SELECT zksync_unlock_all()")
        self.sessions = self.known_sessions()
        started = time.time()
        while self.cases < self.args.cases:
            target = min(self.args.cases, self.cases + self.args.batch)
            while self.cases < target:
                self.one_case()
            self.batches += 1
            self.check_batch()
            self.clean_batch()
            if self.batches % 20 == 0:
                self.sessions = self.known_sessions()
                print("# fuzz: %d cases so far, %d failures" % (self.cases, len(self.failures)),
                      flush=True)
            if len(self.failures) > 50:
                break
        try:
            self.zk.delete(self.root, recursive=True)
        except ZookeeperError:
            pass
        self.zk.stop()
        self.zk.close()
        errs = ", ".join("%s x%d" % kv for kv in sorted(self.errors.items())) or "none"
        print("# fuzz: %d cases in %d batches, %.0f s, seed %d; refused by ZooKeeper: %d; "
              "clean errors: %s; failures: %d"
              % (self.cases, self.batches, time.time() - started, self.args.seed,
                 self.refused, errs, len(self.failures)), flush=True)
        print("%s - fuzz of foreign data" % ("ok" if not self.failures else "not ok"), flush=True)
        return 1 if self.failures else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hosts", required=True)
    p.add_argument("--root", default="/zksync-fuzz")
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--server-log")
    args = p.parse_args()
    sys.exit(Fuzz(args).main())


if __name__ == "__main__":
    main()
