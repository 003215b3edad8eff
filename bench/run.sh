#!/usr/bin/env bash
# The benchmark, in one command (as root on Debian 12):
#   bench/run.sh [--quick]
# Installs what is needed, builds and installs zksync and bench/floor.c,
# starts its own three-node ensemble (fsync on) and PostgreSQL cluster,
# runs bench/bench.py, prints the table and writes bench/out/ (results.md,
# latency.png), then stops what it started.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/install-deps.sh
make -s && make -s install
mkdir -p bench/out
gcc -O2 -Wall -Wextra -Werror -Wno-unused-parameter -o bench/out/floor bench/floor.c -lzookeeper_mt

work=$(mktemp -d /tmp/zksync-bench.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/bin"
cp scripts/zk.sh scripts/pg.sh "$work/bin/"
chown -R postgres: "$work"
export ZK_DIR=$work/zk ZK_PORT=${BENCH_ZK_PORT:-42181} PG_DIR=$work/pg PGPORT=${BENCH_PG_PORT:-56201}
as_pg() { runuser -u postgres -- env ZK_DIR="$ZK_DIR" ZK_PORT="$ZK_PORT" PG_DIR="$PG_DIR" PGPORT="$PGPORT" "$@"; }
cleanup() { set +e; as_pg "$work/bin/pg.sh" stop; as_pg "$work/bin/zk.sh" stop; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

as_pg "$work/bin/zk.sh" start
hosts=$(as_pg "$work/bin/zk.sh" hosts)
as_pg env ZK_HOSTS="$hosts" "$work/bin/pg.sh" start
as_pg "$work/bin/pg.sh" psql -q -c "CREATE EXTENSION IF NOT EXISTS zksync"

machine="Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); ensemble: 3 ZooKeeper $(dpkg-query -W -f '${Version}' zookeeper) servers on loopback, forceSync=yes, data on $(df -h "$work" | awk 'NR==2 {print $1}'); PostgreSQL $(pg_config --version | awk '{print $2}'), fsync off."
args=()
[ "${1:-}" = "--quick" ] && args=(--rounds 2 --cycles 60 --contention-secs 3)
/usr/bin/python3 bench/bench.py --pg-host "$PG_DIR" --pg-port "$PGPORT" --zk-hosts "$hosts" \
  --floor bench/out/floor --out bench/out --machine "$machine" "${args[@]}"
