//! Coordinated transactions (two-phase commit) across PostgreSQL and MariaDB, attacked the way
//! a crash attacks them: the coordinator process is killed (SIGKILL) at every step, `recover`
//! runs afterwards, and each transfer must then be in both databases or in neither, with the
//! money summed over both unchanged and no prepared transaction left holding locks. Also: the
//! log database taking part (SQLite committed last, in one phase), a PostgreSQL server
//! restarted with a prepared branch, and the configurations that cannot work refused up front.
//!
//! PostgreSQL's shared server has `max_prepared_transactions = 0`; the two-phase tests use a
//! private server (`tests/cluster/pg-prepared.sh`, see `coordinate_rig`), started here and
//! stopped by `run-tests`.

use crate::common::TestDb;
use crate::coordinate_rig::{
    open, prepare_tables, prepared_left, rig_script, state, transfer, transfer_records,
    unique_name, Rig, Transfer, XaSweep, START,
};
use custodian::coordinate::Coordinator;
use custodian::prelude::*;
use custodian::BackendKind;
use std::process::Command;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ the killed coordinator

/// What a child process is told to do (environment variable `CUSTODIAN_2PC_CHILD`):
/// `pg_url|my_url|log_url|name|log_in_pg|kill_at|transfer_id|amount`.
const CHILD: &str = "CUSTODIAN_2PC_CHILD";

/// Runs in the child: one coordinated transfer, SIGKILLing itself at step `kill_at`.
fn child_main(spec: &str) {
    let f: Vec<&str> = spec.split('|').collect();
    let (pg_url, my_url, log_url, name) = (f[0], f[1], f[2], f[3]);
    let log_in_pg = f[4] == "1";
    let kill_at = f[5].to_string();
    let (id, amount): (i64, i64) = (f[6].parse().unwrap(), f[7].parse().unwrap());
    let pg = open(pg_url);
    let my = open(my_url);
    let log = if log_in_pg { pg.clone() } else { open(log_url) };
    let coord = Coordinator::new(name, &log).unwrap().observe(move |step| {
        if format!("{step:?}") == kill_at {
            let _ = Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(60));
        }
    });
    transfer(&coord, &pg, &my, id, amount).unwrap();
}

/// A coordinated transfer commits in both databases, each with its own audit records under
/// the same transaction id. In a child process started by the crash tests, this test is the
/// coordinator they kill instead.
#[test]
fn a_transfer_commits_in_both_databases() {
    if let Ok(spec) = std::env::var(CHILD) {
        child_main(&spec);
        return;
    }
    let rig = Rig::new();
    let coord = Coordinator::new(&rig.name, &rig.log).unwrap();
    transfer(&coord, &rig.pg, &rig.my, 7, 250).unwrap();
    let ((pg_balance, pg_t), (my_balance, my_t)) = state(&rig.pg, &rig.my);
    assert_eq!((pg_balance, my_balance), (START - 250, START + 250));
    assert_eq!(pg_t, vec![Transfer { id: 7, amount: 250 }]);
    assert_eq!(my_t, pg_t);
    let (pg_rec, my_rec) = (transfer_records(&rig.pg), transfer_records(&rig.my));
    assert_eq!(pg_rec.len(), 1);
    assert_eq!(
        pg_rec, my_rec,
        "one record per database, same transaction id"
    );
    for db in [&*rig.pg, &*rig.my] {
        db.seal_audit().unwrap();
        let report = db.verify_audit(None).unwrap();
        assert!(report.is_intact(), "{report:?}");
    }
    assert_eq!(prepared_left(&rig.pg.url, &rig.my.url, coord.name()), 0);
}

/// The steps a coordinator can be killed at, and whether the transfer must then be committed
/// (after the decision) or rolled back (before it).
fn kill_points(log_in_pg: bool) -> Vec<(&'static str, bool)> {
    if log_in_pg {
        // PostgreSQL holds the log and commits in one phase; MariaDB (participant 1) prepares.
        vec![
            ("BeforePrepare", false),
            ("Prepared(1)", false),
            ("Decided", true),
            ("Committed(1)", true),
            ("none", true),
        ]
    } else {
        vec![
            ("BeforePrepare", false),
            ("Prepared(0)", false),
            ("Prepared(1)", false),
            ("Decided", true),
            ("Committed(0)", true),
            ("Committed(1)", true),
            ("none", true),
        ]
    }
}

