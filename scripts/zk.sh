#!/usr/bin/env bash
# A three-node ZooKeeper ensemble on loopback, from Debian's zookeeper package.
#
#   scripts/zk.sh start | stop | status | hosts
#   scripts/zk.sh stop1 N | start1 N | kill1 N | freeze N | thaw N   (one server, N = 1..3)
#   scripts/zk.sh leader                     (prints the leader's number)
#   scripts/zk.sh cmd N WORD                 (a four-letter word, e.g. wchp)
#
# Environment: ZK_DIR (data, logs, pids; default /tmp/zksync-zk),
# ZK_PORT (first client port, default 2181; the others follow) and
# ZK_CONTAINER_CHECK_MS (how often the servers reap empty containers:
# default 1000, so that tests see an emptied directory go within seconds;
# ZooKeeper's own default is 60000).  Every address is 127.0.0.1.  The
# ensemble runs as the calling user.
set -euo pipefail

ZK_DIR=${ZK_DIR:-/tmp/zksync-zk}
ZK_PORT=${ZK_PORT:-2181}
ZK_CONTAINER_CHECK_MS=${ZK_CONTAINER_CHECK_MS:-1000}
N=3

port_of() { echo $((ZK_PORT + $1 - 1)); }
hosts() {
  local i out=""
  for i in $(seq 1 $N); do out+="${out:+,}127.0.0.1:$(port_of "$i")"; done
  echo "$out"
}

four() { # four-letter word to server $1
  local p; p=$(port_of "$1")
  exec 3<>/dev/tcp/127.0.0.1/"$p" || return 1
  printf '%s' "$2" >&3
  timeout 5 cat <&3 || true
  exec 3<&- 3>&- || true
}

pid_of() { cat "$ZK_DIR/n$1/pid" 2>/dev/null || true; }
# Is server $1's process there?  A killed one may linger a moment, dying or
# as a zombie not yet reaped: that is not alive.
alive() {
  local p st
  p=$(pid_of "$1")
  [ -n "$p" ] || return 1
  st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Wait (up to 10 s) until server $1's process is gone.  Without this, a
# start1 right after kill1 saw the dying process, took it for alive and did
# nothing: the server stayed down, and a second fault lost the quorum.
await_gone() {
  local _
  for _ in $(seq 1 200); do alive "$1" || return 0; sleep 0.05; done
  echo "zk.sh: server $1 did not go away" >&2
  return 1
}

configure() {
  local i j
  for i in $(seq 1 $N); do
    local d="$ZK_DIR/n$i"
    mkdir -p "$d/data" "$d/logs"
    echo "$i" > "$d/data/myid"
    {
      echo "tickTime=500"
      echo "initLimit=20"
      echo "syncLimit=10"
      echo "minSessionTimeout=1000"
      echo "maxSessionTimeout=60000"
      echo "dataDir=$d/data"
      echo "clientPort=$(port_of "$i")"
      echo "clientPortAddress=127.0.0.1"
      echo "maxClientCnxns=0"
      echo "4lw.commands.whitelist=*"
      echo "admin.enableServer=false"
      echo "forceSync=yes"
      for j in $(seq 1 $N); do
        echo "server.$j=127.0.0.1:$((12887 + j + ZK_PORT - 2181)):$((13887 + j + ZK_PORT - 2181))"
      done
    } > "$d/zoo.cfg"
    cat > "$d/log4j.properties" <<L4J
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=$d/logs/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] %-5p [%t:%C{1}@%L] - %m%n
L4J
  done
}

start1() {
  local i=$1 d="$ZK_DIR/n$1"
  alive "$i" && return 0
  # shellcheck disable=SC2086
  # containers (empty lock and barrier directories) are reaped this often
  nohup java -Xmx256m -Dzookeeper.log.dir="$d/logs" -Dznode.container.checkIntervalMs="$ZK_CONTAINER_CHECK_MS" \
    -Dlog4j.configuration="file:$d/log4j.properties" \
    -Dzookeeper.jmx.log4j.disable=true \
    -cp "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
    > "$d/logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$d/pid"
}

serving() { # server $1 answers and is part of a quorum
  four "$1" srvr 2>/dev/null | grep -qE '^Mode: (leader|follower)'
}

wait_quorum() {
  local deadline=$((SECONDS + ${1:-60})) i ok
  while [ $SECONDS -lt $deadline ]; do
    ok=1
    for i in $(seq 1 $N); do
      alive "$i" || continue
      serving "$i" || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 0.2
  done
  echo "zk.sh: ensemble did not form a quorum in time" >&2
  for i in $(seq 1 $N); do tail -5 "$ZK_DIR/n$i/logs/zookeeper.log" >&2 || true; done
  return 1
}

case "${1:-}" in
  start)
    configure
    for i in $(seq 1 $N); do start1 "$i"; done
    wait_quorum 90
    echo "ZooKeeper ensemble up: $(hosts)"
    ;;
  stop)
    for i in $(seq 1 $N); do
      p=$(pid_of "$i")
      if [ -n "$p" ]; then kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; fi
    done
    for i in $(seq 1 $N); do
      p=$(pid_of "$i")
      [ -n "$p" ] || continue
      for _ in $(seq 1 50); do alive "$i" || break; sleep 0.1; done
      kill -9 "$p" 2>/dev/null || true
      rm -f "$ZK_DIR/n$i/pid"
    done
    ;;
  status)
    for i in $(seq 1 $N); do
      if alive "$i"; then echo "zk$i $(port_of "$i"): $(four "$i" srvr | grep Mode || echo 'not serving')"
      else echo "zk$i $(port_of "$i"): down"; fi
    done
    ;;
  hosts) hosts ;;
  start1) start1 "$2"; wait_quorum 60 ;;
  stop1) p=$(pid_of "$2"); kill -CONT "$p" 2>/dev/null || true; kill "$p"; await_gone "$2" ;;
  kill1) kill -9 "$(pid_of "$2")"; await_gone "$2" ;;
  freeze) kill -STOP "$(pid_of "$2")" ;;
  thaw) kill -CONT "$(pid_of "$2")" ;;
  leader)
    for i in $(seq 1 $N); do
      alive "$i" && four "$i" srvr 2>/dev/null | grep -q '^Mode: leader' && { echo "$i"; exit 0; }
    done
    exit 1 ;;
  cmd) four "$2" "$3" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
