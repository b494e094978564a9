//! The README's main job (examples/compliance_reporting.rs) runs and reports correctly on every
//! backend, not only on the embedded SQLite it uses by default.

use crate::common::TestDb;
use crate::compliance_example::{run, ReportLine, Severity};

type Line = (String, usize, Option<Severity>, String);

fn lines(report: Vec<ReportLine>) -> Vec<Line> {
    report
        .into_iter()
        .map(|l| {
            (
                l.code,
                l.open,
                l.worst,
                l.exposure.with_scale(2).to_string(),
            )
        })
        .collect()
}

fn line(code: &str, open: usize, worst: Option<Severity>, exposure: &str) -> Line {
    (code.to_string(), open, worst, exposure.to_string())
}

fn compliance_example_reports_open_findings(db: &TestDb) {
    let outcome = run(db).unwrap();
    // As of the moment the findings were raised, rebuilt from the audit trail: all four open,
    // the later close not included.
    assert_eq!(
        lines(outcome.report_when_raised),
        [
            line("FIN-07", 1, Some(Severity::Critical), "250000.10"),
            line("ITGC-01", 2, Some(Severity::Medium), "12575.25"),
            line("ITGC-02", 1, Some(Severity::Medium), "980.50"),
        ]
    );
    assert_eq!(
        outcome.closed_history,
        ["insert by test-suite", "update by test-suite"]
    );
    assert!(outcome.audit_intact);
    // 3 controls, 3 evidence items, 4 findings, 1 close; the failed and refused writes left none.
    assert_eq!(outcome.audit_links, 11);
    assert_eq!(
        lines(outcome.report),
        [
            line("FIN-07", 1, Some(Severity::Critical), "250000.10"),
            line("ITGC-01", 1, Some(Severity::Medium), "75.25"),
            line("ITGC-02", 1, Some(Severity::Medium), "980.50"),
        ]
    );
    // Running it again on the same database starts from scratch and gives the same report;
    // the trail keeps growing and still verifies.
    let again = run(db).unwrap();
    assert_eq!(again.report.len(), 3);
    assert!(again.audit_intact);
    assert_eq!(again.audit_links, 22);
}

on_all_backends!(compliance_example_reports_open_findings);

/// Migrations generated from the example's entities apply cleanly, and the drift check passes.
fn example_migrations_apply_cleanly(db: &TestDb) {
    use crate::compliance_example::{Control, Evidence, Finding};
    use custodian::Entity;
    let dir = std::env::temp_dir().join(format!("custodian-example-migrations-{}", db.name));
    let metas = [Control::META, Evidence::META, Finding::META];
    custodian::migrate::generate(&dir, "compliance example", &metas, custodian::backends::ALL)
        .unwrap();
    assert_eq!(db.run_migrations(&dir).unwrap().len(), 1);
    assert!(db.run_migrations(&dir).unwrap().is_empty(), "applied once");
    db.check_schema(&metas).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

on_all_backends!(example_migrations_apply_cleanly);
