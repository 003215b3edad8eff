#!/usr/bin/python3
"""A ZooKeeper client for the tests: reads ZooKeeper independently of zksync.

    zkclient.py HOSTS children PATH     children of PATH, one per line
    zkclient.py HOSTS tree PATH         every node below PATH, one per line
    zkclient.py HOSTS ephemerals PATH   every ephemeral node below PATH
    zkclient.py HOSTS lock PATH MODE    kazoo WriteLock/ReadLock on PATH, driven
                                        by stdin lines: "acquire SECONDS",
                                        "release", "quit"; answers on stdout
    zkclient.py HOSTS churn PATH N PGHOST PGPORT
                                        N cycles of the kazoo WriteLock on PATH,
                                        each marking itself in the witness table
                                        wit(writers, readers) of that PostgreSQL
                                        database "postgres"; prints "overlaps K",
                                        K being the cycles that found the lock
                                        already taken by someone else

    zkclient.py HOSTS session -         a kazoo session driven by stdin lines:
                                        "id" (its id, 0x... hex), "create PATH
                                        DATA" (an ephemeral sequential node:
                                        "created FULLPATH CZXID"), "put PATH
                                        DATA" (an ephemeral node, or its data
                                        set: "put"), "puthex PATH HEX" (the
                                        same with the bytes HEX spells: "put"),
                                        "get PATH" ("got HEX CZXID": its data
                                        and czxid, or "none"), "delete PATH"
                                        ("deleted", or "nonode"), "set PATH
                                        DATA" ("set", or "nonode"), "quit";
                                        DATA is the rest of the line

The lock command shares the lock with zksync the way the README tells kazoo
users to: extra_lock_patterns ["__WRIT__", "__READ__"] for the write lock,
["__WRIT__"] for the read lock.
"""
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout, NoNodeError


def walk(zk, path):
    try:
        children = zk.get_children(path)
    except NoNodeError:
        return
    for child in sorted(children):
        full = path.rstrip("/") + "/" + child
        yield full
        yield from walk(zk, full)


def main():
    hosts, command, path = sys.argv[1], sys.argv[2], sys.argv[3]
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=30)
    try:
        if command == "children":
            try:
                for child in sorted(zk.get_children(path)):
                    print(child)
            except NoNodeError:
                pass
        elif command == "tree":
            for node in walk(zk, path):
                print(node)
        elif command == "ephemerals":
            for node in walk(zk, path):
                stat = zk.exists(node)
                if stat is not None and stat.ephemeralOwner:
                    print(node)
        elif command == "lock":
            mode = sys.argv[4]
            if mode == "write":
                lock = zk.WriteLock(path, "kazoo-test",
                                    extra_lock_patterns=["__WRIT__", "__READ__"])
            else:
                lock = zk.ReadLock(path, "kazoo-test",
                                   extra_lock_patterns=["__WRIT__"])
            print("ready", flush=True)
            for line in sys.stdin:
                words = line.split()
                if not words:
                    continue
                if words[0] == "acquire":
                    try:
                        got = lock.acquire(timeout=float(words[1]))
                    except LockTimeout:
                        got = False
                    print("acquired" if got else "timeout", flush=True)
                elif words[0] == "release":
                    lock.release()
                    print("released", flush=True)
                elif words[0] == "quit":
                    break
        elif command == "session":
            print("ready", flush=True)
            for line in sys.stdin:
                words = line.rstrip("\n").split(" ", 2)
                if words[0] == "id":
                    print("id 0x%x" % zk.client_id[0], flush=True)
                elif words[0] == "create":
                    made = zk.create(words[1], words[2].encode(), ephemeral=True,
                                     sequence=True, makepath=True)
                    print("created", made, zk.exists(made).czxid, flush=True)
                elif words[0] in ("put", "puthex"):
                    data = (bytes.fromhex(words[2]) if words[0] == "puthex"
                            else words[2].encode())
                    if zk.exists(words[1]) is None:
                        zk.create(words[1], data, ephemeral=True, makepath=True)
                    else:
                        zk.set(words[1], data)
                    print("put", flush=True)
                elif words[0] == "delete":
                    try:
                        zk.delete(words[1])
                        print("deleted", flush=True)
                    except NoNodeError:
                        print("nonode", flush=True)
                elif words[0] == "set":
                    try:
                        zk.set(words[1], words[2].encode() if len(words) > 2 else b"")
                        print("set", flush=True)
                    except NoNodeError:
                        print("nonode", flush=True)
                elif words[0] == "get":
                    try:
                        data, stat = zk.get(words[1])
                        print("got", data.hex(), stat.czxid, flush=True)
                    except NoNodeError:
                        print("none", flush=True)
                elif words[0] == "quit":
                    break
        elif command == "churn":
            import psycopg2
            n, pghost, pgport = int(sys.argv[4]), sys.argv[5], sys.argv[6]
            conn = psycopg2.connect(host=pghost, port=pgport, dbname="postgres")
            conn.autocommit = True
            cur = conn.cursor()
            lock = zk.WriteLock(path, "kazoo-churn",
                                extra_lock_patterns=["__WRIT__", "__READ__"])
            overlaps = 0
            for _ in range(n):
                lock.acquire(timeout=120)
                cur.execute("UPDATE wit SET writers = writers + 1 WHERE writers = 0 AND readers = 0")
                if cur.rowcount == 1:
                    cur.execute("UPDATE wit SET writers = writers - 1")
                else:
                    overlaps += 1
                lock.release()
            conn.close()
            print("overlaps", overlaps, flush=True)
        else:
            sys.exit("unknown command " + command)
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
