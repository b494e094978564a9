//! Audit records hold what the database stores: values no backend can store faithfully are
//! refused before anything is written, and edge values (negative zero, leap seconds,
//! sub-microsecond timestamps) are recorded in the form a read-back gives, so drift detection
//! stays clean for rows only custodian wrote.

use crate::common::TestDb;
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;
use custodian::Error;

#[entity(table = "measures")]
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    #[column(primary_key)]
    pub id: i64,
    pub single: f32,
    pub double: f64,
    pub maybe: Option<f64>,
    pub at: NaiveDateTime,
    pub at_utc: chrono::DateTime<Utc>,
    pub o_at: Option<NaiveDateTime>,
}

fn plain(id: i64) -> Measure {
    let at = NaiveDate::from_ymd_opt(2024, 6, 30)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    Measure {
        id,
        single: 1.5,
        double: 2.5,
        maybe: Some(3.5),
        at,
        at_utc: Utc.from_utc_datetime(&at),
        o_at: None,
    }
}

fn rows(s: &mut Session) -> i64 {
    s.count(measures::table.count()).unwrap()
}

fn records(s: &mut Session) -> i64 {
    s.count(a::table.count()).unwrap()
}

/// The field errors of a refused write, as (field, code) pairs.
fn refused(err: Error) -> Vec<(String, String)> {
    let Error::Validation(v) = err else {
        panic!("expected Validation, got {err:?}")
    };
    v.fields
        .iter()
        .flat_map(|(f, es)| es.iter().map(move |e| (f.clone(), e.code.clone())))
        .collect()
}

/// A field name and a change that makes the row unstorable there.
type Spoil = (&'static str, fn(&mut Measure));

fn non_finite_floats_are_refused(db: &TestDb) {
    db.create_table::<Measure>().unwrap();
    let mut s = db.session().unwrap();
    let bad: [Spoil; 4] = [
        ("single", |m| m.single = f32::NAN),
        ("double", |m| m.double = f64::INFINITY),
        ("double", |m| m.double = f64::NEG_INFINITY),
        ("maybe", |m| m.maybe = Some(f64::NAN)),
    ];
    for (field, spoil) in bad {
        let mut m = plain(1);
        spoil(&mut m);
        let err = s.insert(m.clone()).unwrap_err();
        assert_eq!(refused(err), [(field.to_string(), "not_storable".into())]);
        let mut many = vec![plain(2), m];
        let Error::Validation(v) = s.insert_many(&mut many).unwrap_err() else {
            panic!("bulk insert of {field} not refused as Validation")
        };
        assert_eq!(v.index, Some(1));
    }
    assert_eq!(rows(&mut s), 0, "nothing inserted");
    assert_eq!(records(&mut s), 0, "nothing recorded");

    let mut good = s.insert(plain(1)).unwrap();
    let before = records(&mut s);
    for (field, spoil) in bad {
        let mut m = good.clone();
        spoil(&mut m);
        let err = s.update(&mut m).unwrap_err();
        assert_eq!(refused(err), [(field.to_string(), "not_storable".into())]);
    }
    // The stored row, read with plain SQL, is untouched and no record was added.
    let (single, double, maybe): (f32, f64, Option<f64>) = s
        .first(measures::table.filter(measures::id.eq(1)).select((
            measures::single,
            measures::double,
            measures::maybe,
        )))
        .unwrap()
        .unwrap();
    assert_eq!((single, double, maybe), (1.5, 2.5, Some(3.5)));
    assert_eq!(records(&mut s), before);
    good.double = 7.0;
    s.update(&mut good).unwrap();
    assert_eq!(s.history::<Measure>(&1).unwrap().len(), 2);
}

/// A reading whose before-hooks compute a ratio, which can come out non-finite.
#[entity(table = "ratios", hooks)]
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    #[column(primary_key)]
    pub id: i64,
    pub part: f64,
    pub whole: f64,
    pub ratio: f64,
}

impl custodian::Hooks for Ratio {
    fn before_insert(&mut self, _: &mut Session) -> custodian::Result<()> {
        self.ratio = self.part / self.whole;
        Ok(())
    }
    fn before_update(&mut self, _: &mut Session) -> custodian::Result<()> {
        self.ratio = self.part / self.whole;
        Ok(())
    }
}

