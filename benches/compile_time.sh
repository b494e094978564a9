#!/usr/bin/env bash
# Compile-time benchmark: the same crate of entities written with custodian's `#[entity]` and
# with plain diesel derives (issue #11, item 6).
#
# Generates two scratch crates in a temporary directory:
#   ct_entity  N entities x 8 fields with `#[entity(table = "...")]`, depending on this repo's
#              `custodian` (path) and `diesel = { version = "2.3", default-features = false }`;
#   ct_diesel  the same N structs on plain diesel: one `diesel::table!` per table and
#              `#[derive(Queryable, Selectable, Insertable, AsChangeset, Identifiable)]`, with
#              diesel's `sqlite` and `chrono` features (plus `returning_clauses_for_sqlite_3_35`,
#              so that both sides insert with RETURNING as custodian does on SQLite).
# Both are library crates; each entity gets one pub function doing the same four operations
# (insert returning the key or row, get by key, update by key, delete by key), so the generic code a
# real user crate instantiates is compiled in the crate itself.
#
# Both crates get this repo's Cargo.lock (so every version matches the repo's) and its
# [profile.*] sections, build `--offline`, and share one CARGO_TARGET_DIR of their own (not the
# repo's), so dependencies are built once. Measured: only the bench crate's own rustc run
# (dependencies already built; its src is touched and the crate rebuilt), for `cargo build`
# (dev profile) and `cargo check`, with CARGO_INCREMENTAL=0 (a full compile of the crate,
# not an incremental one). A RUSTC_WRAPPER times that one rustc invocation with
# /usr/bin/time (user+sys CPU of rustc and all its threads, wall, max RSS); cargo's own
# start-up, resolution and fingerprinting are left out. Runs are interleaved: run 1 builds
# entity then diesel, run 2 diesel then entity, and so on, so slow phases of a noisy machine
# hit both sides alike.
#
# Usage: benches/compile_time.sh [--runs N] [--entities N] [--defs-only] [--jobs J]
#                                 [--target-dir DIR] [--keep]
#   --runs N        measured runs per side and mode (default 3)
#   --entities N    entities per crate (default 20)
#   --defs-only     leave out the per-entity functions: only what the entity definitions
#                   generate (the derives, `table!`, custodian's Entity impl) is compiled, not
#                   the generic session/query code a user crate instantiates
#   --jobs J        cargo -j for the measured step (default 1: rustc's codegen threads then take
#                   one jobserver token at a time, so the measurement competes less with itself
#                   and with other builds; CPU time barely depends on it, wall time does).
#                   Dependencies are always built with -j2.
#   --target-dir D  shared CARGO_TARGET_DIR of the two crates (default
#                   ${TMPDIR:-/tmp}/custodian-compile-time-target; kept between invocations, so
#                   only the first one builds the dependencies)
#   --keep          keep the scratch crates (their directory is printed)
set -euo pipefail

runs=3
entities=20
jobs=1
target_dir="${TMPDIR:-/tmp}/custodian-compile-time-target"
keep=0
uses=1
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --entities) entities="$2"; shift 2 ;;
        --jobs|-j) jobs="$2"; shift 2 ;;
        --target-dir) target_dir="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --defs-only) uses=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$runs$entities$jobs" in *[!0-9]*) echo "--runs, --entities and --jobs take numbers" >&2; exit 2 ;; esac
