//! Entities shared by the integration tests.

use custodian::prelude::*;
use custodian::Decimal;

/// An auto-increment entity with a nullable column.
#[entity(table = "controls")]
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub code: String,
    pub title: String,
    pub owner: Option<String>,
    pub risk: i32,
    pub active: bool,
}

impl Control {
    pub fn new(code: &str, risk: i32) -> Control {
        Control {
            id: 0,
            code: code.into(),
            title: format!("Control {code}"),
            owner: None,
            risk,
            active: true,
        }
    }
}

/// A composite key, a renamed column, a generated column and a skipped field.
#[entity(table = "memberships")]
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    #[column(primary_key)]
    pub team: String,
    #[column(primary_key)]
    pub member: i32,
    #[column(name = "member_role")]
    pub role: String,
    #[column(generated)]
    pub created_at: Option<chrono::NaiveDateTime>,
    #[skip]
    pub scratch: Vec<String>,
}

/// A counter for concurrency tests.
#[entity(table = "counters")]
#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    #[column(primary_key)]
    pub name: String,
    pub value: i64,
}

#[derive(DbEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Low,
    Medium,
    High,
    #[db_enum(name = "critical")]
    Critical,
}

/// Every supported column type, non-null and nullable.
#[entity(table = "all_types")]
#[derive(Debug, Clone, PartialEq)]
pub struct AllTypes {
    #[column(primary_key)]
    pub id: uuid::Uuid,
    pub small: i16,
    pub int: i32,
    pub big: i64,
    pub float: f32,
    pub double: f64,
    pub flag: bool,
    pub text: String,
    pub bytes: Vec<u8>,
    pub day: chrono::NaiveDate,
    pub at: chrono::NaiveDateTime,
    pub at_utc: chrono::DateTime<chrono::Utc>,
    pub doc: serde_json::Value,
    pub amount: Decimal,
    pub severity: Severity,
    pub o_small: Option<i16>,
    pub o_int: Option<i32>,
    pub o_big: Option<i64>,
    pub o_float: Option<f32>,
    pub o_double: Option<f64>,
    pub o_flag: Option<bool>,
    pub o_text: Option<String>,
    pub o_bytes: Option<Vec<u8>>,
    pub o_day: Option<chrono::NaiveDate>,
    pub o_at: Option<chrono::NaiveDateTime>,
    pub o_at_utc: Option<chrono::DateTime<chrono::Utc>>,
    pub o_uuid: Option<uuid::Uuid>,
    pub o_doc: Option<serde_json::Value>,
    pub o_amount: Option<Decimal>,
    pub o_severity: Option<Severity>,
}
