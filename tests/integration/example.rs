//! The README's main job (examples/compliance_reporting.rs) runs and reports correctly on every
//! backend, not only on the embedded SQLite it uses by default.

use crate::common::TestDb;
use crate::compliance_example::{run, Severity};

fn compliance_example_reports_open_findings(db: &TestDb) {
    let report = run(db).unwrap();
    let lines: Vec<(String, usize, Option<Severity>, String)> = report
        .into_iter()
        .map(|l| {
            (
                l.code,
                l.open,
                l.worst,
                l.exposure.with_scale(2).to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                "FIN-07".to_string(),
                1,
                Some(Severity::Critical),
                "250000.10".to_string()
            ),
            (
                "ITGC-01".to_string(),
                1,
                Some(Severity::Medium),
                "75.25".to_string()
            ),
            (
                "ITGC-02".to_string(),
                1,
                Some(Severity::Medium),
                "980.50".to_string()
            ),
        ]
    );
    // Running it again on the same database starts from scratch and gives the same report.
    assert_eq!(run(db).unwrap().len(), 3);
}

on_all_backends!(compliance_example_reports_open_findings);
