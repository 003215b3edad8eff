#!/usr/bin/env bash
# The house rules of src/, checked by machine (after a build: it reads the
# object files):
#
#   scripts/check-house.sh
#
#   - no .c file over 1,200 lines;
#   - every .c and .h file opens with a comment that names the file;
#   - no comment points to a document the repository does not hold
#     ("SPEC");
#   - no header includes postgres.h (the .c file does, first);
#   - the call graph between object files points only down the layers
#     below (nm: every symbol a file uses is defined in its own layer or a
#     lower one), so no lower layer calls up into a recipe.
#
# Prints one line per broken rule and exits 1 if there is any.
set -uo pipefail
cd "$(dirname "$0")/.."

# Layers, top first.  A file not listed here is an error: say where it goes.
layer_of() {
  case "$1" in
    zksync) echo 6 ;;                                  # SQL entry points
    lock|locktable|semaphore|barrier) echo 5 ;;        # recipes
    queue|waits|gates|deadlock|marks|handoff|xact) echo 4 ;; # what recipes share
    nodes|tree) echo 3 ;;                              # node operations
    session|releases|held|watchdog|transport|clientio) echo 2 ;; # the ZooKeeper client
    settings|names|layout|foreign|shared) echo 1 ;;    # leaves
    *) echo "" ;;
  esac
}

bad=0
say() { echo "check-house: $*"; bad=1; }

for f in src/*.c; do
  n=$(wc -l < "$f")
  [ "$n" -le 1200 ] || say "$f has $n lines (more than 1,200)"
done
for f in src/*.c src/*.h; do
  grep -q "$(basename "$f")" <<< "$(head -3 "$f")" || say "$f does not open with a comment naming it"
done
if grep -n 'SPEC' src/*.c src/*.h; then say "comments above point to the SPEC, which the repository does not hold"; fi
if grep -ln '#include "postgres.h"' src/*.h; then say "the headers above include postgres.h"; fi

# symbol -> defining object
declare -A def
for o in src/*.o; do
  [ -f "$o" ] || { say "no object files: build first"; break; }
  while read -r sym; do def[$sym]=$(basename "$o" .o); done \
    < <(nm --defined-only -g "$o" | awk '{print $3}')
done
for o in src/*.o; do
  [ -f "$o" ] || continue
  me=$(basename "$o" .o)
  lme=$(layer_of "$me")
  [ -n "$lme" ] || { say "src/$me.c is in no layer (scripts/check-house.sh, layer_of)"; continue; }
  while read -r sym; do
    other=${def[$sym]:-}
    [ -n "$other" ] && [ "$other" != "$me" ] || continue
    lo=$(layer_of "$other")
    [ -n "$lo" ] || continue
    [ "$lo" -le "$lme" ] || say "src/$me.c (layer $lme) calls $sym of src/$other.c (layer $lo)"
  done < <(nm -u "$o" | awk '{print $2}')
done
[ $bad = 0 ] && echo "check-house: ok"
exit $bad
