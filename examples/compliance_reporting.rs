//! The main job: a small SOX-style control register on embedded SQLite, no server needed.
//!
//! It registers controls (validated), records evidence and findings that belong to them (foreign
//! keys the database enforces), shows that invalid data and a failed transaction leave nothing
//! behind, closes a finding under optimistic locking, and prints the open-findings report from
//! a read-only, repeatable-read snapshot, loading each control's findings in one query. Then
//! the audit trail: the history of a finding (who changed what), the same report reproduced as
//! of an earlier moment from the trail alone, and the hash chain sealed, signed in a checkpoint
//! and verified.
//!
//! ```text
//! cargo run --example compliance_reporting                     # in-memory SQLite
//! DATABASE_URL=postgres://postgres@127.0.0.1/test cargo run --example compliance_reporting
//! ```
//! With `DATABASE_URL` set the same code runs on PostgreSQL or MariaDB (tables are dropped and
//! re-created, so point it at a scratch database).

use chrono::{DateTime, TimeZone, Utc};
use custodian::audit::AsOf;
use custodian::prelude::*;
use custodian::{Decimal, IsolationLevel};
use validator::Validate;

/// How severe a finding is; stored as text.
#[derive(DbEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Cosmetic.
    Low,
    /// Needs a plan.
    Medium,
    /// Needs a fix this quarter.
    High,
    /// Reportable to the audit committee.
    Critical,
}

/// An internal control under test.
#[entity(table = "controls", has_many(Finding), has_many(Evidence))]
#[derive(Debug, Clone, PartialEq, Validate)]
pub struct Control {
    /// Assigned by the database.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Stable reference, e.g. `ITGC-01`.
    #[column(unique)]
    #[validate(length(min = 3, max = 16))]
    pub code: String,
    /// What the control does.
    #[validate(length(min = 5))]
    pub title: String,
    /// Accountable person, if assigned.
    pub owner: Option<String>,
    /// Inherent risk.
    pub risk: Severity,
}

/// A piece of evidence that a control operated.
#[entity(table = "evidence")]
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Random identifier.
    #[column(primary_key)]
    pub id: uuid::Uuid,
    /// The control it supports; evidence goes with its control.
    #[belongs_to(Control, on_delete = "cascade")]
    pub control_id: i64,
    /// When it was collected (UTC).
    pub collected_at: DateTime<Utc>,
    /// Digest of the collected artefact.
    #[column(name = "sha256")]
    pub digest: String,
    /// Structured details.
    pub details: serde_json::Value,
}

/// A deficiency found while testing a control.
#[entity(table = "findings")]
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Assigned by the database.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// The control it concerns; a control with findings cannot be removed.
    #[belongs_to(Control, on_delete = "restrict")]
    pub control_id: i64,
    /// How severe it is.
    pub severity: Severity,
    /// Exposure in EUR, exact.
    pub amount_at_risk: Decimal,
    /// When it was raised (UTC).
    pub opened_at: DateTime<Utc>,
    /// When it was closed, if it was.
    pub closed_at: Option<DateTime<Utc>>,
    /// Optimistic-locking version: two people cannot close the same finding blindly.
    #[column(version)]
    pub version: i64,
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0)
        .single()
        .unwrap_or_default()
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    /// Control code.
    pub code: String,
    /// Open findings.
    pub open: usize,
    /// Worst open severity.
    pub worst: Option<Severity>,
    /// Sum of exposure of open findings.
    pub exposure: Decimal,
}

/// What the scenario printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The open-findings report at the end.
    pub report: Vec<ReportLine>,
    /// The same report as of the moment the findings were raised, rebuilt from the audit trail.
    pub report_when_raised: Vec<ReportLine>,
    /// Operations in the history of the closed finding, oldest first.
    pub closed_history: Vec<String>,
    /// Links of the audit chain checked against the signed checkpoint.
    pub audit_links: u64,
    /// Whether the chain verified against the checkpoint.
    pub audit_intact: bool,
}

/// The open-findings report over `controls`, from each control's findings (same order).
fn open_findings(controls: &[Control], findings: &[Vec<Finding>]) -> Vec<ReportLine> {
    controls
        .iter()
        .zip(findings)
        .map(|(c, all)| {
            let fs: Vec<&Finding> = all.iter().filter(|f| f.closed_at.is_none()).collect();
            ReportLine {
                code: c.code.clone(),
                open: fs.len(),
                worst: fs.iter().map(|f| f.severity).max(),
                exposure: fs.iter().map(|f| f.amount_at_risk.clone()).sum(),
            }
        })
        .collect()
}

