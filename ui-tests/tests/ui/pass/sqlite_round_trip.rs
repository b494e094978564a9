//! Runs every generated operation through a session, and hand-written diesel queries on the
//! generated table, against an in-memory SQLite database.
#![deny(missing_docs)]

use custodian::diesel::prelude::*;
use custodian::{entity, DbEnum, Entity, Error};

/// Severity of a finding.
#[derive(DbEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Low.
    Low,
    /// High.
    #[db_enum(name = "HIGH")]
    High,
}

/// An audit finding.
#[entity(table = "findings", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Key assigned by the database.
    #[column(primary_key, auto_increment)]
    pub id: i32,
    /// Stable code.
    #[column(name = "finding_code")]
    pub code: String,
    /// Severity.
    pub severity: Severity,
    /// Optional note.
    pub note: Option<String>,
    /// Filled by the database.
    #[column(generated)]
    pub revision: Option<i64>,
    /// Not stored.
    #[skip]
    pub scratch: Vec<String>,
}

fn finding(code: &str, severity: Severity) -> Finding {
    Finding {
        id: 0,
        code: code.to_owned(),
        severity,
        note: None,
        revision: None,
        scratch: vec!["x".to_owned()],
    }
}

fn main() {
    let config = custodian::DatabaseConfig::from_url("sqlite::memory:").unwrap();
    let db = custodian::open(config).unwrap();
    let mut s = db.session().unwrap();
    diesel::sql_query(
        "CREATE TABLE findings (id INTEGER PRIMARY KEY AUTOINCREMENT, finding_code TEXT NOT NULL, \
         severity TEXT NOT NULL, note TEXT, revision BIGINT DEFAULT 7)",
    )
    .execute(s.connection())
    .unwrap();

    let mut rows = [
        finding("F-1", Severity::Low),
        finding("F-2", Severity::High),
        finding("F-3", Severity::High),
    ];
    assert_eq!(s.insert_many(&mut rows).unwrap(), 3);
    assert_eq!(s.insert_many::<Finding>(&mut []).unwrap(), 0);

    let mut found = s.find::<Finding>(&2).unwrap().unwrap();
    assert_eq!(found.code, "F-2");
    assert_eq!(found.severity, Severity::High);
    assert_eq!(found.revision, Some(7));
    assert!(found.scratch.is_empty(), "skipped fields are defaulted");
    assert!(s.find::<Finding>(&99).unwrap().is_none());

    found.note = Some("checked".to_owned());
    found.revision = Some(100);
    s.update(&mut found).unwrap();
    let again = s.get::<Finding>(&2).unwrap();
    assert_eq!(again.note.as_deref(), Some("checked"));
    assert_eq!(again.revision, Some(7), "generated columns are not updated");
    found.note = None;
    s.update(&mut found).unwrap();
    assert_eq!(s.get::<Finding>(&2).unwrap().note, None);

    // Hand-written diesel queries on the generated table.
    let high: Vec<Finding> = Finding::query()
        .filter(findings::severity.eq(custodian::stored(&Severity::High)))
        .order(findings::code.desc())
        .limit(5)
        .load(s.connection())
        .unwrap();
    assert_eq!(high.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(), ["F-3", "F-2"]);
    let codes: Vec<String> = findings::table
        .select(findings::code)
        .filter(findings::id.gt(1))
        .order(findings::id.asc())
        .load(s.connection())
        .unwrap();
    assert_eq!(codes, ["F-2", "F-3"]);

    // A stored value that does not decode is an error, not a panic.
    diesel::sql_query("UPDATE findings SET severity = 'Medium' WHERE id = 1")
        .execute(s.connection())
        .unwrap();
    let err = s.find::<Finding>(&1).unwrap_err().to_string();
    assert!(err.contains("`Medium` is not a variant"), "{err}");

    let third = s.get::<Finding>(&3).unwrap();
    s.delete(&third).unwrap();
    assert!(matches!(s.delete(&third), Err(Error::NotFound { .. })));
    assert!(found.key() == 2);

    let mut small = finding("F-9", Severity::Low);
    assert!(small.raw_set_generated_key(i64::from(i32::MAX) + 1).is_err());
    small.raw_set_generated_key(12).unwrap();
    assert_eq!(small.id, 12);
}
