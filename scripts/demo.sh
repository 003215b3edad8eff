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
# Then a mistake a DBA meets one day: a job on cluster A takes lock
# "accounts" then "ledger" while a job on cluster B takes "ledger" then
# "accounts".  Each cluster alone sees nothing wrong; after deadlock_timeout
# zksync finds the cycle through ZooKeeper, one job gets ERROR 40P01
# "deadlock detected" with both waits in its DETAIL and runs again, the
# other finishes.  An operator looks at zksync_waits() and zksync_blocking()
# while both wait, and the demo prints what log_lock_waits wrote.
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

# ---- part 2: a deadlock across the two clusters ----
echo "== part 2: job cluster-A/rebuild takes write lock \"accounts\" then \"ledger\", job cluster-B/audit"
echo "   takes \"ledger\" then \"accounts\" (each in one transaction, deadlock_timeout = 2s, log_lock_waits = on)"
stamp() { # each line read, as "epoch|job|line", as it comes
  local line
  while IFS= read -r line; do printf '%s|%s|%s\n' "$EPOCHREALTIME" "$1" "$line"; done
}
declare -A first=([A]=accounts [B]=ledger) second=([A]=ledger [B]=accounts) job=([A]=cluster-A/rebuild [B]=cluster-B/audit)
log_from=()
for c in A B; do log_from+=("$(wc -l < "$work/$(echo "$c" | tr AB ab)/server.log")"); done
start2=$EPOCHREALTIME
for c in A B; do
  psql_on "$c" -v job="${job[$c]}" -v first="${first[$c]}" -v second="${second[$c]}" \
    -v gate="both-hold-their-first-lock-$night" -o /dev/null < "$work/src/demo/deadlock.sql" 2>&1 \
    | stamp "${job[$c]}" > "$work/deadlock-$c.log" &
done
# the operator, on cluster A, while both jobs wait (before deadlock_timeout)
for _ in $(seq 1 100); do
  [ "$(psql_on A -At -c "SELECT count(*) FROM zksync_waits() WHERE name IN ('accounts', 'ledger') AND NOT granted")" = 2 ] && break
  sleep 0.05
done
echo "== both jobs wait; an operator on cluster A looks at every zksync wait, on both clusters:"
psql_on A -c "SELECT name, mode, granted, cluster, port, pid, application_name, wait_start
              FROM zksync_waits() WHERE name IN ('accounts', 'ledger') ORDER BY name, wait_start"
echo "== and at what blocks the job of cluster A (zksync_blocking, like pg_blocking_pids):"
psql_on A -c "SELECT b.* FROM pg_stat_activity a, zksync_blocking(a.pid) b
              WHERE a.application_name = 'cluster-A/rebuild'"
wait
echo "== part 2 timeline (seconds since part 2 began; what each job's psql printed)"
sort -s -t'|' -k1,1n "$work/deadlock-A.log" "$work/deadlock-B.log" \
  | awk -F'|' -v s="$start2" '{ line = substr($0, length($1) + length($2) + 3); printf "  %6.3f  %-18s %s\n", $1 - s, $2, line }' \
  | tee "$work/deadlock-timeline.txt"
echo
echo "== what the server logs say (log_lock_waits = on; STATEMENT lines left out)"
i=0
for c in A B; do
  tail -n +"$((log_from[i] + 1))" "$work/$(echo "$c" | tr AB ab)/server.log" \
    | awk -v app="${job[$c]}" '/^\t/ { if (keep) print; next } { keep = index($0, " " app " ") > 0 && $0 !~ /STATEMENT:/; if (keep) print }' \
    | sed "s/^/  cluster $c: /" | tee -a "$work/deadlock-serverlog.txt"
  i=$((i + 1))
done
echo

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
  # part 2: exactly one job is the deadlock's victim, with both waits in its DETAIL; both finish
  tl=$work/deadlock-timeline.txt
  victims=$(grep -c 'ERROR:  deadlock detected' "$tl" || true)
  [ "$victims" = 1 ] || { echo "CHECK FAILED: $victims jobs got \"deadlock detected\", not 1"; fail=1; }
  [ "$(grep -c 'ERROR:' "$tl" || true)" = 1 ] || { echo "CHECK FAILED: other ERRORs in part 2: $(grep 'ERROR:' "$tl")"; fail=1; }
  grep -q 'SQLSTATE 40P01' "$tl" || { echo "CHECK FAILED: the victim did not see SQLSTATE 40P01"; fail=1; }
  # a cluster is named by its cluster_name (host:port when unset, as here) and system identifier
  waits=$(grep -cE '(DETAIL:  )?Process [0-9]+ on cluster "[^"]+" \([0-9]+\) waits for zksync write lock "(accounts|ledger)"; blocked by process [0-9]+ on cluster "[^"]+" \([0-9]+\)\.$' "$tl" || true)
  [ "$waits" = 2 ] || { echo "CHECK FAILED: the DETAIL names $waits waits, not the 2 of the cycle"; fail=1; }
  if [ "$(grep -c 'JOB FINISHED$' "$tl" || true)" != 1 ] || [ "$(grep -c 'JOB FINISHED (second attempt)$' "$tl" || true)" != 1 ]; then
    echo "CHECK FAILED: not one job finished at once and the victim at its second attempt"; fail=1
  fi
  # the victim's ERROR came after deadlock_timeout (2 s) of waiting, and within a second
  # more: the first scan of the victim may come before the other wait is published, the
  # next one 0.2 s later, and a cycle counts once two scans 100 ms apart saw it
  awk '/asks for write lock/ {ask[$2] = $1 + 0} /ERROR:  deadlock detected/ {t = $1 + 0; v = $2}
       END { d = t - ask[v]; if (!(v in ask) || d < 2.0 || d > 3.0) { printf "%.3f s\n", d; exit 1 } }' "$tl" \
    > "$work/deadlock-delay.txt" || { echo "CHECK FAILED: the deadlock was reported after $(cat "$work/deadlock-delay.txt") of waiting, not 2 to 3 s"; fail=1; }
  sl=$work/deadlock-serverlog.txt
  for c in A B; do
    grep -q "^  cluster $c: .*LOG:  process [0-9]* still waiting for zksync write lock \"[a-z]*\" after [0-9.]* ms" "$sl" \
      || { echo "CHECK FAILED: no log_lock_waits message on cluster $c"; fail=1; }
  done
  grep -q 'LOG:  process [0-9]* acquired zksync write lock' "$sl" || { echo "CHECK FAILED: no \"acquired\" log message"; fail=1; }
  left=$(psql_on A -At -c "SELECT count(*) FROM zksync_waits() WHERE name IN ('accounts', 'ledger')")
  [ "$left" = 0 ] || { echo "CHECK FAILED: $left nodes of part 2 are left in ZooKeeper"; fail=1; }
  if [ $fail = 0 ]; then
    echo "demo check: 1 job run, gate and phases in order; the deadlock across the clusters was detected once," \
      "the victim ran again, both jobs finished"
  fi
  exit $fail
fi