[ "$runs" -ge 1 ] && [ "$entities" -ge 1 ] && [ "$entities" -le 99 ] && [ "$jobs" -ge 1 ] \
    || { echo "need --runs >= 1, 1 <= --entities <= 99, --jobs >= 1" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -f "$repo/Cargo.lock" ] || { echo "no Cargo.lock in $repo" >&2; exit 2; }
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
case "$target_dir/" in "$repo"/target/*) echo "use a target dir of its own, not the repo's" >&2; exit 2 ;; esac
work="$(mktemp -d "${TMPDIR:-/tmp}/custodian-compile-time.XXXXXX")"
if [ "$keep" = 1 ]; then
    trap 'echo "scratch crates kept in $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi

# --- the two crates -------------------------------------------------------------------------

# The repo's [profile.*] sections, verbatim.
profiles="$(awk '/^\[/ { on = ($0 ~ /^\[profile/) } on' "$repo/Cargo.toml")"

manifest() { # name, dependency lines
    cat <<EOF
[package]
name = "$1"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
path = "src/lib.rs"

[dependencies]
$2

# Not part of any enclosing workspace.
[workspace]

# The repo's profiles (Cargo.toml of custodian):
$profiles
EOF
}

n2() { printf '%02d' "$1"; }

entity_src() {
    echo '//! Generated by benches/compile_time.sh: entities on custodian.'
    echo 'use custodian::prelude::*;'
    echo
    for i in $(seq 1 "$entities"); do
        local n; n="$(n2 "$i")"
        cat <<EOF
#[entity(table = "item_$n")]
#[derive(Debug, Clone, PartialEq)]
pub struct Item$n {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub note: Option<String>,
    pub rank: i32,
    pub active: bool,
    pub score: f64,
    pub recorded_on: chrono::NaiveDateTime,
    pub parent_ref: Option<i64>,
}

EOF
        [ "$uses" = 1 ] || continue
        cat <<EOF
/// Insert (key returned), get by key, update by key, delete by key.
pub fn roundtrip_$n(s: &mut custodian::Session, at: chrono::NaiveDateTime) -> custodian::Result<i64> {
    let new = Item$n {
        id: 0,
        name: "n$n".to_string(),
        note: None,
        rank: $i,
        active: true,
        score: 0.5,
        recorded_on: at,
        parent_ref: None,
    };
    let mut row = s.insert(new)?;
    let got = s.get::<Item$n>(&row.id)?;
    row.rank = got.rank + 1;
    s.update(&mut row)?;
    s.delete(&row)?;
    Ok(row.id)
}

EOF
    done
}

diesel_src() {
    echo '//! Generated by benches/compile_time.sh: the same entities on plain diesel.'
    echo 'use diesel::prelude::*;'
    echo
    for i in $(seq 1 "$entities"); do
        local n; n="$(n2 "$i")"
        cat <<EOF
diesel::table! {
    item_$n (id) {
        id -> BigInt,
        name -> Text,
        note -> Nullable<Text>,
        rank -> Integer,
        active -> Bool,
        score -> Double,
        recorded_on -> Timestamp,
        parent_ref -> Nullable<BigInt>,
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = item_$n, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Item$n {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub name: String,
    pub note: Option<String>,
    pub rank: i32,
    pub active: bool,
    pub score: f64,
    pub recorded_on: chrono::NaiveDateTime,
    pub parent_ref: Option<i64>,
}

EOF
        [ "$uses" = 1 ] || continue
        cat <<EOF
/// Insert (row returned), get by key, update by key, delete by key.
pub fn roundtrip_$n(c: &mut SqliteConnection, at: chrono::NaiveDateTime) -> QueryResult<i64> {
    let new = Item$n {
        id: 0,
        name: "n$n".to_string(),
        note: None,
        rank: $i,
        active: true,
        score: 0.5,
        recorded_on: at,
        parent_ref: None,
    };
    let mut row: Item$n = diesel::insert_into(item_$n::table)
        .values(&new)
        .returning(Item$n::as_returning())
        .get_result(c)?;
    let got: Item$n = item_$n::table.find(row.id).select(Item$n::as_select()).first(c)?;
    row.rank = got.rank + 1;
    diesel::update(&row).set(&row).execute(c)?;
    diesel::delete(&row).execute(c)?;
    Ok(row.id)
}

EOF
    done
}

mkdir -p "$work/ct_entity/src" "$work/ct_diesel/src"
manifest ct_entity "custodian = { path = \"$repo\" }
# diesel::table! expands to \`use ::diesel;\` (README, Quick start).
diesel = { version = \"2.3\", default-features = false }
chrono = { version = \"0.4\", default-features = false }" >"$work/ct_entity/Cargo.toml"
manifest ct_diesel "diesel = { version = \"2.3\", default-features = false, features = [\"sqlite\", \"chrono\", \"returning_clauses_for_sqlite_3_35\"] }
# Bundled SQLite, as custodian has it.
libsqlite3-sys = { version = \"0.35\", features = [\"bundled\"] }
chrono = { version = \"0.4\", default-features = false }" >"$work/ct_diesel/Cargo.toml"
entity_src >"$work/ct_entity/src/lib.rs"
diesel_src >"$work/ct_diesel/src/lib.rs"
cp "$repo/Cargo.lock" "$work/ct_entity/Cargo.lock"
cp "$repo/Cargo.lock" "$work/ct_diesel/Cargo.lock"

# --- measuring ------------------------------------------------------------------------------

# Times the bench crates' own rustc runs; every other rustc call passes through. The wrapper
# lives in the target dir (a stable path) and is used for every build, dependencies included.
wrapper="$target_dir/compile-time-rustc-wrapper"
cat >"$wrapper.tmp" <<'EOF'
#!/usr/bin/env bash
case " $* " in
    *" --crate-name ct_entity "* | *" --crate-name ct_diesel "*)
        if [ -n "${CT_TIMES:-}" ]; then
            exec /usr/bin/time -f '%e %U %S %M' -a -o "$CT_TIMES" "$@"
        fi ;;
esac
exec "$@"
EOF
chmod +x "$wrapper.tmp"
if ! cmp -s "$wrapper.tmp" "$wrapper" 2>/dev/null; then mv "$wrapper.tmp" "$wrapper"; else rm "$wrapper.tmp"; fi

export CARGO_TARGET_DIR="$target_dir" CARGO_INCREMENTAL=0 RUSTC_WRAPPER="$wrapper"
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

cargo_in() { # crate, log, cargo args...
    local crate="$1" log="$2"; shift 2
    if ! (cd "$work/$crate" && cargo "$@" --offline) >"$log" 2>&1; then
        echo "cargo $* failed in $crate:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

echo "repo:    $repo (commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo "crates:  $entities entities x 8 fields per crate$([ "$uses" = 1 ] || echo ', definitions only (--defs-only)'); scratch dir $work"
echo "target:  $target_dir"
echo "rustc:   $(rustc --version); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "building dependencies (build and check, -j2; the first time takes minutes)..."
start=$SECONDS
for crate in ct_entity ct_diesel; do
    cargo_in "$crate" "$work/$crate.deps-build.log" build -j2
    cargo_in "$crate" "$work/$crate.deps-check.log" check -j2
done
echo "dependencies ready in $((SECONDS - start)) s"

results="$work/results"   # lines: mode side run wall user sys maxrss_kb
: >"$results"
measure() { # mode side run
    local mode="$1" side="$2" run="$3" crate="ct_$2" t="$work/time.$1.$2.$3"
    touch "$work/$crate/src/lib.rs"
    : >"$t"
    CT_TIMES="$t" cargo_in "$crate" "$work/$crate.$mode.$run.log" "$mode" -j "$jobs"
    if [ "$(wc -l <"$t")" != 1 ]; then
        echo "expected one timed rustc run of $crate, got:" >&2; cat "$t" >&2; exit 1
    fi
    read -r wall user sys rss <"$t"
    echo "$mode $side $run $wall $user $sys $rss" >>"$results"
    printf '  run %d %-5s %-6s cpu %6.2f s  wall %6.2f s  (load %s)\n' "$run" "$mode" "$side" \
        "$(echo "$user $sys" | awk '{ print $1 + $2 }')" "$wall" "$(cut -d' ' -f1 /proc/loadavg)"
}

echo "measuring: $runs interleaved runs, measured step with -j$jobs, CARGO_INCREMENTAL=0"
for run in $(seq 1 "$runs"); do
    if [ $((run % 2)) = 1 ]; then order="entity diesel"; else order="diesel entity"; fi
    for mode in build check; do
        for side in $order; do measure "$mode" "$side" "$run"; done
    done
done

# --- report ---------------------------------------------------------------------------------

# median, min, max of a column over the runs of one mode and side.
stats() { # mode side column(wall|cpu|rss)
    awk -v mode="$1" -v side="$2" -v col="$3" '
        $1 == mode && $2 == side {
            v = (col == "wall") ? $4 : (col == "cpu") ? $5 + $6 : $7 / 1024
            print v
        }' "$results" | sort -g | awk '
        { v[NR] = $1 }
        END {
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.2f %.2f %.2f\n", med, v[1], v[NR]
        }'
}

echo
echo "Compile time of the bench crate alone (its rustc run; median (min-max) of $runs runs)"
printf '%-6s %-7s %24s %24s %14s\n' mode side "CPU user+sys, s" "wall, s" "max RSS, MiB"
for mode in build check; do
    for side in entity diesel; do
        read -r cm cl ch <<<"$(stats "$mode" "$side" cpu)"
        read -r wm wl wh <<<"$(stats "$mode" "$side" wall)"
        read -r rm _ _ <<<"$(stats "$mode" "$side" rss)"
        printf '%-6s %-7s %24s %24s %14.0f\n' "$mode" "$side" "$cm ($cl-$ch)" "$wm ($wl-$wh)" "$rm"
    done
    read -r ce _ _ <<<"$(stats "$mode" entity cpu)"
    read -r cd _ _ <<<"$(stats "$mode" diesel cpu)"
    read -r we _ _ <<<"$(stats "$mode" entity wall)"
    read -r wd _ _ <<<"$(stats "$mode" diesel wall)"
    printf '%-6s %-7s %24s %24s\n' "$mode" "ratio" \
        "$(awk -v a="$ce" -v b="$cd" 'BEGIN { printf "%.2fx", a / b }')" \
        "$(awk -v a="$we" -v b="$wd" 'BEGIN { printf "%.2fx", a / b }')"
done

# Artifacts: the rlib of `cargo build` (object code + metadata, from `ar`) and the rmeta of
# `cargo check`.
echo
echo "Artifacts (bytes)"
printf '%-7s %12s %12s %12s %8s %14s\n' side rlib "objects" "metadata" "objects#" "rmeta (check)"
for side in entity diesel; do
    rlib="$target_dir/debug/libct_$side.rlib"
    rmeta="$(ls -t "$target_dir"/debug/deps/libct_"$side"-*.rmeta | head -n 1)"
    read -r objs nobj meta <<<"$(ar tv "$rlib" | awk '
        { size = $3; name = $NF }
        name ~ /\.o$/ { o += size; n++ }
        name == "lib.rmeta" { m = size }
        END { print o + 0, n + 0, m + 0 }')"
    printf '%-7s %12d %12d %12d %8d %14d\n' "$side" "$(stat -c %s "$rlib")" "$objs" "$meta" "$nobj" \
        "$(stat -c %s "$rmeta")"
done
e="$(stat -c %s "$target_dir/debug/libct_entity.rlib")"
d="$(stat -c %s "$target_dir/debug/libct_diesel.rlib")"
echo "rlib ratio entity/diesel: $(awk -v a="$e" -v b="$d" 'BEGIN { printf "%.2fx", a / b }')"
echo
echo "raw runs (mode side run wall user sys maxrss_kb):"
sed 's/^/  /' "$results"
