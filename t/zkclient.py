#!/usr/bin/python3
"""A ZooKeeper client for the tests: reads ZooKeeper independently of zksync.

    zkclient.py HOSTS children PATH     children of PATH, one per line
    zkclient.py HOSTS tree PATH         every node below PATH, one per line
    zkclient.py HOSTS ephemerals PATH   every ephemeral node below PATH
    zkclient.py HOSTS owners PATH       the same, each with its owner's session
                                        (0x... hex)
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

    zkclient.py HOSTS getacl PATH       PATH's ACL, one "scheme:id:perms" a line
                                        (perms as zkCli.sh writes them: cdrwa),
                                        or "none" if there is no PATH
    zkclient.py HOSTS stat PATH         "owner 0x... children N", or "none"
    zkclient.py HOSTS create-open PATH  make PATH (and its parents) persistent,
                                        open to all (world:anyone:cdrwa)
    zkclient.py HOSTS setacl PATH ACL   set PATH's ACL, written as for zkCli.sh's
                                        setAcl ("auth::cdrwa,world:anyone:r")
    zkclient.py HOSTS try OP PATH [DATA]
                                        one write, OP create (a persistent
                                        node), delete, set (its data) or
                                        open (setAcl world:anyone:cdrwa);
                                        prints "ok" or the error's name
                                        (NoAuthError, NoNodeError, ...)

Without credentials, unless ZK_AUTH=user:password is in the environment
(then the client authenticates with that digest identity first).

The lock command shares the lock with zksync the way the README tells kazoo
users to: extra_lock_patterns ["__WRIT__", "__READ__"] for the write lock,
["__WRIT__"] for the read lock.
"""
import os
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, LockTimeout, NoNodeError
from kazoo.security import OPEN_ACL_UNSAFE, make_acl


def perms_text(perms):
    return "".join(letter for bit, letter in ((4, "c"), (8, "d"), (1, "r"), (2, "w"), (16, "a"))
                   if perms & bit)


def parse_acl(text):
    """An ACL as zkCli.sh's setAcl takes it: scheme:id:perms,..."""
    acl = []
    for entry in text.split(","):
        scheme, rest = entry.split(":", 1)
        ident, perms = rest.rsplit(":", 1)
        acl.append(make_acl(scheme, ident, read="r" in perms, write="w" in perms,
                            create="c" in perms, delete="d" in perms, admin="a" in perms))
    return acl


def try_write(zk, op, path, data):
    try:
        if op == "create":
            zk.create(path, data.encode())
        elif op == "delete":
            zk.delete(path)
        elif op == "set":
            zk.set(path, data.encode())
        elif op == "open":
            zk.set_acls(path, OPEN_ACL_UNSAFE)
        else:
            sys.exit("unknown write " + op)
    except KazooException as e:
        return type(e).__name__
    return "ok"


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
    auth = os.environ.get("ZK_AUTH")
    zk = KazooClient(hosts=hosts, timeout=10.0,
                     auth_data=[("digest", auth)] if auth else None)
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
        elif command == "owners":
            for node in walk(zk, path):
                stat = zk.exists(node)
                if stat is not None and stat.ephemeralOwner:
                    print(node, "0x%x" % stat.ephemeralOwner)
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
        elif command == "getacl":
            try:
                acl, _ = zk.get_acls(path)
            except NoNodeError:
                acl = []
                print("none")
            for entry in acl:
                print("%s:%s:%s" % (entry.id.scheme, entry.id.id, perms_text(entry.perms)))
        elif command == "stat":
            stat = zk.exists(path)
            print("none" if stat is None else
                  "owner 0x%x children %d" % (stat.ephemeralOwner, stat.numChildren))
        elif command == "create-open":
            zk.create(path, b"", acl=OPEN_ACL_UNSAFE, makepath=True)
            print("ok")
        elif command == "setacl":
            zk.set_acls(path, parse_acl(sys.argv[4]))
            print("ok")
        elif command == "try":
            # argv: try OP PATH [DATA]
            op, path = sys.argv[3], sys.argv[4]
            print(try_write(zk, op, path, sys.argv[5] if len(sys.argv) > 5 else ""))
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
