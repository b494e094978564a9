//! Audited writes never degrade silently: without an audit key (and without unkeyed seals chosen
//! explicitly) they are refused before anything is written; the key in `CUSTODIAN_AUDIT_KEY`
//! reaches `custodian::connect`; a principal with an empty id is refused.

use crate::common::{TestDb, AUDIT_KEY};
use custodian::diesel::sql_types::BigInt;
use custodian::diesel::{Connection, QueryableByName, RunQueryDsl};
use custodian::prelude::*;
use custodian::{BackendKind, DatabaseConfig, Principal};
use std::process::Command;

/// A record kept under audit.
#[entity(table = "guarded_notes")]
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    #[column(primary_key)]
    pub id: i64,
    pub text: String,
}

fn note(id: i64) -> Note {
    Note {
        id,
        text: format!("note {id}"),
    }
}

/// A key other than the test suite's.
const ENV_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows of `table`, counted with SQL on a separate connection (not through custodian).
fn raw_count(db: &TestDb, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    let query = custodian::diesel::sql_query(sql);
    let row: Count = match db.kind {
        BackendKind::Postgres => query
            .get_result(&mut custodian::diesel::PgConnection::establish(&db.url).unwrap())
            .unwrap(),
        BackendKind::Mysql => query
            .get_result(&mut custodian::diesel::MysqlConnection::establish(&db.url).unwrap())
            .unwrap(),
        _ => query
            .get_result(
                &mut custodian::diesel::SqliteConnection::establish(
                    custodian::backends::sqlite::path_of(&db.url),
                )
                .unwrap(),
            )
            .unwrap(),
    };
    row.n
}

/// Runs `scenario` on a fresh database of each backend configured by `tweak`.
fn on_each_backend(tweak: fn(&mut DatabaseConfig), scenario: fn(&TestDb)) {
    for kind in [
        BackendKind::Postgres,
        BackendKind::Mysql,
        BackendKind::Sqlite,
    ] {
        scenario(&TestDb::with(kind, tweak));
    }
}

fn without_key(c: &mut DatabaseConfig) {
    c.audit.key = None;
}

#[test]
fn audited_writes_without_a_key_are_refused_and_write_nothing() {
    on_each_backend(without_key, |db| {
        db.create_table::<Note>().unwrap();
        let mut s = db.session().unwrap();
        let err = s.insert(note(1)).unwrap_err();
        assert!(
            matches!(&err, Error::Config { field, .. } if field == "audit.key"),
            "{}: {err}",
            db.kind
        );
        assert!(err.to_string().contains("CUSTODIAN_AUDIT_KEY"), "{err}");
        let err = s.insert_many(&mut [note(2), note(3)]).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err}");
        drop(s);
        assert_eq!(raw_count(db, "guarded_notes"), 0, "{}", db.kind);
        assert_eq!(raw_count(db, "custodian_audit"), 0, "{}", db.kind);
    });
}

/// Without a key, an audited write is refused before its first statement: nothing reaches the
/// database, not even a transaction that is then rolled back.
#[test]
fn audited_writes_without_a_key_send_no_sql() {
    on_each_backend(without_key, |db| {
        db.create_table::<Note>().unwrap();
        let mut s = db.session().unwrap();
        let (inserted, sent) = crate::common::count_statements(&mut s, |s| s.insert(note(1)));
        assert!(inserted.is_err(), "{}", db.kind);
        assert_eq!(sent, 0, "{}: statements sent by a refused insert", db.kind);
        let (deleted, sent) = crate::common::count_statements(&mut s, |s| {
            s.delete_where::<Note>(guarded_notes::id.eq(1))
        });
        assert!(deleted.is_err(), "{}", db.kind);
        assert_eq!(
            sent, 0,
            "{}: statements sent by a refused delete_where",
            db.kind
        );
    });
}

