//! Every supported column type round-trips on every backend: NULLs, empty and unicode text,
//! extreme integers and floats, binary with zero bytes, far dates, microsecond timestamps.

use crate::common::TestDb;
use crate::entities::*;
use chrono::{NaiveDate, TimeZone, Utc};
use custodian::prelude::*;
use custodian::Decimal;

pub fn extreme() -> AllTypes {
    let at = NaiveDate::from_ymd_opt(9999, 12, 31)
        .unwrap()
        .and_hms_micro_opt(23, 59, 59, 999_999)
        .unwrap();
    AllTypes {
        id: uuid::Uuid::new_v4(),
        small: i16::MIN,
        int: i32::MAX,
        big: i64::MIN,
        float: f32::MAX,
        double: f64::MIN_POSITIVE,
        flag: true,
        text: "Grüße, 世界 🚀 'quoted' \"double\" \\ back".into(),
        bytes: vec![0, 1, 2, 255, 0, 127],
        day: NaiveDate::from_ymd_opt(1000, 1, 1).unwrap(),
        at,
        at_utc: Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(1970, 1, 1)
                .unwrap()
                .and_hms_micro_opt(0, 0, 0, 1)
                .unwrap(),
        ),
        doc: serde_json::json!({"a": [1, 2.5, null, true], "ü": {"nested": "x"}}),
        amount: "-98765432109876543210.0123456789"
            .parse::<Decimal>()
            .unwrap(),
        severity: Severity::Critical,
        o_small: Some(i16::MAX),
        o_int: Some(i32::MIN),
        o_big: Some(i64::MAX),
        o_float: Some(-1.5),
        o_double: Some(f64::MAX),
        o_flag: Some(false),
        o_text: Some(String::new()),
        o_bytes: Some(Vec::new()),
        o_day: Some(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()),
        o_at: Some(
            NaiveDate::from_ymd_opt(2024, 2, 29)
                .unwrap()
                .and_hms_micro_opt(12, 0, 0, 123_456)
                .unwrap(),
        ),
        o_at_utc: Some(Utc.with_ymd_and_hms(2038, 1, 19, 3, 14, 8).unwrap()),
        o_uuid: Some(uuid::Uuid::nil()),
        o_doc: Some(serde_json::json!("just a string")),
        o_amount: Some("0.10".parse().unwrap()),
        o_severity: Some(Severity::Low),
    }
}

fn nulls(mut v: AllTypes) -> AllTypes {
    v.id = uuid::Uuid::new_v4();
    v.o_small = None;
    v.o_int = None;
    v.o_big = None;
    v.o_float = None;
    v.o_double = None;
    v.o_flag = None;
    v.o_text = None;
    v.o_bytes = None;
    v.o_day = None;
    v.o_at = None;
    v.o_at_utc = None;
    v.o_uuid = None;
    v.o_doc = None;
    v.o_amount = None;
    v.o_severity = None;
    v.text = String::new();
    v.small = 0;
    v.double = -0.0;
    v
}

fn every_type_round_trips(db: &TestDb) {
    db.create_table::<AllTypes>().unwrap();
    let mut s = db.session().unwrap();
    let full = extreme();
    let empty = nulls(extreme());
    s.insert(full.clone()).unwrap();
    s.insert(empty.clone()).unwrap();
    assert_eq!(s.get::<AllTypes>(&full.id).unwrap(), full);
    assert_eq!(s.get::<AllTypes>(&empty.id).unwrap(), empty);

    // Bulk insert and query by stored values behave the same.
    let mut many: Vec<AllTypes> = (0..20)
        .map(|i| {
            let mut v = if i % 2 == 0 {
                extreme()
            } else {
                nulls(extreme())
            };
            v.big = i;
            v.severity = if i % 3 == 0 {
                Severity::High
            } else {
                Severity::Medium
            };
            v
        })
        .collect();
    s.insert_many(&mut many).unwrap();
    let high: Vec<AllTypes> = s
        .load(
            AllTypes::query()
                .filter(all_types::severity.eq(custodian::stored(&Severity::High)))
                .order(all_types::big),
        )
        .unwrap();
    assert_eq!(
        high.iter().map(|v| v.big).collect::<Vec<_>>(),
        [0, 3, 6, 9, 12, 15, 18]
    );
    let by_id: Option<AllTypes> = s
        .first(AllTypes::query().filter(all_types::id.eq(custodian::stored(&full.id))))
        .unwrap();
    assert_eq!(by_id.unwrap(), full);
    // Timestamps compare in SQL across the full range (MariaDB binds them as DATETIME).
    let cutoff = NaiveDate::from_ymd_opt(2100, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let far_future = s
        .count(
            all_types::table
                .filter(all_types::at.gt(custodian::stored(&cutoff)))
                .count(),
        )
        .unwrap();
    assert_eq!(far_future, 22);
    let recent = s
        .count(
            all_types::table
                .filter(all_types::o_at.lt(custodian::stored(&cutoff)))
                .count(),
        )
        .unwrap();
    assert_eq!(recent, 11);
    let null_docs = s
        .count(all_types::table.filter(all_types::o_doc.is_null()).count())
        .unwrap();
    assert_eq!(null_docs, 11);

    // Update every column to the other extreme and back.
    let mut swapped = nulls(extreme());
    swapped.id = full.id;
    s.update(&mut swapped).unwrap();
    assert_eq!(s.get::<AllTypes>(&full.id).unwrap(), swapped);
}

fn timestamps_keep_microseconds_and_utc(db: &TestDb) {
    db.create_table::<AllTypes>().unwrap();
    let mut s = db.session().unwrap();
    let mut v = extreme();
    let with_nanos = NaiveDate::from_ymd_opt(2025, 6, 30)
        .unwrap()
        .and_hms_nano_opt(8, 30, 15, 123_456_789)
        .unwrap();
    v.at = with_nanos;
    v.at_utc = Utc.from_utc_datetime(&with_nanos);
    s.insert(v.clone()).unwrap();
    let back = s.get::<AllTypes>(&v.id).unwrap();
    assert_eq!(
        back.at.and_utc().timestamp_subsec_nanos(),
        123_456_000,
        "truncated to micros, same on every backend"
    );
    assert_eq!(back.at_utc.timestamp(), v.at_utc.timestamp());
    assert_eq!(back.at_utc.timestamp_subsec_micros(), 123_456);
}

fn malformed_stored_value_is_an_error_not_a_panic(db: &TestDb) {
    db.create_table::<AllTypes>().unwrap();
    let mut s = db.session().unwrap();
    let v = extreme();
    s.insert(v.clone()).unwrap();
    // The enum's variants are a check constraint: the database refuses others.
    let refused = s
        .execute_sql("UPDATE all_types SET severity = 'Catastrophic'")
        .unwrap_err();
    assert!(
        matches!(refused, custodian::Error::Constraint { .. }),
        "{refused:?}"
    );
    // A value that no constraint guards still comes back as an error, not a panic.
    db.raw_sql("UPDATE all_types SET o_uuid = 'not-a-uuid'");
    let err = s.get::<AllTypes>(&v.id).unwrap_err();
    assert!(
        matches!(
            err,
            custodian::Error::Integrity {
                kind: custodian::IntegrityKind::Undecodable,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("not-a-uuid") && text.contains("is not a UUID"),
        "{text}"
    );
}

on_all_backends!(
    every_type_round_trips,
    timestamps_keep_microseconds_and_utc,
    malformed_stored_value_is_an_error_not_a_panic,
);
