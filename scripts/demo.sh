#!/usr/bin/env bash
# The main job, for a newcomer: two PostgreSQL clusters coordinate one
# nightly batch job through one ZooKeeper ensemble.
#
#   scripts/demo.sh            install, build, start everything, run, stop
#   scripts/demo.sh --check    the same, then verify the timeline (for CI)
#
# Four workers (two per cluster) wait on an operator's barrier; exactly one
# runs the job under a zksync write lock while the others see it is taken;
# then all four start and end a second phase together (double barrier).
# Everything started here is stopped on exit, also on Ctrl-C.
set -euo pipefail

check=0
[ "${1:-}" = "--check" ] && check=1
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "$(id -u)" = 0 ]; then
  scripts/install-deps.sh
  make -s
  make -s install
fi

work=$(mktemp -d /tmp/zksync-demo.XXXXXX)
chmod 755 "$work"
# what the postgres user runs is copied here: the checkout may not be
# readable by postgres (a clone under /root, say)
mkdir -p "$work/bin"
cp scripts/zk.sh scripts/pg.sh demo/worker.sql "$work/bin/"
export ZK_DIR=$work/zk ZK_PORT=${DEMO_ZK_PORT:-32181}
[ "$(id -u)" = 0 ] && chown -R postgres: "$work"
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- env ZK_DIR="$ZK_DIR" ZK_PORT="$ZK_PORT" "$@"; else "$@"; fi
}
cleanup() {
  set +e
  echo "== stopping everything the demo started"
  as_pg env PG_DIR="$work/a" PGPORT="${DEMO_PORT_A:-55601}" "$work/bin/pg.sh" stop
  as_pg env PG_DIR="$work/b" PGPORT="${DEMO_PORT_B:-55602}" "$work/bin/pg.sh" stop
  as_pg "$work/bin/zk.sh" stop
  jobs -p | xargs -r kill 2>/dev/null
  [ "${KEEP_DEMO:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting a three-node ZooKeeper ensemble and two PostgreSQL clusters"
as_pg "$work/bin/zk.sh" start
hosts=$(as_pg "$work/bin/zk.sh" hosts)
declare -A port=([A]=${DEMO_PORT_A:-55601} [B]=${DEMO_PORT_B:-55602})
for c in A B; do
  d=$work/$(echo "$c" | tr AB ab)
  as_pg env PG_DIR="$d" PGPORT="${port[$c]}" ZK_HOSTS="$hosts" "$work/bin/pg.sh" start
  as_pg env PG_DIR="$d" PGPORT="${port[$c]}" "$work/bin/pg.sh" psql -q -c "CREATE EXTENSION zksync"
done
psql_on() { # cluster, then psql args
  local c=$1; shift
  as_pg env PG_DIR="$work/$(echo "$c" | tr AB ab)" PGPORT="${port[$c]}" "$work/bin/pg.sh" psql -q "$@"
}

night=$(date +%Y%m%d%H%M%S)
n=4
echo "== operator sets the barrier nightly-gate: the batch must not start yet"
psql_on A -At -c "SELECT zksync_barrier_set('nightly-gate')" >/dev/null
start=$(date +%s.%N)
for w in A1 A2 B1 B2; do
  c=${w:0:1}
  psql_on "$c" -v ON_ERROR_STOP=1 \
    -c "SET demo.night = '$night'" -c "SET demo.participants = $n" \
    -v worker="cluster-$c/worker-$w" -f "$work/bin/worker.sql" -o /dev/null \
    > "$work/$w.out" 2> "$work/$w.log" &
done

# the operator waits until all four sit at the gate (an Extension wait)
for _ in $(seq 1 300); do
  waiting=0
  for c in A B; do
    k=$(psql_on "$c" -At -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'")
    waiting=$((waiting + k))
  done
  [ "$waiting" -ge $n ] && break
  sleep 0.1
done
echo "== all $n workers wait at the gate; operator unsets nightly-gate"
op_time=$(date +%s.%N)
psql_on B -At -c "SELECT zksync_barrier_unset('nightly-gate')" >/dev/null
for _ in $(seq 1 100); do
  [ "$(psql_on B -At -c "SELECT count(*) FROM zksync_lock_holders('nightly-job') WHERE granted AND mode = 'write'")" = 1 ] && break
  sleep 0.05
done
echo "== while the job runs, an operator on cluster B asks who holds it:"
psql_on B -c "SELECT mode, granted, owner::json->>'application_name' AS who,
                     owner::json->>'port' AS port, owner::json->>'pid' AS pid
              FROM zksync_lock_holders('nightly-job')"
wait

echo
echo "== timeline (seconds since the start; cluster/worker: event)"
for w in A1 A2 B1 B2; do
  c=${w:0:1}
  sed -n "s/^.*NOTICE:  TL|\([0-9.]*\)|\(.*\)$/\1|cluster-$c\/worker-$w|\2/p" "$work/$w.log"
done | { cat; echo "$op_time|operator|unsets the barrier nightly-gate"; } \
  | sort -t'|' -k1,1n \
  | awk -F'|' -v s="$start" '{ printf "  %6.3f  %-22s %s\n", $1 - s, $2, $3 }' | tee "$work/timeline.txt"

echo
psql_on A -At -c "SELECT zksync_barrier_unset('nightly-job-done-$night')" >/dev/null

if [ $check = 1 ]; then
  fail=0
  runs=$(grep -c 'RUNS THE JOB' "$work/timeline.txt" || true)
  [ "$runs" = 1 ] || { echo "CHECK FAILED: $runs workers ran the job, not 1"; fail=1; }
  # every gate pass comes after the operator's unset
  awk -F'  +' '/operator/ {op=$2+0} /passed the gate/ { if (op == "" || $2+0 < op) bad=1 } END { exit bad }' \
    "$work/timeline.txt" || { echo "CHECK FAILED: a worker passed the gate before the operator"; fail=1; }
  # nobody enters phase 2 before the job finished; nobody leaves before all finished
  awk '{t=$1+0} /job finished/ {jf=t} /entered phase 2/ {if (!jf || t < jf) bad=1; if (t > lastenter) lastenter=t}
       /finished its share/ {if (t > lastshare) lastshare=t}
       /left phase 2/ {if (t < lastshare) bad=1; n++} END {if (n != 4) bad=1; exit bad}' \
    "$work/timeline.txt" || { echo "CHECK FAILED: phases out of order"; fail=1; }
  entered=$(grep -c 'entered phase 2' "$work/timeline.txt" || true)
  [ "$entered" = 4 ] || { echo "CHECK FAILED: $entered workers entered phase 2"; fail=1; }
  for w in A1 A2 B1 B2; do
    grep -q ERROR "$work/$w.log" && { echo "CHECK FAILED: worker $w: $(grep ERROR "$work/$w.log")"; fail=1; }
  done
  if [ $fail = 0 ]; then echo "demo check: 1 job run, gate and phases in order"; fi
  exit $fail
fi
