//! `#[entity(table = ..., schema = ...)]` with a renamed column and an auto-increment key.
#![deny(missing_docs)]

use custodian::{entity, ColumnKind, Entity};

/// A compliance control.
#[entity(table = "controls", schema = "compliance")]
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// Surrogate key.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Stable code.
    #[column(name = "control_code")]
    pub code: String,
    /// Free text.
    pub title: Option<String>,
}

fn main() {
    let meta = Control::META;
    assert_eq!(meta.name, "Control");
    assert_eq!(meta.table, "controls");
    assert_eq!(meta.schema, Some("compliance"));
    assert_eq!(meta.columns.len(), 3);
    assert_eq!(meta.columns[1].name, "control_code");
    assert_eq!(meta.columns[1].field, "code");
    assert_eq!(meta.columns[2].kind, ColumnKind::Text);
    assert!(meta.columns[2].nullable);
    assert!(meta.columns[0].primary_key && meta.columns[0].auto_increment);
    assert!(meta.has_auto_increment());
    let _ = controls::table;
    let _ = controls::code;
    let _query = Control::query();
    let mut c = Control { id: 0, code: "A-1".into(), title: None };
    c.raw_set_generated_key(42).unwrap();
    assert_eq!(c.key(), 42);
}
