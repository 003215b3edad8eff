#!/usr/bin/env bash
# The Debian package and the PGXN archive, checked end to end (a step of
# scripts/test.sh; also runs on its own, as root, on Debian 12):
#
#   scripts/package.sh
#
# 1. META.json is valid JSON with the keys the PGXN meta-spec requires, and
#    its version (1.1.0) agrees with zksync.control (1.1) and
#    debian/changelog (1.1-1); `make dist` makes zksync-1.1.0.zip with
#    every file under zksync-1.1.0/ (when the checkout is a git clone).
# 2. dpkg-buildpackage -us -uc -b, in a copy of the checkout, builds
#    postgresql-15-zksync_1.1-1_amd64.deb holding zksync.so, zksync.control
#    and every SQL script.
# 3. The files `make install` put into PostgreSQL 15 are removed (`make
#    uninstall`), so nothing of the source tree is left; apt-get installs
#    the package; on a new cluster, CREATE EXTENSION zksync and a lock
#    cycle against the ensemble work (preloaded: zksync_stats counts it),
#    and the zksync.so the server loaded
#    belongs to the package (dpkg -S).
# 4. Always, also on failure: the package is removed and the checkout's
#    build installed again (`make install`), so later steps are unaffected.
#
# This replaces PostgreSQL 15's zksync files for about ten seconds: do not
# run it while other tests use that installation.
#
# Environment: ZK_HOSTS, an ensemble to use (unset: one of scripts/zk.sh
# is started on ZK_PORT, default 24181); PGPORT (default 55481) for the
# cluster; ZKSYNC_RESTORE_FROM, the source tree whose `make install` puts
# the build back (default this checkout).  Needs dpkg-dev, debhelper and
# postgresql-server-dev-all (scripts/install-deps.sh).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/bootstrap.sh"
pg_config=/usr/lib/postgresql/15/bin/pg_config
pkg=postgresql-15-zksync
restore_from=${ZKSYNC_RESTORE_FROM:-$top}

if [ "$(id -u)" != 0 ]; then
  echo "package.sh: run as root (apt-get, dpkg)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

fail() { echo "package.sh: $*" >&2; exit 1; }

zks_workdir package scripts
export PGPORT=${PGPORT:-55481}
PG_DIR=$work/pg

echo "== META.json, zksync.control and debian/changelog agree"
python3 - "$top" <<'PY'
import json, re, sys
top = sys.argv[1]
with open(f"{top}/META.json") as f:
    meta = json.load(f)
for key in ("name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"):
    assert key in meta, f"META.json: no {key}"
assert meta["name"] == "zksync", "META.json: name is not zksync"
assert meta["meta-spec"]["version"] == "1.0.0", "META.json: meta-spec is not 1.0.0"
assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]), "META.json: version is not X.Y.Z"
ext = meta["provides"]["zksync"]
assert ext["version"] == meta["version"], "META.json: provides.zksync.version differs from version"
with open(f"{top}/zksync.control") as f:
    control = re.search(r"^default_version\s*=\s*'([^']*)'", f.read(), re.M).group(1)
assert ext["file"] == f"zksync--{control}.sql", f"META.json: provides.zksync.file is not zksync--{control}.sql"
assert meta["version"] == control + ".0", f"META.json version {meta['version']}, zksync.control {control}"
with open(f"{top}/debian/changelog") as f:
    deb = re.match(r"zksync \(([^)-]*)-\d+\)", f.readline()).group(1)
assert deb == control, f"debian/changelog {deb}, zksync.control {control}"
assert "runtime" in meta["prereqs"] and "PostgreSQL" in meta["prereqs"]["runtime"]["requires"]
print(f"ok: META.json {meta['version']}, zksync.control {control}, debian/changelog {deb}")
PY
version=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$top/zksync.control")
debver=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
deb=${pkg}_${debver}_$(dpkg --print-architecture).deb

if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
  echo "== make dist"
  make -s -C "$top" dist DISTFILE="$work/dist.zip"
  unzip -Z1 "$work/dist.zip" > "$work/dist.list"
  top_dirs=$(cut -d/ -f1 "$work/dist.list" | sort -u)
  [ "$top_dirs" = "zksync-$version.0" ] || fail "make dist: top directories $top_dirs"
  for f in META.json Makefile zksync.control "zksync--$version.sql" debian/control; do
    grep -qx "zksync-$version.0/$f" "$work/dist.list" || fail "make dist: no $f"
  done
  echo "ok: make dist, $(grep -vc '/$' "$work/dist.list") files under zksync-$version.0/"
