//! The shortest useful custodian program: map a struct, create its table, write and query it.
//!
//! `cargo run --example quickstart` (in-memory SQLite; set `DATABASE_URL` for another database,
//! `CUSTODIAN_AUDIT_KEY` for the key sealing the audit trail).

use custodian::prelude::*;

/// A user of the reporting system.
#[entity(table = "reviewers")]
#[derive(Debug, Clone, PartialEq)]
pub struct Reviewer {
    /// Assigned by the database.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Login name.
    pub login: String,
    /// Department, if known.
    pub department: Option<String>,
}

/// The configuration for `url` with the environment applied. Without `CUSTODIAN_AUDIT_KEY` (and
/// without `CUSTODIAN_AUDIT_UNKEYED=1`) this demo seals with a key generated now and never
/// stored, and says so: its audit records can be verified only while it runs.
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

fn main() -> custodian::Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    // Writes are audited: say who is acting.
    let db =
        custodian::open(demo_config(&url)?)?.acting_as(custodian::Principal::new("quickstart"));
    db.drop_table::<Reviewer>()?;
    db.create_table::<Reviewer>()?;

    let mut s = db.session()?;
    let ada = s.insert(Reviewer {
        id: 0,
        login: "ada".into(),
        department: Some("Risk".into()),
    })?;
    s.insert_many(&mut [
        Reviewer {
            id: 0,
            login: "grace".into(),
            department: None,
        },
        Reviewer {
            id: 0,
            login: "linus".into(),
            department: Some("IT".into()),
        },
    ])?;
    println!("inserted {ada:?}");

    let with_department: Vec<Reviewer> = s.load(
        Reviewer::query()
            .filter(reviewers::department.is_not_null())
            .order(reviewers::login),
    )?;
    println!(
        "with a department: {:?}",
        with_department.iter().map(|r| &r.login).collect::<Vec<_>>()
    );

    let mut grace = s
        .first::<Reviewer, _>(Reviewer::query().filter(reviewers::login.eq("grace")))?
        .ok_or_else(|| custodian::Error::Integrity("grace is missing".into()))?;
    grace.department = Some("Audit".into());
    s.update(&mut grace)?;
    s.delete(&ada)?;
    println!("{} reviewers left", s.count(reviewers::table.count())?);
    Ok(())
}