/// What a before-hook computes is checked like the caller's values.
fn non_finite_from_hooks_is_refused(db: &TestDb) {
    db.create_table::<Ratio>().unwrap();
    let mut s = db.session().unwrap();
    let ratio = |id, whole| Ratio {
        id,
        part: 1.0,
        whole,
        ratio: 0.0,
    };
    let err = s.insert(ratio(1, 0.0)).unwrap_err();
    assert_eq!(refused(err), [("ratio".to_string(), "not_storable".into())]);
    let mut good = s.insert(ratio(2, 4.0)).unwrap();
    good.whole = 0.0;
    let err = s.update(&mut good).unwrap_err();
    assert_eq!(refused(err), [("ratio".to_string(), "not_storable".into())]);
    assert_eq!(s.count(ratios::table.count()).unwrap(), 1);
    assert_eq!(s.get::<Ratio>(&2).unwrap().ratio, 0.25);
    assert_eq!(s.history::<Ratio>(&2).unwrap().len(), 1);
}

/// A value at the edge of what the databases store: negative zero, a leap second,
/// sub-microsecond digits.
fn edge(id: i64) -> Measure {
    let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
        .unwrap()
        .and_hms_nano_opt(23, 59, 59, 1_250_000_999)
        .unwrap();
    let nanos = NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_nano_opt(8, 30, 0, 123_456_789)
        .unwrap();
    Measure {
        id,
        single: -0.0,
        double: -0.0,
        maybe: Some(-0.0),
        at: leap,
        at_utc: Utc.from_utc_datetime(&nanos),
        o_at: Some(leap),
    }
}

/// Every audit record's after image equals the row as read back.
fn assert_images_match_rows(s: &mut Session, ids: &[i64]) {
    for id in ids {
        let stored = s.get::<Measure>(id).unwrap();
        let history = s.history::<Measure>(id).unwrap();
        let last = history.last().unwrap();
        let image: serde_json::Value =
            serde_json::from_str(last.record.after.as_deref().unwrap()).unwrap();
        assert_eq!(
            image,
            serde_json::Value::Object(stored.raw_image().unwrap()),
            "row {id}: the audit image differs from the stored row"
        );
    }
    assert_eq!(s.audit_drift::<Measure>().unwrap(), []);
}

fn images_record_the_stored_value(db: &TestDb) {
    db.create_table::<Measure>().unwrap();
    let mut s = db.session().unwrap();
    s.insert(edge(1)).unwrap();
    s.insert_many(&mut [edge(2), edge(3)]).unwrap();
    assert_images_match_rows(&mut s, &[1, 2, 3]);

    // Floats whose JSON text parses back exactly only with a correctly rounding parser.
    let mut wide = plain(5);
    wide.single = f32::MAX;
    wide.double = f64::from(f32::MAX);
    wide.maybe = Some(0.1 + 0.2);
    s.insert(wide.clone()).unwrap();
    assert_images_match_rows(&mut s, &[5]);
    let recorded = s.history::<Measure>(&5).unwrap().pop().unwrap().value;
    assert_eq!(recorded.unwrap(), wide, "history holds the exact floats");

    let mut m = s.insert(plain(4)).unwrap();
    let e = edge(4);
    m.double = e.double;
    m.at = e.at;
    m.at_utc = e.at_utc;
    m.o_at = e.o_at;
    s.update(&mut m).unwrap();
    let mut both = [s.get::<Measure>(&1).unwrap(), s.get::<Measure>(&2).unwrap()];
    for m in &mut both {
        m.single = -0.0;
        m.at = edge(0).at;
    }
    s.update_many(&mut both).unwrap();
    assert_images_match_rows(&mut s, &[1, 2, 3, 4, 5]);

    // The read-back holds the folded leap second and the truncated nanoseconds.
    let back = s.get::<Measure>(&4).unwrap();
    assert_eq!(
        back.at,
        NaiveDate::from_ymd_opt(2017, 1, 1)
            .unwrap()
            .and_hms_micro_opt(0, 0, 0, 250_000)
            .unwrap()
    );
    assert_eq!(back.at_utc.timestamp_subsec_nanos(), 123_456_000);
}

on_all_backends!(
    non_finite_floats_are_refused,
    non_finite_from_hooks_is_refused,
    images_record_the_stored_value
);

/// A document with a large text body.
#[entity(table = "documents")]
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    #[column(primary_key)]
    pub id: i64,
    pub body: String,
}

/// Bytes of each document body: four of them take more than MariaDB's default
/// `max_allowed_packet` (16 MiB), while each row and each record alone stays below it.
const BODY: usize = 5 << 20;

