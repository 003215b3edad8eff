#!/usr/bin/env bash
# zksync under AddressSanitizer and UndefinedBehaviorSanitizer, in one
# command (as root on Debian 12, as scripts/test.sh):
#
#   scripts/asan.sh [--quick] [--cases N] [--seed S]
#
# Builds the extension with -fsanitize=address,undefined in a copy of the
# tree and installs it, starts its own three-node ZooKeeper ensemble and a
# PostgreSQL cluster whose server runs with the sanitizers' runtime loaded
# first (Debian's postgres binary is not instrumented, so libasan comes in
# through LD_PRELOAD, set only in the server's environment by a wrapper),
# runs the pg_regress, isolation and TAP suites and a fuzz of foreign data
# (t/fuzz/fuzz_foreign.py: owner data, wait records, marks, child names and
# semaphore counts written by a kazoo client), then counts the sanitizer
# reports and backend crashes.  Exits non-zero if any suite fails or there
# is a report.  At the end the normal build is installed again.
#
#   --quick     the build, the pg_regress suite and a short fuzz (for CI)
#   --cases N   fuzz cases (default 3000; 300 with --quick)
#   --seed S    the fuzz's seed (default 1)
#
# Environment: as scripts/test.sh (ZKSYNC_SKIP_INSTALL=1 skips apt-get);
# ASAN_ZK_PORT (default 47181) and ASAN_PG_PORT (default 56501) keep its
# servers apart from others; ZKS_KEEP_WORK=1 keeps the work directory
# (the reports are in its asan-logs/).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
quick=0
cases=
seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --cases) cases=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) sed -n '2,26p' "$0"; exit 2 ;;
  esac
done
[ -n "$cases" ] || cases=$([ $quick = 1 ] && echo 300 || echo 3000)
. scripts/bootstrap.sh
started=$SECONDS

echo "== installing packages"
zks_install_deps

# The sanitizers' runtime of the compiler that builds the extension
libasan=$(readlink -f "$(gcc -print-file-name=libasan.so)")
if [ ! -f "$libasan" ]; then
  echo "asan.sh: no libasan for $(gcc -dumpfullversion) (Debian package libasan8)" >&2
  exit 1
fi

zks_workdir asan .
# ... and a shim that starts it before any other constructor runs
# (scripts/asan_initfirst.c says why)
initfirst=$work/asan_initfirst.so
gcc -shared -fPIC -o "$initfirst" scripts/asan_initfirst.c -Wl,-z,initfirst "$libasan"
export ZK_PORT=${ASAN_ZK_PORT:-47181} PGPORT=${ASAN_PG_PORT:-56501}
export PG_DIR=$work/pg
logs=$work/asan-logs
mkdir -p "$logs"
chmod 777 "$logs"

# Put the normal build back when done (also on failure): an installed
# zksync.so that needs libasan would not load in a server without it.
installed=0
restore_build() {
  [ $installed = 1 ] || return 0
  echo "== installing the normal build again"
  make -s -C "$work/src" clean
  make -s -C "$work/src" WERROR=1 >/dev/null
  make -s -C "$work/src" WERROR=1 install >/dev/null
}
asan_cleanup() {
  local rc=$?
  set +e
  zks_cleanup_asan_note
  ( restore_build )
  zks_cleanup
  exit $rc
}
zks_cleanup_asan_note() { :; }
trap asan_cleanup EXIT

echo "== building with -fsanitize=address,undefined"
sanflags="-fsanitize=address,undefined -fno-omit-frame-pointer -g"
make -s -C "$work/src" clean
make -s -C "$work/src" WERROR=1 COPT="$sanflags"
installed=1
make -s -C "$work/src" WERROR=1 COPT="$sanflags" install
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$work/src"; fi
# (ldd's output is read whole first: grep -q stops at the first match, and
# under pipefail the SIGPIPE that ldd may then get would fail the test)
needed=$(ldd "$work/src/zksync.so")
if ! grep -q libasan <<< "$needed"; then
  echo "asan.sh: zksync.so is not linked with libasan" >&2
  exit 1
fi

