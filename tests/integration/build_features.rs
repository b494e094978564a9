//! What each backend feature links, read from cargo's own dependency graph: the default build
//! (embedded SQLite) needs neither PostgreSQL's nor MariaDB's client library, so the README's
//! first command builds on a machine with neither installed, and each server backend brings
//! only its own driver. (`run-tests` also builds the default example and checks with `ldd`
//! that the binary links neither library.)

use std::collections::BTreeSet;
use std::process::Command;

/// The crates `custodian` builds with (normal and build dependencies, for this machine) when only
/// `features` are on; `None` means the default features.
fn crates_built_with(features: Option<&str>) -> BTreeSet<String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "tree",
        "--offline",
        "--locked",
        "--package",
        "custodian",
        "--edges",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    if let Some(features) = features {
        cmd.args(["--no-default-features", "--features", features]);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

const LIBPQ: &str = "pq-sys";
const LIBMARIADB: &str = "mysqlclient-sys";
const SQLITE: &str = "libsqlite3-sys";

#[test]
fn the_default_build_embeds_sqlite_and_links_no_client_library() {
    let crates = crates_built_with(None);
    assert!(crates.contains(SQLITE), "{crates:?}");
    assert!(
        !crates.contains(LIBPQ),
        "the default build needs libpq: {crates:?}"
    );
    assert!(
        !crates.contains(LIBMARIADB),
        "the default build needs libmariadb: {crates:?}"
    );
}

#[test]
fn each_server_backend_brings_only_its_own_driver() {
    let pg = crates_built_with(Some("postgres"));
    assert!(pg.contains(LIBPQ), "{pg:?}");
    assert!(!pg.contains(LIBMARIADB) && !pg.contains(SQLITE), "{pg:?}");

    let my = crates_built_with(Some("mysql"));
    assert!(my.contains(LIBMARIADB), "{my:?}");
    assert!(!my.contains(LIBPQ) && !my.contains(SQLITE), "{my:?}");

    let all = crates_built_with(Some("postgres,mysql,sqlite"));
    assert!(
        [LIBPQ, LIBMARIADB, SQLITE].iter().all(|c| all.contains(*c)),
        "{all:?}"
    );
}

#[test]
fn a_url_for_a_backend_left_out_of_the_build_names_the_features() {
    use custodian::{BackendKind, DatabaseConfig, Db, Error};
    let sqlite_only: Vec<_> = custodian::backends::ALL
        .iter()
        .copied()
        .filter(|b| b.kind() == BackendKind::Sqlite)
        .collect();
    let config = DatabaseConfig::from_url("postgres://auditor:secret@127.0.0.1/ledger").unwrap();
    let err = Db::open(config, &sqlite_only).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(text.contains("this build has sqlite"), "{text}");
    assert!(text.contains("`postgres`"), "{text}");
    assert!(!text.contains("secret"), "the password leaked: {text}");
}
