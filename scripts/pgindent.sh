#!/usr/bin/env bash
# Format src/ as PostgreSQL's pgindent does, with Debian's pg_bsd_indent
# (package pg-bsd-indent) and pgindent's own options:
#
#   scripts/pgindent.sh [FILE...]      (default: src/*.c src/*.h)
#
# The typedef list that pg_bsd_indent needs is made here from PostgreSQL's
# server headers, the ZooKeeper client's header and our own sources.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v pg_bsd_indent >/dev/null || { echo "pgindent.sh: apt-get install pg-bsd-indent" >&2; exit 1; }
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(src/*.c src/*.h)

typedefs=$(mktemp)
trap 'rm -f "$typedefs" "$typedefs".*' EXIT
{
  # "typedef ... Name;" on one line, and "} Name;" closing a typedef'd struct
  cat "$(pg_config --includedir-server)"/*.h "$(pg_config --includedir-server)"/*/*.h \
    /usr/include/zookeeper/*.h src/*.c src/*.h 2>/dev/null \
    | sed -n -e 's/^typedef .*[ *]\([A-Za-z_][A-Za-z0-9_]*\);.*/\1/p' \
             -e 's/^}[ \t]*\([A-Za-z_][A-Za-z0-9_]*\);.*/\1/p' \
             -e 's/^typedef .*(\*\([A-Za-z_][A-Za-z0-9_]*\))(.*/\1/p'
  # the C library's that PostgreSQL's list has too
  printf '%s\n' FILE size_t ssize_t uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t \
    int64_t pthread_t pthread_mutex_t pthread_cond_t sigset_t pid_t time_t off_t va_list \
    zhandle_t clientid_t
} | sort -u > "$typedefs"

for f in "${files[@]}"; do
  pg_bsd_indent -bad -bap -bbb -bc -bl -cli1 -cp33 -cdb -nce -d0 -di12 -nfc1 -i4 -l79 \
    -lp -lpl -nip -npro -sac -tpg -ts4 -U"$typedefs" "$f" "$typedefs.out"
  # as pgindent does afterwards: one space before the '*' of a function's
  # return type standing on its own line
  sed -i -E 's/^([A-Za-z_][A-Za-z0-9_]*)[ \t]+\*$/\1 */' "$typedefs.out"
  if ! cmp -s "$f" "$typedefs.out"; then
    cat "$typedefs.out" > "$f"
    echo "pgindent.sh: $f"
  fi
done
