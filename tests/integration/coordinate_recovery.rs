//! Recovery of coordinated transactions beyond `custodian recover` on a live server: the
//! recovery pass at open (on when configured, off by default), and a prepared MariaDB XA
//! branch that outlives its server (a SIGKILLed server and a clean restart), resolved by
//! `custodian recover` afterwards. The coordinator is a child process killed after it
//! prepared (see `coordinate`).
//!
//! The MariaDB server that restarts is private (`tests/cluster/mariadb-xa.sh`, port
//! `CUSTODIAN_MARIADB_XA_PORT`, default 25480), started here and stopped by `run-tests`.

use crate::common::TestDb;
use crate::coordinate::run_child;
use crate::coordinate_rig::{
    config, open, prepare_tables, prepared_left, state, unique_name, PreparedPg, Rig, XaSweep,
    PRIVATE_PG, START,
};
use custodian::diesel::connection::SimpleConnection;
use custodian::diesel::Connection;
use custodian::BackendKind;
use std::process::Command;
use std::sync::OnceLock;

/// The child's instructions: kill the coordinator at `kill_at` during transfer `id`.
fn spec(pg: &str, my: &str, log: &str, name: &str, kill_at: &str, id: i64, amount: i64) -> String {
    [
        pg,
        my,
        log,
        name,
        "0",
        kill_at,
        &id.to_string(),
        &amount.to_string(),
    ]
    .join("|")
}

/// A database opened with recovery at open for coordinator `name` (log at `log`) when `on`.
fn reopen(url: &str, on: bool, name: &str, log: &str) -> custodian::Db {
    let cfg = config(url);
    let cfg = if on {
        cfg.recover_at_open(&[name], log)
    } else {
        cfg
    };
    custodian::open(cfg).expect("open with recovery at open")
}

/// A coordinator killed after deciding leaves both branches prepared. Opening a database
/// with recovery at open off leaves them; with it on, opening PostgreSQL commits its branch
/// and opening MariaDB commits the other. A coordinator killed before deciding: opening with
/// recovery on rolls both back. The sums stay whole, nothing stays prepared.
#[test]
fn recovery_at_open_resolves_the_branches_of_its_coordinators() {
    let rig = Rig::new();
    let (pg, my, log, name) = (&rig.pg, &rig.my, &rig.log, &rig.name);

    run_child(&spec(&pg.url, &my.url, &log.url, name, "Decided", 1, 40));
    assert_eq!(prepared_left(&pg.url, &my.url, name), 2);
    drop(reopen(&pg.url, false, name, &log.url));
    drop(reopen(&my.url, false, name, &log.url));
    assert_eq!(
        prepared_left(&pg.url, &my.url, name),
        2,
        "recovery at open is off by default"
    );
    // Another coordinator's name resolves nothing of this one's.
    drop(reopen(&pg.url, true, "someone-else", &log.url));
    assert_eq!(prepared_left(&pg.url, &my.url, name), 2);
    drop(reopen(&pg.url, true, name, &log.url));
    assert_eq!(
        prepared_left(&pg.url, &my.url, name),
        1,
        "PostgreSQL's branch is resolved when PostgreSQL opens, MariaDB's waits"
    );
    drop(reopen(&my.url, true, name, &log.url));
    assert_eq!(prepared_left(&pg.url, &my.url, name), 0);
    let ((pg_balance, pg_t), (my_balance, my_t)) = state(pg, my);
    assert_eq!((pg_balance, my_balance), (START - 40, START + 40));
    assert_eq!((pg_t.len(), my_t.len()), (1, 1));

    run_child(&spec(&pg.url, &my.url, &log.url, name, "Prepared(1)", 2, 7));
    assert_eq!(prepared_left(&pg.url, &my.url, name), 2);
    drop(reopen(&my.url, true, name, &log.url));
    drop(reopen(&pg.url, true, name, &log.url));
    assert_eq!(prepared_left(&pg.url, &my.url, name), 0);
    let ((pg_balance, pg_t), (my_balance, my_t)) = state(pg, my);
    assert_eq!(
        (pg_balance, my_balance),
        (START - 40, START + 40),
        "the undecided transfer is rolled back in both"
    );
    assert_eq!((pg_t.len(), my_t.len()), (1, 1));

    // A log that cannot be reached fails the open rather than leave branches holding locks.
    run_child(&spec(&pg.url, &my.url, &log.url, name, "Decided", 3, 1));
    let mut cfg =
        config(&pg.url).recover_at_open(&[name.as_str()], "postgres://postgres@127.0.0.1:9/x");
    cfg.pool.connection_timeout_ms = 2_000;
    let err = custodian::open(cfg).unwrap_err();
    assert!(matches!(err, custodian::Error::Connection { .. }), "{err}");
    drop(reopen(&pg.url, true, name, &log.url));
    drop(reopen(&my.url, true, name, &log.url));
    assert_eq!(prepared_left(&pg.url, &my.url, name), 0);
}

