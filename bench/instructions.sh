#!/usr/bin/env bash
# Instructions per lock cycle, in one command (as root on Debian 12):
#   bench/instructions.sh [instructions.py options, e.g. --long 2100]
# Installs what is needed, builds and installs zksync and bench/floor.c,
# starts its own three-node ensemble and a PostgreSQL cluster whose server
# runs under valgrind's callgrind, counts what one lock cycle executes
# (zksync from SQL, an advisory lock, the C client's floor: see
# bench/instructions.py), prints the table and writes
# bench/out/instructions.md, then stops what it started.  About five
# minutes.  Environment: BENCH_ZK_PORT (default 42181), BENCH_PG_PORT
# (default 56201), ZKSYNC_SKIP_INSTALL=1, ZKSYNC_SKIP_BUILD=1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/bootstrap.sh
zks_install_deps
zks_build --werror
zks_bench_build

zks_workdir instructions scripts
export ZK_PORT=${BENCH_ZK_PORT:-42181} PG_DIR=$work/pg PGPORT=${BENCH_PG_PORT:-56201}
zks_zk_start

# the server under callgrind: every backend writes $work/cg/cg.PID at exit
mkdir -p "$work/cg"
cat > "$work/postgres-callgrind" <<WRAP
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$work/cg/cg.%p "$(pg_config --bindir)/postgres" "\$@"
WRAP
chmod 755 "$work/postgres-callgrind"
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$work/cg"; fi
zks_clusters+=("$PG_DIR $PGPORT")
zks_as_pg env PG_DIR="$PG_DIR" PGPORT="$PGPORT" PG_POSTGRES="$work/postgres-callgrind" \
  "$work/src/scripts/pg.sh" start
zks_psql "$PG_DIR" "$PGPORT" -q -c "CREATE EXTENSION IF NOT EXISTS zksync"

/usr/bin/python3 bench/instructions.py --pg-host "$PG_DIR" --pg-port "$PGPORT" \
  --zk-host "${ZK_HOSTS%%,*}" --floor bench/out/floor --cg-dir "$work/cg" --out bench/out "$@"
