#!/usr/bin/env bash
# The randomized soak (t/faults/soak.py), long, in one command (as root on Debian 12):
#   scripts/soak.sh [--minutes M] [--seed N]
# Installs what is needed, builds and installs zksync (ZKSYNC_SKIP_BUILD=1
# runs against the installed one), starts its own three-node ensemble and
# two PostgreSQL clusters (through t/faults/faults.py) on ports of its own,
# runs M minutes (default 10) of random faults against zksync backends, a
# kazoo client and an Apache Curator client queued on one lock, prints the
# witness ("# soak: ..." and ok / not ok lines), stops what it started.
# Exits non-zero if the witness found anything.
# Environment: SOAK_ZK_PORT (default 46181), SOAK_PG_PORT (default 56301;
# the second cluster uses the next port).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
minutes=10
seed=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
. scripts/bootstrap.sh
zks_install_deps
zks_build --werror

# Run as postgres (ZooKeeper) and as root (faults.py) in a copy of the tree
# that every user can read.
zks_workdir soak scripts t/faults t/curator
export ZK_PORT=${SOAK_ZK_PORT:-46181}
pg_port=${SOAK_PG_PORT:-56301}

zks_zk_start
/usr/bin/python3 "$work/src/t/faults/faults.py" --scripts "$work/src/scripts" --work "$work/faults" \
  --zk-dir "$ZK_DIR" --zk-port "$ZK_PORT" --pg-port "$pg_port" \
  --only test_soak --soak-seconds $((minutes * 60)) --soak-seed "$seed"
