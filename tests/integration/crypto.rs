//! Field encryption and crypto-shredding on every backend: sealed values round-trip, blind-index
//! lookups, wrong keys and tampering fail cleanly, master-key rotation in resumable batches, and
//! erasure of a subject leaves no readable trace while the audit chain still verifies.
//!
//! Here: the entity and the helpers other modules use too; the tests are in `values` and `keys`.

use crate::common::TestDb;
use custodian::audit::chain;
use custodian::crypto::store::custodian_subject_keys as k;
use custodian::crypto::{Crypto, Sealed};
use custodian::prelude::*;
use custodian::{BackendKind, DatabaseConfig, Principal};

pub(crate) const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub(crate) const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const OTHER: &str = "9999999999999999999999999999999999999999999999999999999999999999";

/// A patient record: the SSN and salary are sealed under the patient's subject key, the SSN
/// also has a blind index for lookups.
#[entity(table = "patients")]
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(index)]
    pub subject: String,
    pub ssn: Sealed<String>,
    #[column(index)]
    pub ssn_index: String,
    pub salary: Sealed<i64>,
    pub notes: Option<Sealed<serde_json::Value>>,
}

pub(crate) fn with_keys(cfg: &mut DatabaseConfig, keys: &[(&str, &str)], active: &str) {
    cfg.crypto.keys = keys
        .iter()
        .map(|(id, hex)| (id.to_string(), hex.to_string()))
        .collect();
    cfg.crypto.active = Some(active.into());
}

/// A fresh test database whose crypto ring is `k1` (active).
pub(crate) fn crypto_db(kind: BackendKind) -> TestDb {
    TestDb::with(kind, |c| with_keys(c, &[("k1", K1)], "k1"))
}

/// Another handle on the same database with a different crypto configuration (a restart with
/// new settings): nothing cached.
pub(crate) fn reopen(db: &TestDb, tweak: impl FnOnce(&mut DatabaseConfig)) -> Db {
    let mut cfg = db.config().clone();
    tweak(&mut cfg);
    custodian::open(cfg)
        .unwrap()
        .acting_as(Principal::new("test-suite").with_role("admin"))
}

pub(crate) fn new_patient(
    c: &Crypto,
    s: &mut Session,
    subject: &str,
    ssn: &str,
    salary: i64,
) -> Patient {
    Patient {
        id: 0,
        subject: subject.into(),
        ssn: c.seal(s, subject, &ssn.to_string()).unwrap(),
        ssn_index: c.blind_index("ssn", ssn),
        salary: c.seal(s, subject, &salary).unwrap(),
        notes: Some(
            c.seal(
                s,
                subject,
                &serde_json::json!({ "diagnosis": format!("Diagnosis-of-{ssn}") }),
            )
            .unwrap(),
        ),
    }
}

fn insert_patient(c: &Crypto, s: &mut Session, subject: &str, ssn: &str, salary: i64) -> Patient {
    let p = new_patient(c, s, subject, ssn, salary);
    s.insert(p).unwrap()
}

#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

fn text_rows<C>(conn: &mut C, sql: &str) -> Vec<String>
where
    C: diesel::Connection,
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, TextRow>,
{
    diesel::sql_query(sql)
        .load::<TextRow>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.t)
        .collect()
}

/// Every row of every table of the database, each rendered as text, on a connection of its own.
pub(crate) fn dump_all(db: &TestDb) -> String {
    use diesel::Connection;
    let mut out = Vec::new();
    match db.kind {
        BackendKind::Postgres => {
            let c = &mut diesel::PgConnection::establish(&db.url).unwrap();
            let tables = text_rows(
                c,
                "SELECT table_name::text AS t FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            );
            assert!(tables.len() >= 5, "{tables:?}");
            for t in tables {
                out.extend(text_rows(c, &format!("SELECT x::text AS t FROM \"{t}\" x")));
            }
        }
        BackendKind::Mysql => {
            let c = &mut diesel::MysqlConnection::establish(&db.url).unwrap();
            let tables = text_rows(
                c,
                "SELECT CAST(table_name AS CHAR) AS t FROM information_schema.tables \
                 WHERE table_schema = DATABASE()",
            );
            assert!(tables.len() >= 5, "{tables:?}");
            for t in tables {
                let cols = text_rows(
                    c,
                    &format!(
                        "SELECT CAST(column_name AS CHAR) AS t FROM information_schema.columns \
                         WHERE table_schema = DATABASE() AND table_name = '{t}' \
                         ORDER BY ordinal_position"
                    ),
                );
                let expr = cols
                    .iter()
                    .map(|col| format!("CAST(`{col}` AS CHAR)"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.extend(text_rows(
                    c,
                    &format!("SELECT CONCAT_WS('|', {expr}) AS t FROM `{t}`"),
                ));
            }
        }
        _ => {
            let c = &mut diesel::SqliteConnection::establish(custodian::backends::sqlite::path_of(
                &db.url,
            ))
            .unwrap();
            let tables = text_rows(
                c,
                "SELECT name AS t FROM sqlite_master WHERE type = 'table'",
            );
            assert!(tables.len() >= 5, "{tables:?}");
            for t in tables {
                let cols = text_rows(
                    c,
                    &format!("SELECT name AS t FROM pragma_table_info('{t}')"),
                );
                let expr = cols
                    .iter()
                    .map(|col| format!("COALESCE(CAST(\"{col}\" AS TEXT), '')"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                out.extend(text_rows(c, &format!("SELECT {expr} AS t FROM \"{t}\"")));
            }
        }
    }
    out.join("\n")
}

pub(crate) fn flip_last_digit(stored: &str) -> String {
    let mut t = stored.to_string();
    let last = t.pop().unwrap();
    t.push(if last == '0' { '1' } else { '0' });
    t
}

mod keys;
mod values;
