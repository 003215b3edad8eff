#!/usr/bin/env bash
# Install, from Debian 12's own packages, everything zksync needs to build,
# test, benchmark, demo and package.  Needs root.  Set ZKSYNC_SKIP_INSTALL=1
# to skip.
set -euo pipefail
[ "${ZKSYNC_SKIP_INSTALL:-0}" = 1 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential ca-certificates git \
  postgresql-15 postgresql-server-dev-15 postgresql-client-15 \
  libzookeeper-st-dev libzookeeper-mt2 zookeeper default-jre-headless \
  python3 python3-kazoo python3-psycopg2 libipc-run-perl \
  iproute2 iptables procps util-linux \
  libcurator-recipes-java default-jdk-headless \
  golang-go golang-github-samuel-go-zookeeper-dev libasan8 libubsan1 \
  gnuplot-nox ruby \
  dpkg-dev debhelper postgresql-server-dev-all unzip valgrind >/dev/null
