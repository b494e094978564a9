#!/usr/bin/env bash
# What a session per operation costs on SQLite, counted in instructions (independent of the
# machine's load): the session_cost bench's runners (plain diesel on its own r2d2 pool, and
# custodian on an unaudited entity; a read by key and a CRUD cycle, every operation on its own
# checkout), one at a time under callgrind, counting only the measured pass (`measured_pass`).
# Prints client instructions per operation (a CRUD cycle is one operation, four checkouts), the
# ratio diesel/custodian, and for the custodian runners the self instructions per operation of
# the source files that spend the most (FILES=N of them, default 12).
#
# Usage: benches/session_instructions.sh [get|crud ...]   (default: get crud)
#   OPS=N   operations in the measured pass (default 5000)
#   KEEP=DIR  keep the callgrind outputs in DIR
# Needs valgrind. Builds the bench with line tables for the workspace's crates so that
# instructions are attributed to source files.
set -euo pipefail
cd "$(dirname "$0")/.."
ops=${OPS:-5000}
files=${FILES:-12}
works=("$@")
[ ${#works[@]} -gt 0 ] || works=(get crud)
lines=()
for p in custodian custodian-core custodian-backends; do
  lines+=(--config "profile.bench.package.$p.debug=\"line-tables-only\"")
done
bin=$(cargo bench -j2 "${lines[@]}" --features sqlite --bench session_cost --no-run --message-format=json 2>/dev/null |
      sed -n 's/.*"executable":"\([^"]*session_cost[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the session_cost bench" >&2; exit 1; }
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT
for work in "${works[@]}"; do
  declare -A ir=()
  for side in diesel custodian; do
    f="$out/$side-$work.out"
    SESSION_COST_ONLY=$side-$work SESSION_COST_OPS=$ops valgrind --tool=callgrind \
      --toggle-collect='*measured_pass*' --callgrind-out-file="$f" "$bin" >/dev/null 2>"$out/log"
    total=$(sed -n 's/^totals: *//p;s/^summary: *//p' "$f" | head -1 | awk '{print $1}')
    ir[$side]=$total
    printf '%-5s %-10s %10.0f Ir/op\n' "$work" "$side" "$(echo "$total / $ops" | bc -l)"
  done
  awk -v d="${ir[diesel]}" -v c="${ir[custodian]}" -v w="$work" -v n="$ops" \
    'BEGIN {printf "%-5s diesel/custodian %.3f (custodian adds %.0f Ir/op)\n", w, d/c, (c-d)/n}'
  printf '  custodian-%s, self Ir/op by source file:\n' "$work"
  callgrind_annotate --auto=no --inclusive=no --threshold=100 "$out/custodian-$work.out" 2>/dev/null |
    awk -v n="$ops" '$1 ~ /^[0-9,]+$/ && NF >= 2 {
        c=$1; gsub(",","",c);
        # "file:function [object]": the file is what precedes the first colon of the name.
        name=$0; sub(/^ *[0-9,]+ *(\([^)]*\))? */,"",name);
        file=name; sub(/:.*/,"",file);
        s[file]+=c
      } END {for (f in s) printf "%12.0f  %s\n", s[f]/n, f}' | sort -rn | head -n "$files"
done
