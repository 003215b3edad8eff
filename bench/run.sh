#!/usr/bin/env bash
# The benchmark, in one command (as root on Debian 12):
#   bench/run.sh [--quick] [bench.py options, e.g. --only operators]
# Installs what is needed, builds and installs zksync and bench/floor.c,
# starts its own three-node ensemble (fsync on) and PostgreSQL cluster,
# runs bench/bench.py, prints the table and writes bench/out/ (results.md,
# latency.png), then stops what it started.
# Environment: BENCH_ZK_PORT (default 42181), BENCH_PG_PORT (default 56201),
# BENCH_CONTAINER_CHECK_MS (how often the ensemble reaps empty lock
# directories; default 3600000, an hour: none during a run.  A reaper pass
# deletes the emptied directories of names just used one by one, 6 ms
# apart, and one that lands in a timed run of the 1000-name phase makes
# that run remake tens of them, at random between contenders; the tests'
# ensemble reaps every second, and the tests cover that race),
# ZKSYNC_SKIP_INSTALL=1, ZKSYNC_SKIP_BUILD=1 (benchmark the installed zksync).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/bootstrap.sh
zks_install_deps
zks_build --werror
zks_bench_build

zks_workdir bench scripts
export ZK_PORT=${BENCH_ZK_PORT:-42181} PG_DIR=$work/pg PGPORT=${BENCH_PG_PORT:-56201}
export ZK_CONTAINER_CHECK_MS=${BENCH_CONTAINER_CHECK_MS:-3600000}

zks_zk_start
zks_pg_start "$PG_DIR" "$PGPORT"
zks_psql "$PG_DIR" "$PGPORT" -q -c "CREATE EXTENSION IF NOT EXISTS zksync"

machine="Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); ensemble: 3 ZooKeeper $(dpkg-query -W -f '${Version}' zookeeper) servers on loopback, forceSync=yes, empty containers reaped every $((ZK_CONTAINER_CHECK_MS / 1000)) s, data on $(df -h "$work" | awk 'NR==2 {print $1}'); PostgreSQL $(pg_config --version | awk '{print $2}'), fsync off."
args=()
if [ "${1:-}" = "--quick" ]; then args=(--rounds 2 --cycles 60 --contention-secs 3); shift; fi
args+=("$@")
/usr/bin/python3 bench/bench.py --pg-host "$PG_DIR" --pg-port "$PGPORT" --zk-hosts "$ZK_HOSTS" \
  --floor bench/out/floor --sqlcycle bench/out/sqlcycle --out bench/out --machine "$machine" "${args[@]}"