fn large_transactions_are_recorded(db: &TestDb) {
    db.create_table::<Document>().unwrap();
    let mut docs: Vec<Document> = (1..=4)
        .map(|id| Document {
            id,
            body: char::from(b'a' + id as u8).to_string().repeat(BODY),
        })
        .collect();
    // Four inserts, then four updates (records with before and after images): each
    // transaction's records take over 20 MiB together.
    db.transaction(|tx| {
        for d in &docs {
            tx.insert(d.clone())?;
        }
        Ok(())
    })
    .unwrap();
    for d in &mut docs {
        d.body.replace_range(0..1, "z");
    }
    db.transaction(|tx| {
        for d in docs.iter_mut() {
            tx.update(d)?;
        }
        Ok(())
    })
    .unwrap();
    let mut s = db.session().unwrap();
    assert_eq!(s.count(a::table.count()).unwrap(), 8);
    assert_eq!(s.audit_drift::<Document>().unwrap(), []);
    let history = s.history::<Document>(&3).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].value.as_ref(), Some(&docs[2]));
    db.seal_audit().unwrap();
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// A record larger than the server's packet limit is refused before it is sent, with the limit
/// named, and the write it records rolls back (the connection stays usable).
fn oversized_records_are_refused_clearly(db: &TestDb) {
    db.create_table::<Document>().unwrap();
    let mut s = db.session().unwrap();
    let mut d = s
        .insert(Document {
            id: 1,
            body: "a".repeat(9 << 20),
        })
        .unwrap();
    d.body.replace_range(0..1, "b");
    let result = s.update(&mut d);
    if db.kind == custodian::BackendKind::Mysql {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
        assert!(err.to_string().contains("max_allowed_packet"), "{err}");
        let body: String = s
            .first(documents::table.select(documents::body))
            .unwrap()
            .unwrap();
        assert!(body.starts_with('a'), "the update rolled back");
        assert_eq!(s.count(a::table.count()).unwrap(), 1);
    } else {
        result.unwrap();
        assert_eq!(s.count(a::table.count()).unwrap(), 2);
    }
}

on_all_backends!(
    large_transactions_are_recorded,
    oversized_records_are_refused_clearly
);

/// An entity keyed by the longest text a key column holds on every backend.
#[entity(table = "long_keys")]
#[derive(Debug, Clone, PartialEq)]
pub struct LongKey {
    #[column(primary_key)]
    pub code: String,
    pub note: String,
}

/// An entity with a composite key of two such texts.
#[entity(table = "long_pairs")]
#[derive(Debug, Clone, PartialEq)]
pub struct LongPair {
    #[column(primary_key)]
    pub left: String,
    #[column(primary_key)]
    pub right: String,
    pub note: String,
}

/// 255 characters whose JSON form is far longer: quotes and backslashes are escaped, control
/// characters written as `\u00XX`, and the emoji take four bytes each.
fn long_text(seed: char) -> String {
    let mut s = String::from(seed);
    for i in 1..255 {
        s.push(match i % 4 {
            0 => '"',
            1 => '\\',
            2 => '\u{1}',
            _ => '🚀',
        });
    }
    s
}

fn long_keys_are_recorded(db: &TestDb) {
    db.create_tables(&[LongKey::META, LongPair::META]).unwrap();
    let mut s = db.session().unwrap();
    let code = long_text('k');
    assert_eq!(code.chars().count(), 255);
    let mut row = s
        .insert(LongKey {
            code: code.clone(),
            note: "first".into(),
        })
        .unwrap();
    row.note = "second".into();
    s.update(&mut row).unwrap();
    let history = s.history::<LongKey>(&code).unwrap();
    assert_eq!(
        history
            .iter()
            .map(|v| v.record.op.as_str())
            .collect::<Vec<_>>(),
        ["insert", "update"]
    );
    assert_eq!(history[1].value.as_ref(), Some(&row));

    let key = (long_text('l'), long_text('r'));
    let pair = s
        .insert(LongPair {
            left: key.0.clone(),
            right: key.1.clone(),
            note: "pair".into(),
        })
        .unwrap();
    s.delete(&pair).unwrap();
    let history = s.history::<LongPair>(&key).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].value.as_ref(), Some(&pair));
    assert_eq!(history[1].value, None);
    assert_eq!(s.audit_drift::<LongKey>().unwrap(), []);
    assert_eq!(s.audit_drift::<LongPair>().unwrap(), []);
}

on_all_backends!(long_keys_are_recorded);