#[test]
fn unkeyed_seals_chosen_explicitly_are_allowed() {
    on_each_backend(
        |c| {
            c.audit.key = None;
            c.audit.unkeyed = true;
        },
        |db| {
            db.create_table::<Note>().unwrap();
            let mut s = db.session().unwrap();
            s.insert(note(1)).unwrap();
            s.insert_many(&mut [note(2), note(3)]).unwrap();
            drop(s);
            assert_eq!(raw_count(db, "guarded_notes"), 3, "{}", db.kind);
            assert_eq!(raw_count(db, "custodian_audit"), 3, "{}", db.kind);
            assert!(db.verify_audit(None).unwrap().is_intact());
        },
    );
}

#[test]
fn a_principal_with_an_empty_id_is_refused() {
    assert!(matches!(Principal::try_new(""), Err(Error::Forbidden(_))));
    assert!(matches!(
        Principal::try_new(" \t"),
        Err(Error::Forbidden(_))
    ));
    assert!(Principal::try_new("svc").is_ok());
    on_each_backend(
        |_| {},
        |db| {
            db.create_table::<Note>().unwrap();
            for id in ["", "  "] {
                let nobody = db.acting_as(Principal::new(id).with_role("admin"));
                let err = nobody.session().unwrap().insert(note(1)).unwrap_err();
                assert!(
                    matches!(&err, Error::Forbidden(m) if m.contains("empty id")),
                    "{}: {err}",
                    db.kind
                );
            }
            assert_eq!(raw_count(db, "guarded_notes"), 0, "{}", db.kind);
            assert_eq!(raw_count(db, "custodian_audit"), 0, "{}", db.kind);
        },
    );
}

#[test]
fn subject_keys_are_not_created_without_an_audit_key() {
    on_each_backend(
        |c| {
            c.audit.key = None;
            c.crypto.keys = [("k1".to_string(), "11".repeat(32))].into_iter().collect();
            c.crypto.active = Some("k1".into());
        },
        |db| {
            db.install_crypto().unwrap();
            let c = db.crypto().unwrap();
            let mut s = db.session().unwrap();
            let err = c.seal(&mut s, "subj-1", &"secret".to_string()).unwrap_err();
            assert!(
                matches!(&err, Error::Config { field, .. } if field == "audit.key"),
                "{}: {err}",
                db.kind
            );
            drop(s);
            assert_eq!(raw_count(db, "custodian_subject_keys"), 0, "{}", db.kind);
        },
    );
}

/// The variable naming the database the child process writes to.
const CHILD_URL: &str = "CUSTODIAN_TEST_CHILD_URL";

/// Environment variables are process-wide and the suite runs tests in parallel threads, so the
/// write under `CUSTODIAN_AUDIT_KEY` happens in a child process: this test binary running
/// [`child_writes_through_connect`] alone, with the variable set.
#[test]
fn connect_seals_with_the_key_from_the_environment() {
    on_each_backend(
        |_| {},
        |db| {
            db.create_table::<Note>().unwrap();
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "audit_guard::child_writes_through_connect",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("CUSTODIAN_AUDIT_KEY", ENV_KEY)
                .env_remove("CUSTODIAN_AUDIT_UNKEYED")
                .env(CHILD_URL, &db.url)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && text.contains("child wrote 1 note"),
                "{text}"
            );
            // Sealed under the environment's key, not the suite's.
            let env_key = custodian::audit::AuditKey::from_hex(ENV_KEY).unwrap();
            let suite_key = custodian::audit::AuditKey::from_hex(AUDIT_KEY).unwrap();
            let records = custodian::audit::chain::records_of_entity(
                &mut db.session().unwrap(),
                "guarded_notes",
            )
            .unwrap();
            assert_eq!(records.len(), 1, "{}", db.kind);
            let record = &records[0].1;
            assert!(record.seal_is_valid(Some(&env_key)), "{}", db.kind);
            assert!(!record.seal_is_valid(Some(&suite_key)), "{}", db.kind);
        },
    );
}

#[test]
#[ignore = "run by connect_seals_with_the_key_from_the_environment, with the variables set"]
fn child_writes_through_connect() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let db = custodian::connect(&url)
        .unwrap()
        .acting_as(Principal::new("child"));
    db.session().unwrap().insert(note(1)).unwrap();
    println!("child wrote 1 note");
}
