#!/usr/bin/env python3
"""Instructions per lock cycle, counted by callgrind (bench/instructions.sh).

Time on a shared virtual machine moves by a third from run to run; the
instructions a cycle executes do not.  This counts them for the same three
contenders as the benchmark's "CPU per cycle" table: zksync's cycle from a
client (two prepared statements, synchronous_release on), an advisory-lock
cycle (two prepared statements) and the C client's floor (bench/floor.c
pipelined, its whole process: the multi-threaded client's I/O and
completion threads too).  Each is run twice, SHORT and LONG cycles, in a
process of its own under callgrind, and the difference divided by
LONG - SHORT is what one cycle costs, start-up and warm-up cancelled out
(after a first run of each, whose backend builds the caches that later
backends find ready, and would count them against SHORT).
What the kernel does (system calls, wake-ups, TCP) is not counted: this is
the user-space work only, broken down by the object that executes it.

The PostgreSQL cluster must run under callgrind with its output files in
--cg-dir as cg.PID (instructions.sh starts it so)."""
import argparse
import collections
import os
import re
import subprocess
import sys
import time

import psycopg2

OBJECTS = [("postgres", "PostgreSQL"), ("zksync.so", "zksync"),
           ("libzookeeper", "ZooKeeper client"), ("libc.so", "libc"), ("floor", "floor.c")]
COLUMNS = [label for _, label in OBJECTS] + ["other"]


def object_label(obj):
    base = os.path.basename(obj)
    for prefix, label in OBJECTS:
        if base.startswith(prefix):
            return label
    return "other"


def functions(path):
    """{function (with its object): instructions, exclusive} of one
    callgrind output file."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            name = m.group(2)
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def per_cycle(short, long, cycles):
    """{function: instructions per cycle} between two runs' files."""
    a, b = functions(short), functions(long)
    return {k: (b.get(k, 0) - a.get(k, 0)) / cycles for k in set(a) | set(b)}


def by_object(costs):
    sums = collections.Counter()
    for name, v in costs.items():
        m = re.search(r"\[(.*)\]$", name)
        sums[object_label(m.group(1)) if m else "other"] += v
    return sums


def wait_written(path, pid, timeout=120):
    """Wait until process pid has exited and written its callgrind file."""
    deadline = time.monotonic() + timeout
    while os.path.exists("/proc/%d" % pid) or not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError("no callgrind output %s from process %d" % (path, pid))
        time.sleep(0.2)
    return path


class Run:
    def __init__(self, a):
        self.a = a

    def backend(self, lock, unlock, n):
        """n cycles of two prepared statements in a new backend: its file."""
        c = psycopg2.connect(host=self.a.pg_host, port=self.a.pg_port, user="postgres",
                             dbname="postgres", application_name="bench-instructions")
        c.autocommit = True
        cur = c.cursor()
        cur.execute("SET zksync.root = %s", (self.a.root,))
        cur.execute("SET zksync.hosts = %s", (self.a.zk_host,))
        cur.execute("SET zksync.synchronous_release = on")
        cur.execute("PREPARE l AS " + lock)
        cur.execute("PREPARE u AS " + unlock)
        for _ in range(20):         # the session's connect, and warm-up
            cur.execute("EXECUTE l")
            cur.execute("EXECUTE u")
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        for _ in range(n):
            cur.execute("EXECUTE l")
            cur.execute("EXECUTE u")
        c.close()
        return wait_written(os.path.join(self.a.cg_dir, "cg.%d" % pid), pid)

    def floor(self, n):
        """n cycles of the C floor (pipelined) under callgrind: its file."""
        out = os.path.join(self.a.cg_dir, "floor.%p")
        p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                              self.a.floor, self.a.zk_host, self.a.root + "/locks/floor-instr",
                              "pipelined", str(n)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError("floor under callgrind failed: " + err[-500:])
        return wait_written(out.replace("%p", str(p.pid)), p.pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg-host", required=True)
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--zk-host", required=True, help="one server, host:port")
    ap.add_argument("--floor", required=True)
    ap.add_argument("--cg-dir", required=True)
    ap.add_argument("--root", default="/zksync-bench")
    ap.add_argument("--short", type=int, default=100)
    ap.add_argument("--long", type=int, default=1100)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--out", default=None, help="directory for instructions.md")
    a = ap.parse_args()
    r = Run(a)
    n = a.long - a.short
    contenders = [
        ("zksync", lambda k: r.backend("SELECT zksync_write_lock('instr')",
                                       "SELECT zksync_write_unlock('instr')", k)),
        ("advisory", lambda k: r.backend("SELECT pg_advisory_lock(4539)",
                                         "SELECT pg_advisory_unlock(4539)", k)),
        ("floor", r.floor),
    ]
    costs = {}
    for name, fn in contenders:
        print("  %s: %d and %d cycles under callgrind" % (name, a.short, a.long),
              file=sys.stderr, flush=True)
        fn(20)                  # a first backend builds caches the next ones find
        costs[name] = per_cycle(fn(a.short), fn(a.long), n)

    lines = ["Instructions per lock cycle (callgrind, user space only; %d cycles: "
             "a run of %d less a run of %d)" % (n, a.long, a.short), "",
             "| per cycle | instructions | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    labels = {"zksync": "zksync, two statements", "advisory": "advisory lock, two statements",
              "floor": "C floor (pipelined), whole process"}
    total = {}
    for name, _ in contenders:
        objs = by_object(costs[name])
        total[name] = sum(costs[name].values())
        lines.append("| %s | %.0f | " % (labels[name], total[name])
                     + " | ".join("%.0f" % objs.get(c, 0) for c in COLUMNS) + " |")
    lines += ["", "zksync / (floor + advisory): %.2f; zksync / advisory: %.2f; "
              "(zksync - advisory) / floor: %.2f" % (
                  total["zksync"] / (total["floor"] + total["advisory"]),
                  total["zksync"] / total["advisory"],
                  (total["zksync"] - total["advisory"]) / total["floor"]),
              "", "What zksync's cycle executes beyond the advisory cycle's, by function "
              "(exclusive, per cycle):", ""]
    extra = {k: costs["zksync"].get(k, 0) - costs["advisory"].get(k, 0)
             for k in set(costs["zksync"]) | set(costs["advisory"])}
    for k, v in sorted(extra.items(), key=lambda x: -x[1])[:a.top]:
        lines.append("    %7.0f  %s" % (v, k))
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(os.path.join(a.out, "instructions.md"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
