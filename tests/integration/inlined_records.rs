//! Audit records keep every value exactly, whatever it holds, on every backend. On PostgreSQL
//! with `audit.records_with_commit` a transaction's records travel in the same round trip as
//! its `COMMIT`, with their values
//! written into the statement's text: these tests attack that text the way a hostile value or
//! a changed server setting would (quotes, backslashes, escape-string tricks, SQL of its own,
//! every kind of character, `standard_conforming_strings` off, a NUL character), and check
//! the stored records value for value, their seals, and that nothing else ran.

use crate::common::TestDb;
use crate::entities::Control;
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;
use custodian::BackendKind;

/// Values that would end, escape or extend a badly quoted literal, and characters of every
/// width.
fn hostile() -> Vec<String> {
    vec![
        "it's".into(),
        "''".into(),
        "\\".into(),
        "\\'".into(),
        "'\\''".into(),
        "'); DELETE FROM custodian_audit; --".into(),
        "E'\\\\'; COMMIT; DROP TABLE controls; --".into(),
        "$$ $1 ? :name %s {}".into(),
        "line\nbreak\ttab\rreturn\u{7}bell\u{1b}[0m".into(),
        "é ü ß 漢字 😀 \u{202E}rtl \u{FEFF}bom \u{FFFD} \u{FFFF} \u{10FFFF}".into(),
        "\\u0041 \\U00000041 \\x41 \\101".into(),
        "x".repeat(100_000),
    ]
}

/// (op, before, after, reason, request_id) of every record, in id order.
type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn trail(s: &mut Session) -> Vec<Row> {
    s.load(a::table.order(a::id).select((
        a::op,
        a::before_image,
        a::after_image,
        a::reason,
        a::request_id,
    )))
    .unwrap()
}

fn field(image: &Option<String>, name: &str) -> String {
    let image: serde_json::Value =
        serde_json::from_str(image.as_deref().expect("an image")).expect("the image is JSON");
    image[name].as_str().expect("a text field").to_string()
}

/// Each hostile value as a control's title and owner and as the reason and request id of its
/// insert and update, three values to a transaction: every record holds exactly the values
/// written, the trail verifies, and no statement of a value ran.
fn hostile_values_are_recorded_exactly(db: &TestDb) {
    hostile_values_round_trip(&with_commit(db.kind), false);
}

/// A database of `kind` whose audit records go with `COMMIT` where the backend can.
fn with_commit(kind: BackendKind) -> TestDb {
    TestDb::with(kind, |c| c.audit.records_with_commit = true)
}

on_all_backends!(hostile_values_are_recorded_exactly);

/// The same with `standard_conforming_strings` off on the connection (PostgreSQL), where a
/// backslash in a plain string literal escapes the next character: a literal written for the
/// default setting would end early.
#[test]
fn hostile_values_are_recorded_exactly_without_standard_conforming_strings() {
    hostile_values_round_trip(&with_commit(BackendKind::Postgres), true);
}

fn hostile_values_round_trip(db: &TestDb, no_standard_strings: bool) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    if no_standard_strings {
        s.execute_sql("SET standard_conforming_strings = off")
            .unwrap();
    }
    let values = hostile();
    for (n, chunk) in values.chunks(3).enumerate() {
        s.transaction(|s| {
            for (i, value) in chunk.iter().enumerate() {
                s.audit_context().reason = Some(value.clone());
                s.audit_context().request_id = Some(format!("{value}#{n}.{i}"));
                let mut c = Control::new(&format!("c{n}.{i}"), 1);
                c.title = value.clone();
                let mut c = s.insert(c)?;
                c.owner = Some(value.clone());
                s.update(&mut c)?;
            }
            Ok(())
        })
        .unwrap();
    }
    if no_standard_strings {
        let off: Vec<String> = s
            .load(custodian::diesel::dsl::sql::<
                custodian::diesel::sql_types::Text,
            >(
                "SELECT current_setting('standard_conforming_strings')"
            ))
            .unwrap();
        assert_eq!(off, ["off"], "the setting held for the transactions");
    }
    let rows = trail(&mut s);
    assert_eq!(
        rows.len(),
        2 * values.len(),
        "{}: one insert and one update each",
        db.kind
    );
    for (value, pair) in values.iter().zip(rows.chunks(2)) {
        let (insert, update) = (&pair[0], &pair[1]);
        assert_eq!((insert.0.as_str(), update.0.as_str()), ("insert", "update"));
        assert_eq!(field(&insert.2, "title"), *value, "{}", db.kind);
        assert_eq!(field(&update.1, "title"), *value, "{}", db.kind);
        assert_eq!(field(&update.2, "owner"), *value, "{}", db.kind);
        for record in [insert, update] {
            assert_eq!(record.3.as_deref(), Some(value.as_str()), "{}", db.kind);
            assert!(
                record
                    .4
                    .as_deref()
                    .is_some_and(|r| r.starts_with(value.as_str())),
                "{}",
                db.kind
            );
        }
    }
    let stored: Vec<Control> = s.select(Control::query()).unwrap();
    assert_eq!(
        stored.len(),
        values.len(),
        "{}: no row more or less",
        db.kind
    );
    for c in &stored {
        assert_eq!(Some(&c.title), c.owner.as_ref(), "{}", db.kind);
    }
    db.seal_audit().unwrap();
    let report = db.verify_audit(None).unwrap();
    assert!(report.is_intact(), "{}: {report:?}", db.kind);
}

