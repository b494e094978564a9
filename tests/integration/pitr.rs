//! Point-in-time restore of PostgreSQL from its WAL archive, checked against the audit trail:
//! after a base backup and a workload of audited writes with recorded times, the database is
//! restored to a time T in the middle of the workload (`tests/cluster/pg-pitr.sh`:
//! `archive_command`, `pg_basebackup`, `restore_command`, `recovery_target_time`). custodian's
//! as-of report for T, built from the full audit trail of the original, must equal the
//! restored database's rows exactly; the restored trail must be the original's records up to T
//! and must verify; and a change made behind custodian's back in the restored copy must show.
//!
//! The archiving server is private (port `CUSTODIAN_PG_PITR_PORT`, default 25470, and the next
//! port for the restored copy), started here and stopped by `run-tests`.

use crate::common::AUDIT_KEY;
use custodian::audit::history::AsOf;
use custodian::audit::tables::custodian_audit as a;
use custodian::diesel::connection::SimpleConnection;
use custodian::diesel::Connection;
use custodian::prelude::*;
use custodian::{DatabaseConfig, Principal};
use std::process::Command;
use std::time::Duration;

/// A control whose rows the workload inserts, changes and deletes.
#[entity(table = "pitr_controls")]
#[derive(Debug, Clone, PartialEq)]
pub struct PitrControl {
    #[column(primary_key)]
    pub id: i64,
    pub code: String,
    pub owner: Option<String>,
    pub score: i64,
}

fn rig(args: &[&str]) {
    let script = format!("{}/tests/cluster/pg-pitr.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&script)
        .args(args)
        .output()
        .expect("run tests/cluster/pg-pitr.sh");
    assert!(
        out.status.success(),
        "tests/cluster/pg-pitr.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn open(url: &str) -> Db {
    let mut cfg = DatabaseConfig::from_url(url).expect("valid url");
    cfg.pool.max_size = 2;
    cfg.pool.min_idle = Some(1);
    cfg.audit.key = Some(AUDIT_KEY.into());
    custodian::open(cfg)
        .expect("open database")
        .acting_as(Principal::new("pitr-test").with_role("admin"))
}

/// Every row, by id.
fn rows(db: &Db) -> Vec<PitrControl> {
    db.session()
        .unwrap()
        .select::<PitrControl, _>(pitr_controls::table.order(pitr_controls::id))
        .unwrap()
}

/// The as-of report for `t` from `db`'s audit trail, by id.
fn as_of(db: &Db, t: chrono::NaiveDateTime) -> Vec<PitrControl> {
    let mut v = db
        .session()
        .unwrap()
        .as_of_all::<PitrControl>(AsOf::Time(t))
        .unwrap();
    v.sort_by_key(|c| c.id);
    v
}

/// The identities (transaction id, ordinal) of the audit records in `db`, filtered by `keep`
/// on their time.
fn records(db: &Db, keep: impl Fn(chrono::NaiveDateTime) -> bool) -> Vec<(String, i32)> {
    let all: Vec<(String, i32, custodian::sql_types::StoredDatetime)> = db
        .session()
        .unwrap()
        .load(a::table.order(a::id).select((a::tx_id, a::ordinal, a::at)))
        .unwrap();
    all.into_iter()
        .filter(|r| keep(r.2 .0))
        .map(|r| (r.0, r.1))
        .collect()
}

/// One round of the workload: two rows inserted, one changed, one deleted, in a transaction.
fn round(db: &Db, r: i64) {
    db.session()
        .unwrap()
        .transaction(|s| {
            for k in 0..2 {
                let id = r * 10 + k;
                s.insert(PitrControl {
                    id,
                    code: format!("C-{id}"),
                    owner: (k == 0).then(|| format!("owner-{r}")),
                    score: r,
                })?;
            }
            if r > 0 {
                let mut c: PitrControl = s.get(&((r - 1) * 10))?;
                c.score += 100;
                c.owner = None;
                s.update(&mut c)?;
                let gone: PitrControl = s.get(&((r - 1) * 10 + 1))?;
                s.delete(&gone)?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_point_in_time_restore_matches_the_as_of_report() {
    let port = crate::cluster_rig::rig_port("CUSTODIAN_PG_PITR_PORT", 25470);
    rig(&["up"]);
    let name = format!("pitr_{}", std::process::id());
    let server = format!("postgres://postgres@127.0.0.1:{port}");
    let mut admin = custodian::diesel::PgConnection::establish(&format!("{server}/postgres"))
        .expect("reach the archiving PostgreSQL");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let db = open(&format!("{server}/{name}"));
    db.install_audit().unwrap();
    db.create_table::<PitrControl>().unwrap();
    rig(&["basebackup"]);

    // The workload, with the time after each round (the gaps keep each round's record times
    // and commit on one side of every recorded time).
    let gap = Duration::from_millis(40);
    let mut times = Vec::new();
    for r in 0..8 {
        round(&db, r);
        db.seal_audit().unwrap();
        std::thread::sleep(gap);
        times.push(chrono::Utc::now().naive_utc());
        std::thread::sleep(gap);
    }
    rig(&["archive"]);
    let t = times[3];
    let report = as_of(&db, t);
    assert_ne!(
        report,
        rows(&db),
        "T must be a point the database has since left"
    );
    assert_eq!(report.len(), 5, "{report:?}");

    rig(&["restore", &t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()]);
    let restored = open(&format!(
        "postgres://postgres@127.0.0.1:{}/{name}",
        port + 1
    ));
    assert_eq!(
        rows(&restored),
        report,
        "the restored database differs from the as-of report for {t}"
    );
    assert_eq!(
        as_of(&restored, t),
        report,
        "the restored trail's own report"
    );
    assert_eq!(
        records(&restored, |_| true),
        records(&db, |at| at <= t),
        "the restored trail is not the original's records up to {t}"
    );
    assert!(restored
        .session()
        .unwrap()
        .audit_drift::<PitrControl>()
        .unwrap()
        .is_empty());
    restored.seal_audit().unwrap();
    let verified = restored.verify_audit(None).unwrap();
    assert!(verified.is_intact(), "{verified:?}");

    // A change behind custodian's back in the restored copy shows as drift and breaks the match.
    custodian::diesel::PgConnection::establish(&format!(
        "postgres://postgres@127.0.0.1:{}/{name}",
        port + 1
    ))
    .unwrap()
    .batch_execute("UPDATE pitr_controls SET score = score + 1 WHERE id = 30")
    .unwrap();
    assert_ne!(rows(&restored), report);
    let drift = restored
        .session()
        .unwrap()
        .audit_drift::<PitrControl>()
        .unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    drop(restored);
    drop(db);
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
