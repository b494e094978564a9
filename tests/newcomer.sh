#!/usr/bin/env bash
# What a newcomer does first, checked on the default features (embedded SQLite only):
#  1. the README's first command, `cargo run --example compliance_reporting`, builds and runs,
#     and the binary links neither libpq nor libmariadb (so it builds on a machine without them);
#  2. a fresh crate that depends on custodian but forgets diesel gets one error saying what to add;
#  3. the same crate with diesel added builds and runs its entity on SQLite.
# Called by run-tests before the test suite; exits non-zero with the reason on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
fail() { echo "error: $*" >&2; exit 1; }

echo "== cargo run --example compliance_reporting (default features)"
out=$(cargo run -q -j2 --example compliance_reporting) || fail "the compliance example failed"
grep -q "audit chain: .*intact" <<<"$out" || fail "the compliance example did not verify its trail: $out"
bin="$target/debug/examples/compliance_reporting"
libs=$(ldd "$bin") || fail "ldd $bin"
if grep -Eq 'libpq|libmariadb|libmysqlclient' <<<"$libs"; then
  fail "the default build links a client library:"$'\n'"$libs"
fi
echo "links no client library"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/src"
cp Cargo.lock "$scratch/" # the versions the workspace was tested with, resolvable offline
cat > "$scratch/src/main.rs" <<'RS'
use custodian::prelude::*;

#[entity(table = "notes")]
pub struct Note {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub body: String,
}

fn main() -> custodian::Result<()> {
    let config = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
    let db = custodian::open(config)?.acting_as(custodian::Principal::new("newcomer"));
    db.create_table::<Note>()?;
    let note = db.session()?.insert(Note { id: 0, body: "hello".into() })?;
    println!("stored note {}", note.id);
    Ok(())
}
RS
manifest() { # extra dependency lines
  # The workspace's dev profile, so the scratch crate reuses the example's build artifacts.
  printf '[package]\nname = "newcomer"\nversion = "0.1.0"\nedition = "2021"\n\n[workspace]\n\n[profile.dev]\ndebug = "line-tables-only"\n\n[profile.dev.package."*"]\ndebug = false\n\n[dependencies]\ncustodian = { path = "%s" }\n%s' "$root" "$1" > "$scratch/Cargo.toml"
}

echo
echo "== a crate without diesel"
manifest ""
if log=$(cd "$scratch" && cargo build -q -j2 --offline 2>&1); then
  fail "a crate using #[entity] without diesel built"
fi
grep -q "needs \`diesel\` among this crate's dependencies" <<<"$log" || fail "no message naming diesel:"$'\n'"$log"
# The first error is #[entity]'s; what follows is only the code using the entity (no `Entity`
# impl), never diesel's unresolved `::diesel` paths.
first=$(grep -m1 '^error' <<<"$log")
grep -q "needs \`diesel\`" <<<"$first" || fail "the first error does not name diesel:"$'\n'"$log"
if grep -E '^error\[E043[23]\]' <<<"$log"; then fail "unresolved paths besides the message:"$'\n'"$log"; fi
echo "the first error names diesel; no unresolved diesel paths"

echo "== the same crate with diesel"
manifest 'diesel = { version = "2.3", default-features = false }'
out=$(cd "$scratch" && cargo run -q -j2 --offline) || fail "the crate with diesel failed"
[ "$out" = "stored note 1" ] || fail "unexpected output: $out"
echo "builds and runs: $out"
