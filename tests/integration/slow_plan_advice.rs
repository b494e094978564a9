//! Schema advice from slow plans, on every backend: every statement is slow (threshold 0), so
//! each one's plan is captured. A filter on an unindexed column, in a query custodian built,
//! is advised with its table and column (never the value it ran with) by `Db::schema_advice`
//! and `Db::health`, once per scan however often it was seen; an index created behind
//! custodian's back silences it; a full scan filtering on the key (forced with `id + 0`) is
//! seen in the plan but never advised, the key leading an index.

use crate::common::TestDb;
use crate::observe_capture::capturing;
use custodian::diesel::sql_types::BigInt;
use custodian::health::HealthOptions;
use custodian::prelude::*;
use custodian::{Advice, BackendKind};

const SECRET: &str = "advice-secret-filter-value";

/// A table the advice test filters.
#[entity(table = "spa_notes", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    #[column(primary_key)]
    pub id: i64,
    pub note: String,
    pub kind: String,
}

#[derive(custodian::diesel::QueryableByName)]
#[diesel(check_for_backend(custodian::MultiBackend))]
struct Id {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    id: i64,
}

/// What each backend's plan says for a full scan of `spa_notes`.
fn full_scan(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Postgres => "\"Seq Scan\"",
        BackendKind::Mysql => "\"ALL\"",
        _ => "SCAN spa_notes",
    }
}

fn filters_on_unindexed_columns_in_slow_plans_are_advised(base: &TestDb) {
    let db = TestDb::with(base.kind, |c| {
        c.observe.slow_statement_ms = Some(0);
        c.observe.slow_plans_per_minute = 10_000;
    });
    db.create_table::<Note>().unwrap();
    let mut s = db.session().unwrap();
    // Enough rows that no engine treats the table as a constant.
    let mut rows: Vec<Note> = (1..=40)
        .map(|id| Note {
            id,
            note: format!("note {id}"),
            kind: format!("kind {}", id % 3),
        })
        .collect();
    s.insert_many(&mut rows).unwrap();

    // A full scan filtering on the key: seen, not advised.
    let key_scan = match db.kind {
        BackendKind::Postgres => "SELECT id, kind FROM spa_notes WHERE id + 0 = $1",
        _ => "SELECT id, kind FROM spa_notes WHERE id + 0 = ?",
    };
    let (found, capture) = capturing(|| {
        s.load::<Id, _>(custodian::diesel::sql_query(key_scan).bind::<BigInt, _>(7_i64))
            .unwrap()
    });
    assert_eq!(found.len(), 1);
    let plans = capture.events_named("custodian::slow", "slow statement plan");
    assert!(
        plans
            .iter()
            .any(|p| p.fields["plan"].contains(full_scan(db.kind))),
        "the key filter was planned as a full scan: {plans:#?}"
    );
    assert_eq!(db.schema_advice(&[]).unwrap(), [], "{}", db.kind);

    // A filter on an unindexed column, twice: one piece of advice, seen twice.
    let (found, capture) = capturing(|| {
        (0..2)
            .map(|_| {
                s.select::<Note, _>(Note::query().filter(spa_notes::note.eq(SECRET)))
                    .unwrap()
                    .len()
            })
            .sum::<usize>()
    });
    assert_eq!(found, 0);
    capture.assert_no_secret(&[SECRET], "a filter value");
    let advice = db.schema_advice(&[]).unwrap();
    let [Advice::UnindexedFilter {
        table,
        columns,
        seen,
        example_sql,
    }] = advice.as_slice()
    else {
        panic!("{}: one filter advised: {advice:#?}", db.kind);
    };
    assert_eq!(
        (table.as_str(), columns.as_slice(), *seen),
        ("spa_notes", &["note".to_string()][..], 2),
        "{}",
        db.kind
    );
    assert!(example_sql.contains("spa_notes"), "{example_sql}");
    assert!(!format!("{advice:?} {}", advice[0]).contains(SECRET));
    let report = db.health(&HealthOptions::default());
    assert!(
        report
            .advice
            .iter()
            .any(|a| a.starts_with("spa_notes is read in full to filter on note")),
        "{report}"
    );
    assert!(report.is_ready(), "advice is not a problem: {report}");

    // An index the column leads, made behind custodian's back, silences it.
    drop(s);
    db.raw_sql("CREATE INDEX spa_notes_note ON spa_notes (note)");
    assert_eq!(db.schema_advice(&[]).unwrap(), [], "{}", db.kind);
    assert!(db.health(&HealthOptions::default()).advice.is_empty());
}

on_all_backends!(filters_on_unindexed_columns_in_slow_plans_are_advised);
