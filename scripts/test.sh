#!/usr/bin/env bash
# Run every zksync test against real parts, from a fresh Debian 12 machine:
# install packages, build and install the extension, start a three-node
# ZooKeeper ensemble and a PostgreSQL 15 cluster (as the postgres user),
# run the pg_regress, isolation and TAP suites, make installcheck with no
# ensemble on a cluster without shared_preload_libraries, the fault tests
# (with a short soak), the demo, the Debian package and the PGXN archive
# (scripts/package.sh) and a short sanitizer run, stop everything.
# Exits non-zero if anything fails.
#
# Environment: ZKSYNC_SKIP_INSTALL=1 skips apt-get; ZKSYNC_SKIP_BUILD=1
# tests the installed extension; ZK_PORT (default 22181) and PGPORT
# (default 55432) keep the test servers apart from others;
# ZKSYNC_SOAK_SECONDS (default 60) is the faults phase of the fault step's
# soak (scripts/soak.sh runs a long one).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/bootstrap.sh
started=$SECONDS

echo "== installing packages"
zks_install_deps

echo "== building"
zks_build --clean --werror

echo "== the house rules of src/ (scripts/check-house.sh: file sizes, headers, layers)"
house=0
if [ "${ZKSYNC_SKIP_BUILD:-0}" != 1 ]; then
  if bash scripts/check-house.sh; then house=ok; else house=bad; fi
fi

# Tests run as postgres (PostgreSQL refuses root) in a copy of the tree,
# kept after the run for its logs.
ZKS_KEEP_WORK=1
zks_workdir test .
export PG_DIR=$work/pg
export ZK_PORT=${ZK_PORT:-22181} PGPORT=${PGPORT:-55432}

echo "== starting ZooKeeper and PostgreSQL"
zks_zk_start
zks_pg_start "$PG_DIR" "$PGPORT"

echo "== running the suites"
log=$work/installcheck.log
set +e
zks_as_pg env PGHOST="$PG_DIR" PGUSER=postgres \
  make -C "$work/src" installcheck 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

echo "== make installcheck with no ensemble, as a packager runs it: a new cluster without shared_preload_libraries, zksync.hosts a closed port"
# The tests that need no ZooKeeper (see Makefile) in a copy of their
# files, so that the suites' results above stay for the summary.
noens_dir=$work/pg-noens noens_port=$((PGPORT + 40))
zks_as_pg mkdir -p "$work/noens"
zks_as_pg cp -r "$work/src/Makefile" "$work/src/sql" "$work/src/expected" "$work/noens/"
zks_clusters+=("$noens_dir $noens_port")
if zks_as_pg env PG_DIR="$noens_dir" PGPORT="$noens_port" PG_PRELOAD= ZK_HOSTS=127.0.0.1:1 \
     "$work/src/scripts/pg.sh" start > "$work/noens.log" 2>&1 &&
   zks_as_pg env -u ZK_HOSTS PGHOST="$noens_dir" PGPORT="$noens_port" PGUSER=postgres \
     make -C "$work/noens" installcheck >> "$work/noens.log" 2>&1; then
  grep -E '^(test|ok|not ok) ' "$work/noens.log" || true
  echo "ok - no-ensemble" >> "$log"
else
  tail -n 30 "$work/noens.log"
  echo "not ok - no-ensemble" | tee -a "$log"
  rc=1
fi
zks_as_pg env PG_DIR="$noens_dir" PGPORT="$noens_port" "$work/src/scripts/pg.sh" stop

echo "== fault tests (as root: iptables, signals to ZooKeeper servers)"
if /usr/bin/python3 "$work/src/t/faults/faults.py" --scripts "$work/src/scripts" --work "$work/faults" \
     --zk-dir "$ZK_DIR" --zk-port "$ZK_PORT" --pg-port $((PGPORT + 20)) \
     --soak-seconds "${ZKSYNC_SOAK_SECONDS:-60}" 2>&1 | tee -a "$log"; then
  :
else
  rc=1
fi

case $house in
  ok) echo "ok - house" >> "$log" ;;
  bad) echo "not ok - house" | tee -a "$log"; rc=1 ;;
esac

echo "== Vagrantfile (not run in CI) is valid Ruby"
if ruby -c "$top/Vagrantfile" >/dev/null; then echo "ok - Vagrantfile" >> "$log"; else echo "not ok - Vagrantfile" | tee -a "$log"; rc=1; fi

echo "== the demo, checked"
if ZKSYNC_SKIP_INSTALL=1 ZKSYNC_SKIP_BUILD=1 DEMO_ZK_PORT=$((ZK_PORT + 10)) DEMO_PORT_A=$((PGPORT + 10)) \
   DEMO_PORT_B=$((PGPORT + 11)) bash "$top/scripts/demo.sh" --check 2>&1 | tee -a "$log"; then
  echo "ok - demo" >> "$log"
else
  echo "not ok - demo" | tee -a "$log"
  rc=1
fi

echo "== the Debian package and the PGXN archive (scripts/package.sh: the .deb installed by apt-get in place of make install's files, a lock cycle on a new cluster, then the build put back)"
if ZKSYNC_RESTORE_FROM="$top" PGPORT=$((PGPORT + 41)) bash "$top/scripts/package.sh" > "$work/package.log" 2>&1; then
  grep '^ok' "$work/package.log"
  echo "ok - package" >> "$log"
else
  tail -n 40 "$work/package.log"
  echo "not ok - package" | tee -a "$log"
  rc=1
fi

echo "== the sanitizer run, short (scripts/asan.sh --quick; its own servers, last: it installs a sanitized build while it runs)"
if ZKSYNC_SKIP_INSTALL=1 ASAN_ZK_PORT=$((ZK_PORT + 20)) ASAN_PG_PORT=$((PGPORT + 30)) \
   bash "$top/scripts/asan.sh" --quick > "$work/asan.log" 2>&1; then
  tail -n 3 "$work/asan.log"
  echo "ok - asan" >> "$log"
else
  tail -n 60 "$work/asan.log"
  echo "not ok - asan" | tee -a "$log"
  rc=1
fi

passed=$(grep -cE '^(ok - (demo|Vagrantfile|asan|house|no-ensemble|package)$|ok [0-9]+ +- |test .* \.\.\. ok|t/.*\.pl \.+ ok)' "$log" || true)
failed=$(grep -cE '^(not ok - (demo|Vagrantfile|asan|house|no-ensemble|package)$|not ok [0-9]+ +- |test .* \.\.\. FAILED|t/.*\.pl \.+ (Dubious|Failed))' "$log" || true)
if [ "$rc" != 0 ]; then
  for f in "$work/src/regression.diffs" "$work/src/output_iso/regression.diffs" "$work/noens/regression.diffs"; do
    [ -s "$f" ] && { echo "== $f"; head -300 "$f"; }
  done
  for f in "$work"/src/tmp_check/log/regress_log_*; do
    [ -f "$f" ] && grep -q "not ok\|Dubious\|died" "$f" && { echo "== $f"; tail -60 "$f"; }
  done
  echo "== server log (tail)"; tail -50 "$PG_DIR/server.log" || true
  [ "$failed" = 0 ] && failed=1
fi
echo "== took $((SECONDS - started)) s"
echo "tests: $passed passed, $failed failed"
exit "$rc"
