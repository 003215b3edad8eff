#!/usr/bin/python3
"""Write exact bytes into ZooKeeper, as a careless or hostile client would.

    zkput.py HOSTS < LINES

Each line of stdin is "PATH HEXDATA": PATH is created (persistent, parents made) or, if it exists, its data
set to the bytes HEXDATA spells (hex; "-" for no data).  PATH may hold
%xx escapes for bytes of a node name.  Used by t/022_foreign_data.pl.
"""
import sys
from urllib.parse import unquote

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError


def main():
    zk = KazooClient(hosts=sys.argv[1], timeout=10.0)
    zk.start(timeout=30)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            path, hexdata = line.split()
            path = unquote(path)
            data = b"" if hexdata == "-" else bytes.fromhex(hexdata)
            try:
                zk.create(path, data, makepath=True)
            except NodeExistsError:
                zk.set(path, data)
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