// ------------------------------------------------------------- MariaDB restarting

fn xa_script() -> String {
    format!("{}/tests/cluster/mariadb-xa.sh", env!("CARGO_MANIFEST_DIR"))
}

fn xa_rig(command: &str) {
    let out = Command::new(xa_script())
        .arg(command)
        .output()
        .expect("run tests/cluster/mariadb-xa.sh");
    assert!(
        out.status.success(),
        "tests/cluster/mariadb-xa.sh {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The private MariaDB server's root URL, started once per process.
fn private_my_base() -> &'static str {
    static UP: OnceLock<String> = OnceLock::new();
    UP.get_or_init(|| {
        xa_rig("up");
        let port = crate::cluster_rig::rig_port("CUSTODIAN_MARIADB_XA_PORT", 25480);
        format!("mysql://root@127.0.0.1:{port}")
    })
}

/// Resolves coordinator `name`'s branches with `custodian recover`, as an operator would.
fn recover_cli(name: &str, log: &str, dbs: &[&str]) {
    let mut args = vec!["custodian", "recover", "--coordinator", name, "--log", log];
    args.extend_from_slice(dbs);
    assert_eq!(custodian::cli::run_args(args, &[]), 0, "custodian recover");
}

/// MariaDB keeps a prepared XA branch across a crash of its server (SIGKILL) and across a
/// clean restart, and `custodian recover` resolves it by the log afterwards: committed when
/// the coordinator was killed after deciding, rolled back when it was killed before.
#[test]
fn a_prepared_xa_branch_survives_a_mariadb_restart() {
    let _shared = PRIVATE_PG.read().unwrap_or_else(|p| p.into_inner());
    let pg = PreparedPg::new();
    let base = private_my_base();
    let db_name = format!("cr_{}", std::process::id());
    let admin =
        || custodian::diesel::MysqlConnection::establish(base).expect("reach the private MariaDB");
    admin()
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {db_name}; CREATE DATABASE {db_name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .unwrap();
    let my_url = format!("{base}/{db_name}");
    let name = unique_name();
    let _sweep = XaSweep(my_url.clone(), name.clone());
    let log = TestDb::new(BackendKind::Sqlite);
    prepare_tables(&pg);
    {
        let my = open(&my_url);
        prepare_tables(&my);
    }
    let my_state = || {
        let my = open(&my_url);
        state(&pg, &my)
    };

    for (step, (rig, kill_at, id, committed)) in [
        ("crash", "Decided", 1, 40),
        ("restart", "Prepared(1)", 2, 40),
        ("restart", "Committed(0)", 3, 45),
    ]
    .into_iter()
    .enumerate()
    {
        run_child(&spec(
            &pg.url,
            &my_url,
            &log.url,
            &name,
            kill_at,
            id,
            5 + 35 * (id == 1) as i64,
        ));
        let before = prepared_left(&pg.url, &my_url, &name);
        assert!(before >= 1, "step {step}: nothing prepared after {kill_at}");
        xa_rig(rig);
        assert_eq!(
            prepared_left(&pg.url, &my_url, &name),
            before,
            "step {step}: the MariaDB branch did not survive `{rig}`"
        );
        recover_cli(&name, &log.url, &[&pg.url, &my_url]);
        assert_eq!(prepared_left(&pg.url, &my_url, &name), 0, "step {step}");
        let ((pg_balance, pg_t), (my_balance, my_t)) = my_state();
        assert_eq!(
            (pg_balance, my_balance),
            (START - committed, START + committed),
            "step {step}: killed at {kill_at}, then `{rig}`"
        );
        assert_eq!(pg_t, my_t, "step {step}");
    }
    drop(_sweep);
    let _ = admin().batch_execute(&format!("DROP DATABASE IF EXISTS {db_name}"));
}
