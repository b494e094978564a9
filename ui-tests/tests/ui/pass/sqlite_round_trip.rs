//! Runs every generated raw operation, and hand-written diesel queries on the generated table,
//! against an in-memory SQLite database.
#![deny(missing_docs)]

use custodian::diesel::prelude::*;
use custodian::{entity, AnyConnection, DbEnum, Entity};

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
#[entity(table = "findings")]
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
    let mut conn = AnyConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
    diesel::sql_query(
        "CREATE TABLE findings (id INTEGER PRIMARY KEY AUTOINCREMENT, finding_code TEXT NOT NULL, \
         severity TEXT NOT NULL, note TEXT, revision BIGINT DEFAULT 7)",
    )
    .execute(&mut conn)
    .unwrap();

    let rows = [
        finding("F-1", Severity::Low),
        finding("F-2", Severity::High),
        finding("F-3", Severity::High),
    ];
    assert_eq!(Finding::raw_insert(&mut conn, &rows).unwrap(), 3);
    assert_eq!(Finding::raw_insert(&mut conn, &[]).unwrap(), 0);

    let mut found = Finding::raw_find(&mut conn, &2, false).unwrap().unwrap();
    assert_eq!(found.code, "F-2");
    assert_eq!(found.severity, Severity::High);
    assert_eq!(found.revision, Some(7));
    assert!(found.scratch.is_empty(), "skipped fields are defaulted");
    assert!(Finding::raw_find(&mut conn, &99, false).unwrap().is_none());

    found.note = Some("checked".to_owned());
    found.revision = Some(100);
    assert_eq!(Finding::raw_update(&mut conn, &found, Default::default()).unwrap(), 1);
    let again = Finding::raw_find(&mut conn, &2, false).unwrap().unwrap();
    assert_eq!(again.note.as_deref(), Some("checked"));
    assert_eq!(again.revision, Some(7), "generated columns are not updated");
    found.note = None;
    Finding::raw_update(&mut conn, &found, Default::default()).unwrap();
    assert_eq!(Finding::raw_find(&mut conn, &2, false).unwrap().unwrap().note, None);

    // Hand-written diesel queries on the generated table.
    let high: Vec<Finding> = Finding::query()
        .filter(findings::severity.eq(custodian::stored(&Severity::High)))
        .order(findings::code.desc())
        .limit(5)
        .load(&mut conn)
        .unwrap();
    assert_eq!(high.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(), ["F-3", "F-2"]);
    let codes: Vec<String> = findings::table
        .select(findings::code)
        .filter(findings::id.gt(1))
        .order(findings::id.asc())
        .load(&mut conn)
        .unwrap();
    assert_eq!(codes, ["F-2", "F-3"]);

    // A stored value that does not decode is an error, not a panic.
    diesel::sql_query("UPDATE findings SET severity = 'Medium' WHERE id = 1")
        .execute(&mut conn)
        .unwrap();
    let err = Finding::raw_find(&mut conn, &1, false).unwrap_err().to_string();
    assert!(err.contains("`Medium` is not a variant"), "{err}");

    assert_eq!(Finding::raw_delete(&mut conn, &3).unwrap(), 1);
    assert_eq!(Finding::raw_delete(&mut conn, &3).unwrap(), 0);
    assert!(found.key() == 2);

    let mut small = finding("F-9", Severity::Low);
    assert!(small.raw_set_generated_key(i64::from(i32::MAX) + 1).is_err());
    small.raw_set_generated_key(12).unwrap();
    assert_eq!(small.id, 12);
}
