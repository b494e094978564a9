//! Observability on every backend: exact metric counts of a workload (statements,
//! transactions by outcome, a retry after a real serialization conflict, denials, audit
//! records), a Prometheus scrape that parses, transaction and statement spans that carry no
//! bind value and no encrypted or masked value, slow statements logged with their plan, and
//! N+1 detection that names the entity and the call site, and statement spans that record
//! the rows each statement returned or changed.

use crate::access_guard::{policy, seed, writer, Invoice, Vendor};
use crate::common::TestDb;
use crate::entities::{counters, Counter};
use crate::observe_capture::{capturing, Counts, Done};
use custodian::audit::tables::custodian_audit as a;
use custodian::observe::NPlusOneMode;
use custodian::prelude::*;
use custodian::{BackendKind, Error, Principal, RetryPolicy, TxOptions};
use std::sync::{Arc, Barrier};

fn audit_rows(db: &TestDb) -> i64 {
    db.session().unwrap().count(a::table.count()).unwrap()
}

/// Two transactions read counter `n`, wait for each other, then both increment it: a real
/// serialization conflict (PostgreSQL 40001, MariaDB deadlock, SQLite busy snapshot), each
/// thread recording into `counts`.
fn conflicting_increments(db: &TestDb, counts: &Counts) {
    let barrier = Arc::new(Barrier::new(2));
    let options = TxOptions::new().serializable().retry(RetryPolicy {
        max_attempts: 10,
        ..RetryPolicy::default()
    });
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (db, barrier, counts, options) = (
                (**db).clone(),
                barrier.clone(),
                counts.clone(),
                options.clone(),
            );
            std::thread::spawn(move || {
                metrics::with_local_recorder(&counts, || {
                    let mut first = true;
                    db.transaction_with(&options, |tx| {
                        let c = tx.get::<Counter>(&"n".to_string())?;
                        if std::mem::take(&mut first) {
                            barrier.wait();
                        }
                        tx.update(&mut Counter {
                            value: c.value + 1,
                            ..c
                        })
                    })
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
}

/// A workload under a recorder gives exact counts.
fn metrics_count_exactly(db: &TestDb) {
    seed(db);
    db.create_table::<Counter>().unwrap();
    db.session()
        .unwrap()
        .insert(Counter {
            name: "n".into(),
            value: 0,
        })
        .unwrap();
    let counts = Counts::default();
    let audit_before = audit_rows(db);
    let guarded = db.with_access(policy(&[], None));
    let theirs = guarded
        .acting_as(writer("globex"))
        .session()
        .unwrap()
        .select::<Vendor, _>(Vendor::query())
        .unwrap()
        .remove(0);
    metrics::with_local_recorder(&counts, || {
        let mut s = db.session().unwrap();
        s.insert(Counter {
            name: "a".into(),
            value: 1,
        })
        .unwrap();
        for _ in 0..5 {
            s.get::<Counter>(&"a".to_string()).unwrap();
        }
        for _ in 0..3 {
            s.transaction(|tx| tx.find::<Counter>(&"a".to_string()))
                .unwrap();
        }
        let failed: custodian::Result<()> =
            s.transaction(|_| Err(Error::Forbidden("the closure refuses".into())));
        assert!(failed.is_err());
        drop(s);
        // One refusal: an acme writer updating a globex vendor.
        let mut acme = guarded.acting_as(writer("acme")).session().unwrap();
        let mut hijack = theirs.clone();
        hijack.name = "hijacked".into();
        assert!(matches!(acme.update(&mut hijack), Err(Error::Forbidden(_))));
    });
    conflicting_increments(db, &counts);
    let audit_after = audit_rows(db);
    let keys = counts.keys();
    // Five gets, and one in each attempt of the conflicting increments (two, one retried).
    assert_eq!(
        counts.get("custodian_statements_total{entity=Counter,op=get}"),
        8,
        "{keys:?}"
    );
    assert_eq!(
        counts.get("custodian_statements_total{entity=Counter,op=find}"),
        3,
        "{keys:?}"
    );
    assert_eq!(
        counts.get("custodian_statement_seconds{entity=Counter,op=get}"),
        8,
        "{keys:?}"
    );
    // The audited insert (its own transaction), three finds and the two increments commit;
    // the refusing closure and the conflict's loser roll back; the loser is retried once, for
    // serialization.
    assert_eq!(
        counts.get("custodian_transactions_total{outcome=committed}"),
        6,
        "{keys:?}"
    );
    assert_eq!(
        counts.get("custodian_transactions_total{outcome=rolled_back}"),
        2,
        "{keys:?}"
    );
    assert_eq!(
        counts.get("custodian_retries_total{cause=serialization}"),
        1,
        "{keys:?}"
    );
    assert_eq!(counts.total("custodian_retries_total"), 1, "{keys:?}");
    assert_eq!(
        counts.get("custodian_denials_total{action=update,entity=Vendor}"),
        1,
        "{keys:?}"
    );
    assert_eq!(
        counts.get("custodian_audit_records_total{}") as i64,
        audit_after - audit_before,
        "{keys:?}"
    );
    assert!(audit_after > audit_before, "the refusal was recorded");
    assert!(
        counts.get("custodian_pool_acquire_seconds{}") >= 2,
        "{keys:?}"
    );
}

/// A Prometheus scrape of a workload parses: every sample line is `name{labels} value` with a
/// number, and the statement counter is there with its labels.
fn prometheus_scrape_parses(db: &TestDb) {
    db.create_table::<Counter>().unwrap();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let mut s = db.session().unwrap();
        s.insert(Counter {
            name: "p".into(),
            value: 1,
        })
        .unwrap();
        s.get::<Counter>(&"p".to_string()).unwrap();
    });
    let scrape = handle.render();
    let mut samples = 0;
    for line in scrape.lines().filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# TYPE ") || line.starts_with("# HELP "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number in `{line}`"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        samples += 1;
    }
    assert!(samples > 0, "{scrape}");
    assert!(
        scrape.contains(r#"custodian_statements_total{entity="Counter",op="get"} 1"#),
        "{scrape}"
    );
}

const SECRET_IBAN: &str = "DE00SECRETIBAN77889900";
const SECRET_EMAIL: &str = "secret.ada@hidden.example";
const SECRET_NAME: &str = "Ada Secretname Lovelace";

/// Transaction spans carry id, attempt and outcome; with default settings no captured span or
/// event holds a bind value, a masked value or an encrypted field's plaintext.
fn spans_carry_ids_and_no_secrets(base: &TestDb) {
    let db = crate::crypto::crypto_db(base.kind);
    db.create_tables(&[Vendor::META, Invoice::META, crate::encrypted::Client::META])
        .unwrap();
    let guarded = db.with_access(policy(&["iban"], None));
    let mut tx_ids = Vec::new();
    let ((), capture) = capturing(|| {
        let mut w = guarded.acting_as(writer("acme")).session().unwrap();
        let vendor = w
            .transaction(|tx| {
                tx_ids.push(tx.tx_id().unwrap().to_string());
                tx.insert(Vendor {
                    id: 0,
                    tenant: "acme".into(),
                    name: "Vendor with a secret".into(),
                    iban: SECRET_IBAN.into(),
                    contact_email: None,
                })
            })
            .unwrap();
        let read = w.get::<Vendor>(&vendor.id).unwrap();
        assert_ne!(read.iban, SECRET_IBAN, "masked for the writer");
        let mut s = db.session().unwrap();
        s.transaction(|tx| {
            tx_ids.push(tx.tx_id().unwrap().to_string());
            tx.insert(crate::encrypted::Client {
                id: 0,
                client_ref: "subject-1".into(),
                full_name: SECRET_NAME.into(),
                email: Some(SECRET_EMAIL.into()),
                email_index: None,
                segment: "retail".into(),
            })
        })
        .unwrap();
    });
    let txs = capture.spans("custodian.transaction");
    let ids: Vec<String> = txs.iter().map(|t| t.fields["id"].clone()).collect();
    for id in &tx_ids {
        assert!(ids.contains(id), "span for {id} in {ids:?}");
    }
    for t in &txs {
        assert_eq!(t.fields["attempt"], "1", "{t:?}");
        assert_eq!(t.fields["outcome"], "committed", "{t:?}");
        assert!(t.fields.contains_key("read_only") && t.fields.contains_key("isolation"));
    }
    let statements = capture.spans("custodian.statement");
    let inserts: Vec<_> = statements
        .iter()
        .filter(|s| s.fields["entity"] == "Vendor" && s.fields["op"] == "insert")
        .collect();
    assert!(!inserts.is_empty(), "{statements:?}");
    assert!(
        inserts
            .iter()
            .all(|s| s.fields["sql"].contains("INSERT") && s.fields.contains_key("duration_ms")),
        "{inserts:?}"
    );
    capture.assert_no_secret(
        &[
            SECRET_IBAN,
            SECRET_EMAIL,
            SECRET_NAME,
            "secret.ada",
            "Secretname",
        ],
        "default settings",
    );
}

/// A slow statement is logged with its plan, captured on the same connection.
fn slow_statements_are_logged_with_a_plan(base: &TestDb) {
    let db = TestDb::with(base.kind, |c| c.observe.slow_statement_ms = Some(100));
    let slow = match db.kind {
        BackendKind::Postgres => "SELECT 'done' AS v FROM (SELECT pg_sleep(0.3)) s",
        BackendKind::Mysql => "SELECT 'done' AS v FROM (SELECT SLEEP(0.3)) s",
        _ => {
            "SELECT 'done' AS v FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 \
             FROM c WHERE x < 3000000) SELECT count(*) FROM c) s"
        }
    };
    let ((), capture) = capturing(|| {
        let mut s = db.session().unwrap();
        let rows: Vec<Done> = s.load(custodian::diesel::sql_query(slow)).unwrap();
        assert_eq!(rows.len(), 1);
        // A fast statement is not logged.
        let _: Vec<Done> = s
            .load(custodian::diesel::sql_query("SELECT 'done' AS v"))
            .unwrap();
    });
    let events = capture.events("custodian::slow");
    let logged = capture.events_named("custodian::slow", "slow statement");
    assert_eq!(logged.len(), 1, "{events:?}");
    assert!(logged[0].fields["sql"].contains("done"), "{logged:?}");
    let plans = capture.events_named("custodian::slow", "slow statement plan");
    assert_eq!(plans.len(), 1, "{events:?}");
    let plan = &plans[0].fields["plan"];
    let expected = match db.kind {
        BackendKind::Postgres => "\"Plan\"",
        BackendKind::Mysql => "query_block",
        _ => "SCAN",
    };
    assert!(plan.contains(expected), "{plan}");
}

/// `Session::explain` returns the database's plan for a diesel query without running it.
fn explain_returns_the_plan(db: &TestDb) {
    db.create_table::<Counter>().unwrap();
    let plan = db
        .session()
        .unwrap()
        .explain(Counter::query().filter(counters::name.eq("x")))
        .unwrap();
    let expected = match db.kind {
        BackendKind::Postgres => "\"Plan\"",
        BackendKind::Mysql => "query_block",
        _ => "counters",
    };
    assert!(plan.contains(expected), "{plan}");
}

/// Children loaded one parent at a time: past the threshold a warning names the entity and
/// this file's call site (error mode: the read fails); the batched loader does not.
fn n_plus_one_is_detected(base: &TestDb) {
    for mode in [NPlusOneMode::Warn, NPlusOneMode::Error] {
        let db = TestDb::with(base.kind, |c| {
            c.observe.n_plus_one = mode;
            c.observe.n_plus_one_threshold = 3;
        });
        db.create_tables(&[Vendor::META, Invoice::META]).unwrap();
        let mut s = db.session().unwrap();
        let mut vendors = Vec::new();
        for i in 0..6 {
            vendors.push(
                s.insert(Vendor {
                    id: 0,
                    tenant: "acme".into(),
                    name: format!("v{i}"),
                    iban: "x".into(),
                    contact_email: None,
                })
                .unwrap(),
            );
        }
        let ((), batched) = capturing(|| {
            for _ in 0..2 {
                let loaded = s.children::<Vendor, Invoice>(&vendors);
                assert!(loaded.is_ok(), "{loaded:?}");
            }
        });
        assert!(batched.events("custodian::n_plus_one").is_empty());
        let (results, capture) = capturing(|| {
            s.transaction(|tx| {
                let mut results = Vec::new();
                for v in &vendors {
                    results.push(tx.children::<Vendor, Invoice>(std::slice::from_ref(v)));
                }
                Ok(results)
            })
            .unwrap()
        });
        let warned = capture.events("custodian::n_plus_one");
        assert_eq!(warned.len(), 1, "{mode:?}: {warned:?}");
        assert_eq!(warned[0].fields["entity"], "Invoice");
        assert!(
            warned[0].fields["call_site"].contains("tests/integration/observe.rs"),
            "{warned:?}"
        );
        let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
        match mode {
            NPlusOneMode::Error => {
                assert_eq!(failed.len(), 1, "{results:?}");
                assert!(
                    matches!(failed[0], Err(Error::NPlusOne { entity, count: 4, .. }) if entity == "Invoice"),
                    "{failed:?}"
                );
            }
            _ => assert!(failed.is_empty(), "{results:?}"),
        }
    }
    let _ = Principal::new("unused");
}

/// Each statement span records `rows`: the rows a session read returned or a write changed.
fn statement_spans_carry_rows(db: &TestDb) {
    db.create_table::<Counter>().unwrap();
    let ((), capture) = capturing(|| {
        let mut s = db.session().unwrap();
        let mut rows: Vec<Counter> = ["a", "b", "c"]
            .iter()
            .map(|n| Counter {
                name: (*n).into(),
                value: 1,
            })
            .collect();
        assert_eq!(s.insert_many(&mut rows).unwrap(), 3);
        let mut b = s.get::<Counter>(&"b".to_string()).unwrap();
        b.value = 7;
        s.update(&mut b).unwrap();
        s.delete(&rows[0]).unwrap();
        assert_eq!(s.select::<Counter, _>(Counter::query()).unwrap().len(), 2);
        assert!(s.find::<Counter>(&"missing".to_string()).unwrap().is_none());
        assert_eq!(
            s.execute_sql("UPDATE counters SET value = value + 1")
                .unwrap(),
            2
        );
    });
    let statements = capture.spans("custodian.statement");
    let rows_of = |entity: &str, op: &str, sql: &str| -> Vec<String> {
        statements
            .iter()
            .filter(|s| {
                s.fields["entity"] == entity
                    && s.fields["op"] == op
                    && s.fields["sql"].to_uppercase().starts_with(sql)
                    && !s.fields["sql"].contains("custodian_audit")
            })
            .map(|s| s.fields.get("rows").cloned().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        rows_of("Counter", "insert", "INSERT"),
        ["3"],
        "{statements:#?}"
    );
    assert_eq!(
        rows_of("Counter", "get", "SELECT"),
        ["1"],
        "{statements:#?}"
    );
    assert_eq!(
        rows_of("Counter", "update", "UPDATE"),
        ["1"],
        "{statements:#?}"
    );
    assert_eq!(
        rows_of("Counter", "delete", "DELETE"),
        ["1"],
        "{statements:#?}"
    );
    assert_eq!(
        rows_of("Counter", "select", "SELECT"),
        ["2"],
        "{statements:#?}"
    );
    assert_eq!(
        rows_of("Counter", "find", "SELECT"),
        ["0"],
        "{statements:#?}"
    );
    assert_eq!(
        rows_of("", "sql", "UPDATE COUNTERS"),
        ["2"],
        "{statements:#?}"
    );
}

on_all_backends!(
    statement_spans_carry_rows,
    metrics_count_exactly,
    prometheus_scrape_parses,
    spans_carry_ids_and_no_secrets,
    slow_statements_are_logged_with_a_plan,
    explain_returns_the_plan,
    n_plus_one_is_detected,
);
