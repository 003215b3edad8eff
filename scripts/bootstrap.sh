# shellcheck shell=bash
# The set-up shared by the one-command scripts (scripts/test.sh,
# scripts/demo.sh, scripts/soak.sh, bench/run.sh).  Sourced, not run:
#
#   . "$(dirname "$0")/bootstrap.sh"
#
#   zks_install_deps             Debian packages (scripts/install-deps.sh;
#                                ZKSYNC_SKIP_INSTALL=1 skips)
#   zks_build [--clean] [--werror]
#                                make and make install in the checkout
#                                (ZKSYNC_SKIP_BUILD=1 skips); --werror
#                                builds as CI does (make WERROR=1)
#   zks_bench_build              bench/floor.c and bench/sqlcycle.c into
#                                bench/out (the benchmarks' C programs)
#   zks_workdir NAME PATH...     a new directory /tmp/zksync-NAME.XXXXXX
#                                ($work, mode 755, owned by postgres when
#                                root) with a copy of PATHs of the checkout
#                                in $work/src, since the postgres user may
#                                not read the checkout (a clone under /root,
#                                say); sets ZK_DIR=$work/zk and the cleanup
#                                trap
#   zks_as_pg CMD...             CMD as the postgres user when root
#                                (PostgreSQL refuses root), with ZK_DIR,
#                                ZK_PORT, PG_DIR, PGPORT and ZK_HOSTS
#   zks_zk_start                 the three-node ensemble of scripts/zk.sh on
#                                ZK_PORT; exports ZK_HOSTS
#   zks_pg_start DIR PORT        a cluster of scripts/pg.sh in DIR on PORT,
#                                zksync.hosts = ZK_HOSTS
#   zks_psql DIR PORT ARGS...    psql on that cluster, as postgres
#
# On exit, also on Ctrl-C and TERM, the trap stops every cluster and the
# ensemble started here, kills background jobs and removes $work, unless
# ZKS_KEEP_WORK=1; it prints $zks_stop_note first if set, nothing else.

zks_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
zks_clusters=()     # "DIR PORT" of every cluster started (or being started)
zks_zk_started=0

zks_install_deps() {
  "$zks_top/scripts/install-deps.sh"
}

zks_build() {
  local clean=0 werror=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --clean) clean=1 ;;
      --werror) werror=(WERROR=1) ;;
      *) echo "zks_build: unknown option $1" >&2; return 2 ;;
    esac
    shift
  done
  if [ "${ZKSYNC_SKIP_BUILD:-0}" = 1 ]; then
    return 0
  fi
  if [ $clean = 1 ]; then make -s -C "$zks_top" clean; fi
  make -s -C "$zks_top" "${werror[@]}"
  make -s -C "$zks_top" "${werror[@]}" install
}

zks_bench_build() {
  mkdir -p "$zks_top/bench/out"
  gcc -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -o "$zks_top/bench/out/floor" \
    "$zks_top/bench/floor.c" -l:libzookeeper_mt.so.2
  gcc -O2 -g -Wall -Wextra -Werror -I"$(pg_config --includedir)" -o "$zks_top/bench/out/sqlcycle" \
    "$zks_top/bench/sqlcycle.c" -lpq
}

zks_as_pg() {
  if [ "$(id -u)" = 0 ]; then
    local v vars=()
    for v in ZK_DIR ZK_PORT ZK_CONTAINER_CHECK_MS PG_DIR PGPORT ZK_HOSTS; do
      if [ -n "${!v:-}" ]; then vars+=("$v=${!v}"); fi
    done
    runuser -u postgres -- env "${vars[@]}" "$@"
  else
    "$@"
  fi
}

zks_workdir() {
  local name=$1; shift
  work=$(mktemp -d "/tmp/zksync-$name.XXXXXX")
  chmod 755 "$work"   # the fault tests run a cluster as another user below it
  mkdir -p "$work/src"
  tar -C "$zks_top" --exclude=.git -cf - "$@" | tar -xf - -C "$work/src"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$work"; fi
  export ZK_DIR=$work/zk
  trap zks_cleanup EXIT
  trap 'exit 130' INT TERM
}

zks_zk_start() {
  zks_zk_started=1
  zks_as_pg "$work/src/scripts/zk.sh" start
  ZK_HOSTS=$(zks_as_pg "$work/src/scripts/zk.sh" hosts)
  export ZK_HOSTS
}

zks_pg_start() {
  zks_clusters+=("$1 $2")
  zks_as_pg env PG_DIR="$1" PGPORT="$2" "$work/src/scripts/pg.sh" start
}

zks_psql() {
  local dir=$1 port=$2; shift 2
  zks_as_pg env PG_DIR="$dir" PGPORT="$port" "$work/src/scripts/pg.sh" psql "$@"
}

zks_cleanup() {
  set +e
  local c
  if [ -n "${zks_stop_note:-}" ]; then echo "$zks_stop_note"; fi
  for c in "${zks_clusters[@]}"; do
    zks_as_pg env PG_DIR="${c% *}" PGPORT="${c##* }" "$work/src/scripts/pg.sh" stop
  done
  if [ $zks_zk_started = 1 ]; then zks_as_pg "$work/src/scripts/zk.sh" stop; fi
  jobs -p | xargs -r kill 2>/dev/null
  if [ "${ZKS_KEEP_WORK:-0}" != 1 ]; then rm -rf "$work"; fi
}
