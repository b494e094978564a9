//! Every supported field type, plain and as `Option`, round-trips through SQLite.
#![deny(missing_docs)]

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use custodian::diesel::prelude::*;
use custodian::{entity, ColumnKind, DbEnum, Decimal, Entity};
use serde_json::Value;
use uuid::Uuid;

/// A stored enum.
#[derive(DbEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Open.
    Open,
    /// Closed.
    Closed,
}

/// One field of each type.
#[entity(unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Everything {
    /// `SmallInt`.
    #[column(primary_key)]
    pub small: i16,
    /// `Integer`.
    pub int: i32,
    /// `BigInt`.
    pub big: i64,
    /// `Float`.
    pub float: f32,
    /// `Double`.
    pub double: f64,
    /// `Bool`.
    pub flag: bool,
    /// `Text`.
    pub text: String,
    /// `Binary`.
    pub bytes: Vec<u8>,
    /// `Date`.
    pub date: NaiveDate,
    /// `Timestamp`.
    pub naive: NaiveDateTime,
    /// `Timestamp` in UTC.
    pub utc: DateTime<Utc>,
    /// Text UUID.
    pub uuid: Uuid,
    /// Text JSON.
    pub json: Value,
    /// Text decimal.
    pub decimal: Decimal,
    /// Text enum.
    pub status: Status,
    /// Nullable `SmallInt`.
    pub o_small: Option<i16>,
    /// Nullable `Integer`.
    pub o_int: Option<i32>,
    /// Nullable `BigInt`.
    pub o_big: Option<i64>,
    /// Nullable `Float`.
    pub o_float: Option<f32>,
    /// Nullable `Double`.
    pub o_double: Option<f64>,
    /// Nullable `Bool`.
    pub o_flag: Option<bool>,
    /// Nullable `Text`.
    pub o_text: Option<String>,
    /// Nullable `Binary`.
    pub o_bytes: Option<Vec<u8>>,
    /// Nullable `Date`.
    pub o_date: Option<NaiveDate>,
    /// Nullable `Timestamp`.
    pub o_naive: Option<chrono::NaiveDateTime>,
    /// Nullable UTC `Timestamp`.
    pub o_utc: Option<chrono::DateTime<chrono::Utc>>,
    /// Nullable UUID.
    pub o_uuid: Option<uuid::Uuid>,
    /// Nullable JSON.
    pub o_json: Option<serde_json::Value>,
    /// Nullable decimal.
    pub o_decimal: Option<custodian::Decimal>,
    /// Nullable enum.
    pub o_status: Option<Status>,
}

fn value(small: i16, some: bool) -> Everything {
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let naive = date.and_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    let utc = naive.and_utc();
    let uuid = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let json = serde_json::json!({"a": [1, 2, {"b": null}]});
    let decimal: Decimal = "12345678901234567890.000000000000000001".parse().unwrap();
    Everything {
        small,
        int: -2,
        big: i64::MAX,
        float: 1.5,
        double: -0.25,
        flag: true,
        text: "héllo".into(),
        bytes: vec![0, 255, 7],
        date,
        naive,
        utc,
        uuid,
        json: json.clone(),
        decimal: decimal.clone(),
        status: Status::Closed,
        o_small: some.then_some(3),
        o_int: some.then_some(4),
        o_big: some.then_some(5),
        o_float: some.then_some(6.5),
        o_double: some.then_some(7.5),
        o_flag: some.then_some(false),
        o_text: some.then(|| "x".into()),
        o_bytes: some.then(Vec::new),
        o_date: some.then_some(date),
        o_naive: some.then_some(naive),
        o_utc: some.then_some(utc),
        o_uuid: some.then_some(uuid),
        o_json: some.then_some(json),
        o_decimal: some.then_some(decimal),
        o_status: some.then_some(Status::Open),
    }
}

fn main() {
    let kinds: Vec<ColumnKind> = Everything::META.columns.iter().map(|c| c.kind).collect();
    assert_eq!(kinds[11..15], [ColumnKind::Uuid, ColumnKind::Json, ColumnKind::Decimal, ColumnKind::Enum]);
    assert_eq!(Everything::META.table, "everything");
    assert_eq!(Everything::META.columns.iter().filter(|c| c.nullable).count(), 15);

    let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:").unwrap()).unwrap();
    let mut s = db.session().unwrap();
    let columns: Vec<String> = Everything::META
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, if c.nullable { "" } else { "NOT NULL" }))
        .collect();
    diesel::sql_query(format!(
        "CREATE TABLE everything ({}, PRIMARY KEY (small))",
        columns.join(", ")
    ))
    .execute(s.connection())
    .unwrap();

    let mut rows = [value(1, true), value(2, false)];
    assert_eq!(s.insert_many(&mut rows).unwrap(), 2);
    for row in &rows {
        let back = s.get::<Everything>(&row.key()).unwrap();
        assert_eq!(&back, row);
    }
    let all: Vec<Everything> = Everything::query()
        .order(everything::small.asc())
        .load(s.connection())
        .unwrap();
    assert_eq!(all, rows);
}