# A bin directory whose postgres runs the real one with the runtime
# preloaded.  pg_ctl is copied (it starts the postgres next to itself);
# the rest are links.  pg_regress, the TAP suites (PostgreSQL::Test::Cluster
# runs pg_ctl from PATH) and scripts/pg.sh all use this directory.
realbin=$(pg_config --bindir)
wrap=$work/asan-bin
mkdir -p "$wrap"
for f in "$realbin"/*; do
  case "$(basename "$f")" in
    postgres) ;;
    pg_ctl) cp "$f" "$wrap/pg_ctl" ;;
    *) ln -s "$f" "$wrap/$(basename "$f")" ;;
  esac
done
cat > "$wrap/postgres" <<EOF
#!/bin/sh
# postgres with the sanitizers' runtime loaded first (scripts/asan.sh).
# detect_leaks=0: PostgreSQL frees by memory context and exit, not free().
# abort_on_error=1: a backend that fails a check dies by SIGABRT, so the
# postmaster resets shared memory as after any crash (an exit code 1 would
# pass for a FATAL and leave its shared state behind); the report is in
# the log directory.
export LD_PRELOAD=$libasan:$initfirst
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:disable_coredump=1:halt_on_error=1:verify_asan_link_order=0:log_path=$logs/asan:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0:log_path=$logs/ubsan
exec $realbin/postgres "\$@"
EOF
chmod 755 "$wrap/postgres"
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$wrap" "$logs"; fi

echo "== starting ZooKeeper and PostgreSQL (sanitized)"
zks_zk_start
zks_clusters+=("$PG_DIR $PGPORT")
zks_as_pg env PG_DIR="$PG_DIR" PGPORT="$PGPORT" PGBIN="$wrap" "$work/src/scripts/pg.sh" start
if ! grep -q "$libasan" "/proc/$(head -1 "$PG_DIR/data/postmaster.pid")/maps"; then
  echo "asan.sh: the server does not run with $libasan" >&2
  exit 1
fi

log=$work/asan.log
: > "$log"
rc=0
suites="pg_regress"
echo "== the suites"
if [ $quick = 1 ]; then
  zks_as_pg env PATH="$wrap:$PATH" PGHOST="$PG_DIR" PGUSER=postgres \
    make -C "$work/src" installcheck bindir="$wrap" ISOLATION= TAP_TESTS= 2>&1 | tee -a "$log" \
    || rc=1
else
  suites="pg_regress, isolation, TAP"
  zks_as_pg env PATH="$wrap:$PATH" PGHOST="$PG_DIR" PGUSER=postgres \
    make -C "$work/src" installcheck bindir="$wrap" 2>&1 | tee -a "$log" \
    || rc=1
fi

echo "== the fuzz of foreign data ($cases cases, seed $seed)"
zks_as_pg env PGHOST="$PG_DIR" PGPORT="$PGPORT" PGUSER=postgres \
  /usr/bin/python3 "$work/src/t/fuzz/fuzz_foreign.py" --hosts "$ZK_HOSTS" \
  --root /zksync-fuzz --cases "$cases" --seed "$seed" \
  --server-log "$PG_DIR/server.log" 2>&1 | tee -a "$log" || rc=1

# Stop the servers first: a report is written when a process ends too.
zks_as_pg env PG_DIR="$PG_DIR" PGPORT="$PGPORT" "$work/src/scripts/pg.sh" stop
zks_clusters=()

reports=$(cat "$logs"/* 2>/dev/null | grep -cE '^==[0-9]+==ERROR: |runtime error: ' || true)
crashes=$(cat "$PG_DIR/server.log" "$work"/src/tmp_check/log/*.log 2>/dev/null \
  | grep -cE 'terminated by signal|was terminated by exception|TRAP: ' || true)
fuzzed=$(sed -n 's/^# fuzz: \([0-9]*\) cases.*/\1/p' "$log" | tail -1)
passed=$(grep -cE '^(ok - fuzz of foreign data$|test .* \.\.\. ok|t/.*\.pl \.+ ok)' "$log" || true)
failed=$(grep -cE '^(not ok - fuzz of foreign data$|test .* \.\.\. FAILED|t/.*\.pl \.+ (Dubious|Failed))' "$log" || true)
if [ "$reports" != 0 ]; then
  echo "== sanitizer reports (first 200 lines)"
  cat "$logs"/* | head -200 || true
  rc=1
fi
if [ "$crashes" != 0 ]; then
  grep -hE 'terminated by signal|was terminated by exception|TRAP: ' \
    "$PG_DIR/server.log" "$work"/src/tmp_check/log/*.log 2>/dev/null | head -20 || true
  rc=1
fi
if [ $rc != 0 ]; then
  for f in "$work/src/regression.diffs" "$work/src/output_iso/regression.diffs"; do
    if [ -s "$f" ]; then echo "== $f"; head -100 "$f" || true; fi
  done
  [ "$failed" = 0 ] && [ "$reports" = 0 ] && [ "$crashes" = 0 ] && failed=1
  ZKS_KEEP_WORK=1
  zks_cleanup_asan_note() { echo "asan.sh: kept $work (reports: $logs)"; }
fi
echo "== took $((SECONDS - started)) s"
echo "asan: suites $suites; tests: $passed passed, $failed failed; fuzz cases: ${fuzzed:-0}; sanitizer reports: $reports; crashes: $crashes"
exit $rc