/// Spawns this test binary as a coordinator that kills itself at `kill_at`; waits for it.
pub(crate) fn run_child(spec: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "coordinate::a_transfer_commits_in_both_databases",
            "--exact",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD, spec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the coordinator process");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the coordinator process did not finish within 60 s: {spec}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills the coordinator at every step, in random order, many times (CUSTODIAN_2PC_RUNS,
/// default 1,000), with the log in a separate SQLite database and in PostgreSQL itself. After
/// each kill `recover` runs; then the transfer is in both databases or in neither (in both
/// exactly when the kill came after the decision), the money over both is unchanged, and no
/// prepared transaction is left.
#[test]
fn a_killed_coordinator_leaves_all_or_nothing_after_recover() {
    let rig = Rig::new();
    let runs: usize = std::env::var("CUSTODIAN_2PC_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut committed_total = 0;
    let (mut in_child, mut in_recover) = (Duration::ZERO, Duration::ZERO);
    let mut outcomes = std::collections::BTreeMap::new();
    for run in 0..runs {
        let log_in_pg = next(2) == 0;
        let points = kill_points(log_in_pg);
        let (kill_at, must_commit) = points[next(points.len())];
        let name = format!("{}r{run}", rig.name);
        let id = run as i64 + 1;
        let amount = 1 + next(100) as i64;
        let spec = [
            rig.pg.url.as_str(),
            rig.my.url.as_str(),
            rig.log.url.as_str(),
            &name,
            if log_in_pg { "1" } else { "0" },
            kill_at,
            &id.to_string(),
            &amount.to_string(),
        ]
        .join("|");
        let t0 = Instant::now();
        run_child(&spec);
        in_child += t0.elapsed();
        let t1 = Instant::now();
        let log_db: &Db = if log_in_pg { &rig.pg } else { &rig.log };
        let coord = Coordinator::new(&name, log_db).unwrap();
        coord.recover(&[&rig.pg, &rig.my]).unwrap();
        in_recover += t1.elapsed();
        assert_eq!(
            prepared_left(&rig.pg.url, &rig.my.url, &name),
            0,
            "run {run} ({spec}): prepared transactions left after recover"
        );
        let ((pg_balance, pg_t), (my_balance, my_t)) = state(&rig.pg, &rig.my);
        let in_pg = pg_t.iter().any(|t| t.id == id);
        let in_my = my_t.iter().any(|t| t.id == id);
        assert_eq!(
            in_pg, in_my,
            "run {run} ({spec}): transfer in one database only"
        );
        assert_eq!(
            in_pg, must_commit,
            "run {run} ({spec}): killed at {kill_at}, expected committed = {must_commit}"
        );
        if in_pg {
            committed_total += amount;
        }
        assert_eq!(
            (pg_balance, my_balance),
            (START - committed_total, START + committed_total),
            "run {run} ({spec}): balances do not match the committed transfers"
        );
        *outcomes.entry((log_in_pg, kill_at)).or_insert(0) += 1;
    }
    // Every branch left behind belongs to the chains: both trails still verify.
    for db in [&*rig.pg, &*rig.my] {
        db.seal_audit().unwrap();
        let report = db.verify_audit(None).unwrap();
        assert!(report.is_intact(), "{report:?}");
    }
    eprintln!(
        "{runs} killed coordinators (child processes {in_child:?}, recovery {in_recover:?}), \
         by (log in PostgreSQL, kill step): {outcomes:?}"
    );
}

/// A branch prepared on a server that then crashes and restarts is still there and still
/// resolved by `custodian recover`: committed, since the coordinator was killed after
/// deciding.
#[test]
fn a_prepared_branch_survives_a_server_restart() {
    let rig = Rig::exclusive();
    let name = rig.name.clone();
    let spec = [
        rig.pg.url.as_str(),
        rig.my.url.as_str(),
        rig.log.url.as_str(),
        &name,
        "0",
        "Decided",
        "1",
        "40",
    ]
    .join("|");
    run_child(&spec);
    assert_eq!(prepared_left(&rig.pg.url, &rig.my.url, &name), 2);
    let out = Command::new(rig_script()).arg("restart").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Resolved from the command line, as an operator would after the crash.
    let status = custodian::cli::run_args(
        [
            "custodian",
            "recover",
            "--coordinator",
            &name,
            "--log",
            &rig.log.url,
            &rig.pg.url,
            &rig.my.url,
        ],
        &[],
    );
    assert_eq!(status, 0);
    assert_eq!(prepared_left(&rig.pg.url, &rig.my.url, &name), 0);
    let ((pg_balance, pg_t), (my_balance, my_t)) = state(&rig.pg, &rig.my);
    assert_eq!((pg_balance, my_balance), (START - 40, START + 40));
    assert_eq!((pg_t.len(), my_t.len()), (1, 1));
}

/// SQLite cannot prepare: as the log database it takes part, committed last in one phase,
/// and the transfer lands in all three databases.
#[test]
fn sqlite_takes_part_as_the_log_database() {
    let rig = Rig::new();
    prepare_tables(&rig.log);
    let coord = Coordinator::new(&rig.name, &rig.log).unwrap();
    coord
        .run(&[&rig.pg, &rig.my, &rig.log], |s| {
            for (i, s) in s.iter_mut().enumerate() {
                s.insert(Transfer {
                    id: 1,
                    amount: 10 * (i as i64 + 1),
                })?;
            }
            Ok(())
        })
        .unwrap();
    for (i, db) in [&*rig.pg, &*rig.my, &*rig.log].into_iter().enumerate() {
        let t = db.session().unwrap().get::<Transfer>(&1).unwrap();
        assert_eq!(t.amount, 10 * (i as i64 + 1));
    }
    // A failing closure leaves nothing in any of them.
    let err = coord
        .run(&[&rig.pg, &rig.my, &rig.log], |s| {
            for s in s.iter_mut() {
                s.insert(Transfer { id: 2, amount: 1 })?;
            }
            Err::<(), _>(custodian::Error::config("test", "refused by the closure"))
        })
        .unwrap_err();
    assert!(matches!(err, custodian::Error::Config { .. }), "{err}");
    for db in [&*rig.pg, &*rig.my, &*rig.log] {
        assert_eq!(db.session().unwrap().find::<Transfer>(&2).unwrap(), None);
    }
    assert_eq!(prepared_left(&rig.pg.url, &rig.my.url, coord.name()), 0);
}

/// Configurations that cannot keep the all-or-nothing promise are refused with a Config
/// error before anything commits: SQLite as a participant that is not the log, a database
/// given twice, and PostgreSQL with `max_prepared_transactions = 0` (the shared server).
#[test]
fn what_cannot_prepare_is_refused() {
    let pg0 = TestDb::new(BackendKind::Postgres);
    let my = TestDb::new(BackendKind::Mysql);
    let base = unique_name();
    let _sweep = XaSweep(my.url.clone(), base.clone());
    let lite = TestDb::new(BackendKind::Sqlite);
    let log = TestDb::new(BackendKind::Sqlite);
    for db in [&*pg0, &*my, &*lite] {
        prepare_tables(db);
    }
    let coord = Coordinator::new(&base, &log).unwrap();
    let write = |s: &mut [Session]| {
        for s in s.iter_mut() {
            s.insert(Transfer { id: 1, amount: 1 })?;
        }
        Ok(())
    };
    let err = coord.run(&[&my, &lite], write).unwrap_err();
    assert!(
        matches!(&err, custodian::Error::Config { message, .. } if message.contains("log database")),
        "{err}"
    );
    let err = coord.run(&[&my, &my], write).unwrap_err();
    assert!(matches!(err, custodian::Error::Config { .. }), "{err}");
    let err = coord.run(&[&pg0, &my], write).unwrap_err();
    assert!(
        matches!(&err, custodian::Error::Config { field, .. } if field == "max_prepared_transactions"),
        "{err}"
    );
    for db in [&*pg0, &*my, &*lite] {
        assert_eq!(db.session().unwrap().find::<Transfer>(&1).unwrap(), None);
    }
    let err = Coordinator::new("no spaces allowed", &log).unwrap_err();
    assert!(matches!(err, custodian::Error::Config { .. }), "{err}");
}

/// A recovery that runs while a coordinator is between its prepares and its decision (a slow
/// coordinator taken for a dead one) rolls the branches back and records `abort`; the
/// coordinator's commit decision then fails on that record, so the transfer is in neither
/// database, never in one.
#[test]
fn a_recovery_racing_a_live_coordinator_wins_cleanly() {
    let rig = Rig::new();
    let name = rig.name.clone();
    let recovered = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (pg_db, my_db, seen) = ((*rig.pg).clone(), (*rig.my).clone(), recovered.clone());
    // The log is PostgreSQL itself: MariaDB (participant 1) is prepared, then recovery runs.
    let coord = Coordinator::new(&name, &rig.pg)
        .unwrap()
        .observe(move |step| {
            if step == custodian::coordinate::Step::Prepared(1) {
                let other = Coordinator::new(&name, &pg_db).unwrap();
                *seen.lock().unwrap() = Some(other.recover(&[&pg_db, &my_db]).unwrap());
            }
        });
    let err = transfer(&coord, &rig.pg, &rig.my, 1, 5).unwrap_err();
    let report = recovered.lock().unwrap().take().expect("recovery ran");
    // MariaDB keeps the prepared branch with the live coordinator's connection: recovery
    // records `abort` and leaves the branch to it.
    assert_eq!(report.attached.len(), 1, "{report:?}");
    assert!(report.committed.is_empty(), "{report:?}");
    assert!(
        err.constraint_kind().is_some() || err.is_retryable(),
        "{err}"
    );
    let ((pg_balance, pg_t), (my_balance, my_t)) = state(&rig.pg, &rig.my);
    assert_eq!((pg_balance, my_balance), (START, START));
    assert!(pg_t.is_empty() && my_t.is_empty());
    assert_eq!(prepared_left(&rig.pg.url, &rig.my.url, coord.name()), 0);
}

/// A set update that failed half-done inside a branch (a trigger changes the version the write
/// path maintains, so the update is refused after its statement ran) dooms that branch as it
/// would doom a transaction: the closure swallows the error, yet nothing is prepared or
/// committed in either database.
#[test]
fn a_doomed_branch_is_never_prepared() {
    use crate::set_fast_path::{sf_ledgers, Ledger};
    let rig = Rig::new();
    rig.my.create_table::<Ledger>().unwrap();
    let row = Ledger {
        id: 1,
        balance: 10,
        note: "as it was".into(),
        version: 0,
        updated_at: chrono::NaiveDateTime::default(),
    };
    let before = rig.my.session().unwrap().insert(row).unwrap();
    rig.my.raw_sql(
        "CREATE TRIGGER co_bump BEFORE UPDATE ON sf_ledgers FOR EACH ROW \
         SET NEW.version = IF(NEW.note = 'poison', NEW.version + 5, NEW.version)",
    );
    let coord = Coordinator::new(&rig.name, &rig.log).unwrap();
    let err = coord
        .run(&[&rig.pg, &rig.my], |s| {
            s[0].insert(Transfer { id: 1, amount: 1 })?;
            let swallowed = s[1]
                .update_where::<Ledger>(sf_ledgers::id.eq(1), sf_ledgers::note.eq("poison"))
                .unwrap_err();
            assert!(
                matches!(swallowed, custodian::Error::Forbidden(_)),
                "{swallowed:?}"
            );
            Ok(())
        })
        .unwrap_err();
    assert_eq!(
        err.integrity_kind(),
        Some(custodian::IntegrityKind::RollbackOnly),
        "{err:?}"
    );
    assert_eq!(
        rig.pg.session().unwrap().find::<Transfer>(&1).unwrap(),
        None
    );
    let after = rig.my.session().unwrap().get::<Ledger>(&1).unwrap();
    assert_eq!((after.note, after.version), (before.note, before.version));
    assert_eq!(prepared_left(&rig.pg.url, &rig.my.url, coord.name()), 0);
}
