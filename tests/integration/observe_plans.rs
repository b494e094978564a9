//! Plans of slow statements that ran with placeholders, on every backend: the plan is
//! captured (PostgreSQL: the prepared statement's generic plan; MariaDB: the statement with
//! its values rebound through user variables; SQLite: unbound placeholders), no captured
//! span or event shows a bind value, and a capture inside a transaction leaves it usable. On
//! MariaDB, which folds rebound values into its plans, the logged plan shows none of them.

use crate::common::TestDb;
use crate::entities::Counter;
use crate::observe_capture::{capturing, Done};
use custodian::diesel::sql_types::{BigInt, Double, Text};
use custodian::prelude::*;
use custodian::BackendKind;

const SECRET: &str = "plan-secret-bind-value";

/// Runs the backend's slow statement with three placeholders: a delay, the secret text
/// compared for equality with an unindexed column, and a range on the key (with a range
/// access, MariaDB folds the equality's value into its plan's condition).
fn run_slow(db: &TestDb, s: &mut Session) -> custodian::Result<Vec<Done>> {
    let secret_filter = match db.kind {
        BackendKind::Postgres => {
            "SELECT 'done' AS v FROM plan_notes, (SELECT pg_sleep($1)) s WHERE note = $2 AND id > $3"
        }
        BackendKind::Mysql => {
            "SELECT 'done' AS v FROM plan_notes, (SELECT SLEEP(?)) s WHERE note = ? AND id > ?"
        }
        _ => {
            "SELECT 'done' AS v FROM plan_notes, (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL \
             SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c) s WHERE note = ? AND id > ?"
        }
    };
    let q = custodian::diesel::sql_query(secret_filter);
    match db.kind {
        BackendKind::Sqlite => s.load(
            q.bind::<BigInt, _>(3_000_000_i64)
                .bind::<Text, _>(SECRET.to_string())
                .bind::<BigInt, _>(0_i64),
        ),
        _ => s.load(
            q.bind::<Double, _>(0.3)
                .bind::<Text, _>(SECRET.to_string())
                .bind::<BigInt, _>(0_i64),
        ),
    }
}

/// A slow statement with placeholders is logged with its plan, outside and inside a
/// transaction (which stays usable and commits); no bind value is in any span or event.
fn slow_statements_with_placeholders_get_a_plan(base: &TestDb) {
    let db = TestDb::with(base.kind, |c| c.observe.slow_statement_ms = Some(100));
    db.create_table::<Counter>().unwrap();
    db.raw_sql(&format!(
        "CREATE TABLE plan_notes (id INTEGER PRIMARY KEY, note VARCHAR(100)); \
         INSERT INTO plan_notes (id, note) VALUES (1, '{SECRET}'), (2, 'other');"
    ));
    let ((), capture) = capturing(|| {
        let mut s = db.session().unwrap();
        assert_eq!(run_slow(&db, &mut s).unwrap().len(), 1);
        s.transaction(|tx| {
            assert_eq!(run_slow(&db, tx)?.len(), 1);
            // The capture did not end or poison the transaction.
            tx.insert(Counter {
                name: "after-plan".into(),
                value: 1,
            })?;
            Ok(())
        })
        .unwrap();
    });
    assert_eq!(
        db.session()
            .unwrap()
            .get::<Counter>(&"after-plan".to_string())
            .unwrap()
            .value,
        1
    );
    let events = capture.events("custodian::slow");
    let failed = capture.events_named(
        "custodian::slow",
        "slow statement plan could not be captured",
    );
    assert!(failed.is_empty(), "{failed:?}");
    let plans = capture.events_named("custodian::slow", "slow statement plan");
    assert_eq!(plans.len(), 2, "{events:?}");
    let expected = match db.kind {
        BackendKind::Postgres => "\"Plan\"",
        BackendKind::Mysql => "query_block",
        _ => "SCAN",
    };
    for p in &plans {
        assert!(p.fields["plan"].contains(expected), "{p:?}");
    }
    capture.assert_no_secret(&[SECRET], "a bind value");
}

on_all_backends!(slow_statements_with_placeholders_get_a_plan);

/// MariaDB folds a value rebound for the plan into the plan's condition (a text compared with
/// a column of the connection's collation, `utf8mb4_general_ci`; with the database's
/// `utf8mb4_bin` it converts the variable instead): the plan logged for a slow statement names
/// the filtered columns but not the value the statement ran with.
#[test]
fn mariadb_plans_show_no_bound_value() {
    let db = TestDb::with(BackendKind::Mysql, |c| {
        c.observe.slow_statement_ms = Some(0);
        c.observe.slow_plans_per_minute = 1_000;
    });
    db.raw_sql(
        "CREATE TABLE mask_notes (id INTEGER PRIMARY KEY, \
         note VARCHAR(100) COLLATE utf8mb4_general_ci, num BIGINT); \
         INSERT INTO mask_notes VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);",
    );
    let (rows, capture) = capturing(|| {
        let q = "SELECT 'done' AS v FROM mask_notes WHERE note = ? AND num = ?";
        db.session()
            .unwrap()
            .load::<Done, _>(
                custodian::diesel::sql_query(q)
                    .bind::<Text, _>(SECRET)
                    .bind::<BigInt, _>(2_i64),
            )
            .unwrap()
    });
    assert!(rows.is_empty());
    let plans = capture.events_named("custodian::slow", "slow statement plan");
    let plan = plans
        .iter()
        .find(|p| p.fields["sql"].contains("mask_notes"))
        .unwrap_or_else(|| panic!("the statement's plan was logged: {plans:#?}"));
    let shown = &plan.fields["plan"];
    assert!(
        shown.contains("mask_notes.note = ") && shown.contains("mask_notes.num = "),
        "the plan shows the condition: {shown}"
    );
    capture.assert_no_secret(&[SECRET], "a bound value");
}
