#!/usr/bin/env bash
# What custodian's metrics cost with no recorder installed, and what cluster routing costs a
# single-URL `Db`, counted in instructions (which do not depend on the machine's load, unlike
# timings): the metrics_cost bench's runners (a read by key and an update by key, autocommit,
# one session), one at a time, under callgrind, counting only the measured pass
# (`measured_pass`). Columns: client instructions per operation; those executed in the
# `metrics` facade's code (inlined into custodian or not) and, with a recorder, in the
# recorder's implementations of the facade's traits (self cost: the allocations the facade
# makes for label lists are in the allocator, not in it); those in custodian's routing code (core/src/cluster/,
# core/src/session/route.rs).
#
# Usage: benches/metrics_instructions.sh [BACKEND ...]   (default: sqlite postgres mariadb)
#   OPS=N   get+update pairs in the measured pass (default 2000)
# Needs valgrind. Builds the bench with line tables for the workspace's crates (dependencies
# keep the bench profile as it is) so that instructions inlined from the `metrics` crate into
# custodian's are attributed to the metrics source files.
set -euo pipefail
cd "$(dirname "$0")/.."
ops=${OPS:-2000}
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(sqlite postgres mariadb)
lines=()
for p in custodian custodian-core custodian-backends; do
  lines+=(--config "profile.bench.package.$p.debug=\"line-tables-only\"")
done
bin=$(cargo bench -j2 "${lines[@]}" --all-features --bench metrics_cost --no-run --message-format=json 2>/dev/null |
      sed -n 's/.*"executable":"\([^"]*metrics_cost[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the metrics_cost bench" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-9s %-12s %12s %14s %10s %14s %10s\n' backend runner "Ir/op" "metrics Ir/op" "metrics %" "routing Ir/op" "routing %"
for backend in "${backends[@]}"; do
  for runner in diesel no-recorder recorder; do
    f="$out/$backend-$runner.out"
    METRICS_COST_ONLY=$runner METRICS_COST_OPS=$ops valgrind --tool=callgrind \
      --toggle-collect='*measured_pass*' --callgrind-out-file="$f" "$bin" "$backend" \
      >/dev/null 2>"$out/log"
    total=$(sed -n 's/^totals: *//p;s/^summary: *//p' "$f" | head -1 | awk '{print $1}')
    # Self instructions in the metrics crates' sources (inlined or not), and the inclusive
    # cost of the allocator calls made from them is not separable: self cost is what is
    # counted here, an undercount of the facade's share by its allocations.
    callgrind_annotate --auto=no --inclusive=no --threshold=100 "$f" >"$out/annotated" 2>/dev/null
    sum() { awk -v re="$1" '$0 ~ re && $1 ~ /^[0-9,]+$/ {gsub(",","",$1); s+=$1} END {print s+0}' "$out/annotated"; }
    facade=$(sum '/metrics-[0-9][^/]*/src/| metrics::')
    routing=$(sum 'core/src/cluster/|core/src/session/route[.]rs')
    awk -v b="$backend" -v r="$runner" -v t="$total" -v m="$facade" -v q="$routing" -v n="$ops" \
      'BEGIN {printf "%-9s %-12s %12.0f %14.0f %9.2f%% %14.0f %9.2f%%\n", b, r, t/(2*n), m/(2*n), 100*m/t, q/(2*n), 100*q/t}'
  done
done
