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
#
# Environment: DEMO_ZK_PORT (default 32181), DEMO_PORT_A and DEMO_PORT_B
# (default 55601, 55602); KEEP_DEMO=1 keeps the work directory;
# ZKSYNC_SKIP_INSTALL=1 and ZKSYNC_SKIP_BUILD=1 skip those steps (taken
# only as root).
set -euo pipefail

check=0
[ "${1:-}" = "--check" ] && check=1
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/bootstrap.sh

if [ "$(id -u)" = 0 ]; then
  zks_install_deps
  # shellcheck disable=SC2119  # no options: a plain make, as a user builds
  zks_build
fi

# what the postgres user runs is copied to $work/src
if [ "${KEEP_DEMO:-0}" = 1 ]; then ZKS_KEEP_WORK=1; fi
zks_stop_note="== stopping everything the demo started"
zks_workdir demo scripts demo
export ZK_PORT=${DEMO_ZK_PORT:-32181}

echo "== starting a three-node ZooKeeper ensemble and two PostgreSQL clusters"
zks_zk_start
declare -A port=([A]=${DEMO_PORT_A:-55601} [B]=${DEMO_PORT_B:-55602})
for c in A B; do
  d=$work/$(echo "$c" | tr AB ab)
  zks_pg_start "$d" "${port[$c]}"
  zks_psql "$d" "${port[$c]}" -q -c "CREATE EXTENSION zksync"
done
psql_on() { # cluster, then psql args
  local c=$1; shift
  zks_psql "$work/$(echo "$c" | tr AB ab)" "${port[$c]}" -q "$@"
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
    -v worker="cluster-$c/worker-$w" -f "$work/src/demo/worker.sql" -o /dev/null \
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