fn print_report(title: &str, report: &[ReportLine]) {
    println!("\n{title}");
    println!(
        "{:<10} {:>5} {:<9} {:>14}",
        "control", "open", "worst", "exposure EUR"
    );
    for line in report {
        let worst = line
            .worst
            .map(|w| format!("{w:?}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<10} {:>5} {:<9} {:>14}",
            line.code,
            line.open,
            worst,
            line.exposure.with_scale(2)
        );
    }
}

/// Runs the whole scenario on `db` and returns what it printed.
pub fn run(db: &Db) -> custodian::Result<Outcome> {
    let tables = [Control::META, Evidence::META, Finding::META];
    db.drop_tables(&tables)?;
    db.create_tables(&tables)?; // parents first, with constraints and indexes
    println!("backend: {}", db.backend_kind());
    // One session for the whole job (an in-memory SQLite database has exactly one connection).
    let mut s = db.session()?;

    // 1. Register the control catalogue in one transaction.
    let catalogue = [
        (
            "ITGC-01",
            "Quarterly user access review",
            Some("alice"),
            Severity::High,
        ),
        (
            "ITGC-02",
            "Change management approval",
            Some("bob"),
            Severity::Medium,
        ),
        (
            "FIN-07",
            "Three-way match on invoices",
            None,
            Severity::Critical,
        ),
    ];
    let controls = s.transaction(|tx| {
        catalogue
            .iter()
            .map(|(code, title, owner, risk)| {
                tx.insert(Control {
                    id: 0,
                    code: code.to_string(),
                    title: title.to_string(),
                    owner: owner.map(str::to_string),
                    risk: *risk,
                })
            })
            .collect::<custodian::Result<Vec<_>>>()
    })?;
    println!("registered {} controls", controls.len());

    // Invalid data is refused before any SQL, with field-keyed errors.
    let invalid = s.insert(Control {
        id: 0,
        code: "X".into(),
        title: "?".into(),
        owner: None,
        risk: Severity::Low,
    });
    if let Err(e) = &invalid {
        let fields = e.field_errors().unwrap_or_default();
        println!(
            "refused an invalid control: {}",
            serde_json::to_string(&fields).unwrap_or_default()
        );
    }

    // 2. Evidence and findings.
    let mut evidence: Vec<Evidence> = controls
        .iter()
        .enumerate()
        .map(|(i, c)| Evidence {
            id: uuid::Uuid::new_v4(),
            control_id: c.id,
            collected_at: at(1 + i as u32, 9),
            digest: format!("{:064x}", 0xC0FFEE + i),
            details: serde_json::json!({"sample": 25, "exceptions": i, "tester": "internal audit"}),
        })
        .collect();
    s.insert_many(&mut evidence)?;
    let amounts = ["12500.00", "980.50", "250000.10", "75.25"];
    let mut findings = Vec::new();
    for (i, amount) in amounts.iter().enumerate() {
        let control = &controls[i % controls.len()];
        findings.push(s.insert(Finding {
            id: 0,
            control_id: control.id,
            severity: if i == 2 {
                Severity::Critical
            } else {
                Severity::Medium
            },
            amount_at_risk: amount.parse().map_err(|e| {
                custodian::Error::integrity_caused_by(
                    custodian::IntegrityKind::Application,
                    format!("amount {amount}: {e}"),
                    e,
                )
            })?,
            opened_at: at(10 + i as u32, 14),
            closed_at: None,
            version: 0,
        })?);
    }
    println!(
        "recorded {} evidence items and {} findings",
        evidence.len(),
        findings.len()
    );
    // The moment the report is reproduced as of, later: all findings raised, none closed.
    let raised = Utc::now().naive_utc();
    std::thread::sleep(std::time::Duration::from_millis(2)); // later writes are stamped later

    // 3. A transaction that fails leaves nothing behind.
    let unknown_control = 9_999;
    let failed = s.transaction(|tx| {
        tx.insert(Finding {
            id: 0,
            control_id: unknown_control,
            severity: Severity::Low,
            amount_at_risk: Decimal::from(1),
            opened_at: at(20, 8),
            closed_at: None,
            version: 0,
        })?;
        Ok(())
    });
    let stray = s.count(
        findings::table
            .filter(findings::control_id.eq(unknown_control))
            .count(),
    )?;
    // The database itself refuses the dangling foreign key.
    let rejected = matches!(failed, Err(custodian::Error::Constraint { .. }));
    println!("rejected a finding for an unknown control: {rejected}; rows left behind: {stray}");

    // 4. Close one finding.
    let mut closed = findings[0].clone();
    let mut stale = closed.clone();
    closed.closed_at = Some(at(28, 17));
    s.update(&mut closed)?;
    stale.amount_at_risk = Decimal::from(0);
    let conflict = s.update(&mut stale);
    println!(
        "closed finding #{} (version {}); a stale edit of it was refused: {}",
        closed.id,
        closed.version,
        matches!(conflict, Err(custodian::Error::Conflict { .. }))
    );

    // 5. The report, from one consistent read-only snapshot.
    let options = TxOptions::new()
        .isolation(IsolationLevel::RepeatableRead)
        .read_only();
    let report = s.transaction_with(&options, |tx| {
        let controls: Vec<Control> = tx.load(Control::query().order(controls::code))?;
        // One query for the findings of every control (no N+1).
        let findings = tx.children::<Control, Finding>(&controls)?;
        Ok(open_findings(&controls, &findings))
    })?;
    print_report("open findings per control", &report);

    // 6. The audit trail. Every write above was recorded with its actor, in its transaction
    //    (the failed one left no record).
    let closed_history: Vec<String> = s
        .history::<Finding>(&closed.id)?
        .iter()
        .map(|v| format!("{} by {}", v.record.op, v.record.actor))
        .collect();
    println!(
        "\nhistory of finding #{}: {}",
        closed.id,
        closed_history.join(", ")
    );
    // The report as of `raised`, rebuilt from the trail: whatever happened since, it stays the
    // same.
    let mut controls_now: Vec<Control> = s.select(Control::query())?;
    controls_now.sort_by(|a, b| a.code.cmp(&b.code));
    let then = s.as_of_all::<Finding>(AsOf::Time(raised))?;
    let by_control: Vec<Vec<Finding>> = controls_now
        .iter()
        .map(|c| {
            then.iter()
                .filter(|f| f.control_id == c.id)
                .cloned()
                .collect()
        })
        .collect();
    let report_when_raised = open_findings(&controls_now, &by_control);
    print_report(
        &format!(
            "open findings per control as of {} UTC (from the audit trail)",
            raised.format("%H:%M:%S%.3f")
        ),
        &report_when_raised,
    );
    drop(s);
    let stats = db.pool_stats();
    println!(
        "\npool: {} open, {} checkouts, longest wait {:?}",
        stats.size, stats.checkouts, stats.wait_max
    );

    // 7. Seal the records into the hash chain, sign its head (export this checkpoint and keep
    //    it outside the database), and verify the whole chain against it.
    let signer = custodian::audit::generate_signing_key()?;
    let checkpoint = db.checkpoint(&signer)?;
    let trusted = custodian::audit::VerifyOptions::new()
        .checkpoint(checkpoint.clone())
        .trust(signer.verifying_key());
    let verified = db.verify_audit_with(&trusted)?;
    println!(
        "audit chain: {} links verified against the checkpoint signed at sequence {}: {}",
        verified.links,
        checkpoint.seq,
        if verified.is_intact() {
            "intact"
        } else {
            "DAMAGED"
        }
    );
    Ok(Outcome {
        report,
        report_when_raised,
        closed_history,
        audit_links: verified.links,
        audit_intact: verified.is_intact(),
    })
}

/// The configuration for `url` with the environment applied. Without `CUSTODIAN_AUDIT_KEY` (and
/// without `CUSTODIAN_AUDIT_UNKEYED=1`) this demo seals with a key generated now and never
/// stored, and says so: its audit records can be verified only while it runs.
#[allow(dead_code)] // the integration tests include this file and call `run` on every backend
fn demo_config(url: &str) -> custodian::Result<custodian::DatabaseConfig> {
    let mut config = custodian::DatabaseConfig::from_url(url)?;
    config.apply_env(|var| std::env::var(var).ok())?;
    if config.audit.key.is_none() && !config.audit.unkeyed {
        let key = custodian::audit::AuditKey::generate()
            .map_err(|e| custodian::Error::config("audit.key", e.to_string()))?;
        println!(
            "CUSTODIAN_AUDIT_KEY is not set: sealing audit records with a throw-away key \
             generated for this run (set CUSTODIAN_AUDIT_KEY to keep them verifiable)"
        );
        config = config.with_audit_key(&key);
    }
    Ok(config)
}

#[allow(dead_code)] // as above
fn main() -> custodian::Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    // Every write is audited and needs an acting principal.
    let db =
        custodian::open(demo_config(&url)?)?.acting_as(custodian::Principal::new("internal-audit"));
    run(&db)?;
    Ok(())
}
