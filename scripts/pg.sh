#!/usr/bin/env bash
# A PostgreSQL 15 cluster for zksync, run as the postgres user.
#
#   scripts/pg.sh start | stop | psql [args...]
#
# Environment: PG_DIR (default /tmp/zksync-pg), PGPORT (default 5499),
# ZK_HOSTS (zksync.hosts, default: scripts/zk.sh hosts), PG_OS_USER (the
# operating-system user that runs the server, default postgres; the fault
# tests use a second one so that iptables can cut one cluster's traffic),
# PG_PRELOAD (shared_preload_libraries of a new cluster, default zksync;
# empty for none, as a packager's test cluster has), PGBIN (the server's
# binaries, default pg_config --bindir), PG_POSTGRES (the server program
# pg_ctl starts, default PGBIN/postgres; bench/instructions.sh gives a
# wrapper that runs it under callgrind).
# The socket lives in PG_DIR.  As root, the commands run as PG_OS_USER
# (PostgreSQL refuses to run as root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PG_DIR=${PG_DIR:-/tmp/zksync-pg}
PGPORT=${PGPORT:-5499}
PGBIN=${PGBIN:-$(pg_config --bindir)}
PG_OS_USER=${PG_OS_USER:-postgres}
PG_PRELOAD=${PG_PRELOAD-zksync}
ZK_HOSTS=${ZK_HOSTS:-$("$here/zk.sh" hosts)}
PG_POSTGRES=${PG_POSTGRES:-$PGBIN/postgres}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    if [ ! -s "$PG_DIR/data/PG_VERSION" ]; then
      mkdir -p "$PG_DIR"
      [ "$(id -u)" = 0 ] && chown "$PG_OS_USER": "$PG_DIR"
      as_pg "$PGBIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
      cat >> "$PG_DIR/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$PG_DIR'
max_connections = 200
max_prepared_transactions = 5
fsync = off
logging_collector = off
log_line_prefix = '%m [%p] %q%a '
shared_preload_libraries = '$PG_PRELOAD'
zksync.hosts = '$ZK_HOSTS'
CONF
    fi
    as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -p "$PG_POSTGRES" -t 180 \
      -w start >/dev/null
    echo "PostgreSQL up: host=$PG_DIR port=$PGPORT"
    ;;
  stop)
    if [ -s "$PG_DIR/data/postmaster.pid" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
    fi
    ;;
  psql)
    shift
    as_pg "$PGBIN/psql" -X -h "$PG_DIR" -p "$PGPORT" -U postgres "$@"
    ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