/// A NUL character in a record's value: PostgreSQL's text type refuses it, so the transaction
/// fails with nothing written; MariaDB and SQLite keep it exactly.
fn a_nul_character_is_refused_or_kept_never_cut(base: &TestDb) {
    let db = &with_commit(base.kind);
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    let reason = "before\0after'); DELETE FROM custodian_audit; --";
    s.audit_context().reason = Some(reason.into());
    let written = s.insert(Control::new("nul", 1));
    let rows = trail(&mut s);
    let controls: Vec<Control> = s.select(Control::query()).unwrap();
    match db.kind {
        BackendKind::Postgres => {
            assert!(written.is_err(), "PostgreSQL text holds no NUL");
            assert!(rows.is_empty(), "no record: {rows:?}");
            assert!(controls.is_empty(), "no row: {controls:?}");
        }
        _ => {
            written.unwrap();
            assert_eq!(rows.len(), 1, "{}", db.kind);
            assert_eq!(rows[0].3.as_deref(), Some(reason), "{}", db.kind);
            assert_eq!(controls.len(), 1, "{}", db.kind);
        }
    }
    db.seal_audit().unwrap();
    assert!(db.verify_audit(None).unwrap().is_intact(), "{}", db.kind);
}

on_all_backends!(a_nul_character_is_refused_or_kept_never_cut);

/// The application name is written into the `SET` that prepares each PostgreSQL connection (a
/// `SET` takes no bind parameter). With `standard_conforming_strings` off for the database, a
/// backslash in a plain literal escapes the quote after it: the name must still arrive exactly,
/// and SQL in it must not run.
#[test]
fn an_application_name_arrives_exactly_without_standard_conforming_strings() {
    let base = TestDb::new(BackendKind::Postgres);
    base.raw_sql(&format!(
        "ALTER DATABASE {} SET standard_conforming_strings = off",
        base.name
    ));
    // PostgreSQL keeps printable ASCII only in application_name (others become `?`).
    let name = "it\\'s'; SET statement_timeout = 1; --";
    let mut cfg = custodian::DatabaseConfig::from_url(&base.url).unwrap();
    cfg.audit.key = Some(crate::common::AUDIT_KEY.into());
    cfg.session.application_name = name.into();
    let db = custodian::open(cfg).unwrap();
    let mut s = db.session().unwrap();
    let seen: Vec<(String, String, String)> = s
        .load(custodian::diesel::dsl::sql::<(
            custodian::diesel::sql_types::Text,
            custodian::diesel::sql_types::Text,
            custodian::diesel::sql_types::Text,
        )>(
            "SELECT current_setting('application_name'), \
             current_setting('standard_conforming_strings'), current_setting('statement_timeout')",
        ))
        .unwrap();
    assert_eq!(seen[0].0, name, "the name arrived exactly");
    assert_eq!(seen[0].1, "off", "the setting held");
    assert_ne!(seen[0].2, "1ms", "no SQL of the name ran");
}