else
  echo "== make dist: skipped, $top is not a git clone"
fi

echo "== dpkg-buildpackage -us -uc -b in a copy"
mkdir -p "$work/build/zksync-$version"
tar -C "$top" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . |
  tar -xf - -C "$work/build/zksync-$version"
if ! (cd "$work/build/zksync-$version" &&
      dpkg-buildpackage -us -uc -b -j"$(nproc)") > "$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log"
  fail "dpkg-buildpackage failed"
fi
[ -f "$work/build/$deb" ] || fail "no $deb"
dpkg -c "$work/build/$deb" > "$work/contents"
for f in lib/postgresql/15/lib/zksync.so share/postgresql/15/extension/zksync.control \
         share/postgresql/15/extension/zksync--1.0.sql share/postgresql/15/extension/zksync--1.1.sql \
         share/postgresql/15/extension/zksync--1.0--1.1.sql \
         share/doc/$pkg/examples/postgres_exporter-queries.yaml; do
  grep -q " \./usr/$f$" "$work/contents" || fail "$deb lacks /usr/$f"
done
echo "ok: $deb ($(dpkg-deb -f "$work/build/$deb" Depends))"

# From here on PostgreSQL 15's zksync files are the package's: put the
# build back whatever happens.
put_back() {
  set +e
  zks_as_pg env PG_DIR="$PG_DIR" PGPORT="$PGPORT" "$work/src/scripts/pg.sh" stop
  if dpkg -s "$pkg" >/dev/null 2>&1; then
    apt-get remove -y -qq "$pkg" > "$work/apt.log" 2>&1 || cat "$work/apt.log"
  fi
  make -s -C "$restore_from" install PG_CONFIG="$pg_config" >/dev/null
  zks_cleanup
}
trap put_back EXIT

echo "== make uninstall, apt-get install ./$deb"
make -s -C "$top" uninstall PG_CONFIG="$pg_config" >/dev/null
left=$(ls -d "$($pg_config --pkglibdir)"/zksync.so "$($pg_config --pkglibdir)"/bitcode/zksync* \
          "$($pg_config --sharedir)"/extension/zksync* 2>/dev/null || true)
[ -z "$left" ] || fail "left after make uninstall: $left"
apt-get install -y -qq "$work/build/$deb" > "$work/apt.log" 2>&1 ||
  { cat "$work/apt.log"; fail "apt-get install failed"; }
dpkg -s "$pkg" | grep -q '^Status: install ok installed' || fail "$pkg is not installed"

echo "== a new cluster: CREATE EXTENSION zksync and a lock cycle"
if [ -z "${ZK_HOSTS:-}" ]; then
  export ZK_PORT=${ZK_PORT:-24181}
  zks_zk_start
fi
zks_clusters+=("$PG_DIR $PGPORT")
zks_as_pg env PG_DIR="$PG_DIR" PGPORT="$PGPORT" PGBIN="$($pg_config --bindir)" \
  "$work/src/scripts/pg.sh" start
out=$(zks_as_pg env PG_DIR="$PG_DIR" PGPORT="$PGPORT" PGBIN="$($pg_config --bindir)" \
        "$work/src/scripts/pg.sh" psql -Atq -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION zksync;
SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'zksync';
SELECT 'locked' FROM (SELECT zksync_write_lock('package-check')) AS l;
SELECT 'holder ' || mode || ' ' || granted FROM zksync_lock_holders('package-check');
SELECT 'unlocked ' || zksync_write_unlock('package-check');
SELECT 'holders ' || count(*) FROM zksync_lock_holders('package-check');
SELECT 'acquired ' || acquired FROM zksync_stats;
SQL
)
echo "$out"
expected="version $version
locked
holder write true
unlocked true
holders 0
acquired 1"
[ "$out" = "$expected" ] || fail "the lock cycle gave something else"
postmaster=$(head -1 "$PG_DIR/data/postmaster.pid")
so=$(awk '$6 ~ /\/zksync\.so$/ { print $6; exit }' "/proc/$postmaster/maps")
[ -n "$so" ] || fail "the server has no zksync.so loaded"
owner=$(dpkg -S "$so" 2>/dev/null | cut -d: -f1 || true)
[ "$owner" = "$pkg" ] || fail "$so belongs to '$owner', not $pkg"
echo "ok: the server loaded $so, of $owner"
echo "ok - package"
