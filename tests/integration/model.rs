//! Entities for the relationship, validation and lifecycle tests: a small policy library.

use custodian::prelude::*;
use custodian::Hooks;
use std::sync::LazyLock;
use validator::Validate;

static CODE_RE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[A-Z]{2,5}-[0-9]{1,4}$").expect("valid regex"));

fn no_tabs(value: &str) -> Result<(), validator::ValidationError> {
    if value.contains('\t') {
        return Err(validator::ValidationError::new("no_tabs"));
    }
    Ok(())
}

fn review_after_effective(p: &Policy) -> Result<(), validator::ValidationError> {
    match (p.effective_on, p.review_on) {
        (Some(e), Some(r)) if r < e => {
            Err(validator::ValidationError::new("review_before_effective"))
        }
        _ => Ok(()),
    }
}

/// An attestation kept with a policy in memory (validated as a nested value, not stored).
#[derive(Debug, Clone, Default, PartialEq, Validate)]
pub struct Attestation {
    #[validate(length(max = 20))]
    pub signed_by: String,
}

/// A policy: validated, versioned, timestamped, soft-deleted, with requirements.
#[entity(table = "policies", has_many(Requirement))]
#[derive(Debug, Clone, PartialEq, Validate)]
#[validate(schema(function = "review_after_effective"))]
pub struct Policy {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(unique)]
    #[validate(length(min = 1, max = 12), regex(path = *CODE_RE))]
    pub code: String,
    #[validate(length(min = 3), custom(function = "no_tabs"))]
    pub title: String,
    #[validate(email)]
    pub owner_email: Option<String>,
    #[validate(url)]
    pub source_url: Option<String>,
    #[column(range(min = 1, max = 5))]
    #[validate(range(min = 1, max = 5))]
    pub risk: i32,
    #[validate(required)]
    pub approver: Option<String>,
    pub effective_on: Option<chrono::NaiveDate>,
    pub review_on: Option<chrono::NaiveDate>,
    #[column(version)]
    pub version: i64,
    #[column(created_at)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[column(updated_at)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
    #[column(deleted_at)]
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    #[skip]
    #[validate(nested)]
    pub attestation: Attestation,
}

impl Policy {
    pub fn new(code: &str) -> Policy {
        Policy {
            id: 0,
            code: code.into(),
            title: format!("Policy {code}"),
            owner_email: Some("owner@example.com".into()),
            source_url: None,
            risk: 3,
            approver: Some("cfo".into()),
            effective_on: None,
            review_on: None,
            version: 0,
            created_at: chrono::DateTime::<chrono::Utc>::default(),
            updated_at: chrono::DateTime::<chrono::Utc>::default(),
            deleted_at: None,
            attestation: Attestation {
                signed_by: "auditor".into(),
            },
        }
    }
}

/// A requirement of a policy; deleted with it.
#[entity(table = "requirements")]
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[belongs_to(Policy, on_delete = "cascade")]
    pub policy_id: i64,
    pub text: String,
}

/// A tag; requirements and tags are many-to-many through RequirementTag.
#[entity(table = "tags")]
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(unique)]
    pub name: String,
}

/// The join entity of requirements and tags.
#[entity(table = "requirement_tags")]
#[derive(Debug, Clone, PartialEq)]
pub struct RequirementTag {
    #[column(primary_key)]
    #[belongs_to(Requirement, on_delete = "cascade")]
    pub requirement_id: i64,
    #[column(primary_key)]
    #[belongs_to(Tag, on_delete = "restrict")]
    pub tag_id: i64,
}

/// An exception to a requirement; kept (with a NULL reference) when the requirement goes.
#[entity(table = "exceptions")]
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyException {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[belongs_to(Requirement, on_delete = "set_null")]
    pub requirement_id: Option<i64>,
    pub reason: String,
}

custodian::diesel::allow_tables_to_appear_in_same_query!(
    policies,
    requirements,
    tags,
    requirement_tags,
    exceptions
);

/// An entity with hooks: codes are normalised, every write is journaled, "FORBIDDEN" is refused.
#[entity(table = "hooked", hooks)]
#[derive(Debug, Clone, PartialEq)]
pub struct Hooked {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub code: String,
}

/// What the hooks of `Hooked` wrote.
#[entity(table = "journal")]
#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub event: String,
}

impl Hooks for Hooked {
    fn before_insert(&mut self, _s: &mut Session) -> custodian::Result<()> {
        if self.code.eq_ignore_ascii_case("forbidden") {
            return Err(custodian::Error::Forbidden(
                "code FORBIDDEN is reserved".into(),
            ));
        }
        self.code = self.code.to_uppercase();
        Ok(())
    }
    fn after_insert(&self, s: &mut Session) -> custodian::Result<()> {
        s.insert(Journal {
            id: 0,
            event: format!("insert {} {}", self.id, self.code),
        })?;
        Ok(())
    }
    fn before_update(&mut self, _s: &mut Session) -> custodian::Result<()> {
        self.code = self.code.to_uppercase();
        Ok(())
    }
    fn after_update(&self, s: &mut Session) -> custodian::Result<()> {
        s.insert(Journal {
            id: 0,
            event: format!("update {} {}", self.id, self.code),
        })?;
        Ok(())
    }
    fn before_delete(&mut self, _s: &mut Session) -> custodian::Result<()> {
        if self.code == "KEEP" {
            return Err(custodian::Error::Forbidden("KEEP rows stay".into()));
        }
        Ok(())
    }
    fn after_delete(&self, s: &mut Session) -> custodian::Result<()> {
        s.insert(Journal {
            id: 0,
            event: format!("delete {} {}", self.id, self.code),
        })?;
        Ok(())
    }
}

/// A counter without optimistic locking, to show the lost updates locking prevents.
#[entity(table = "plain_counters")]
#[derive(Debug, Clone, PartialEq)]
pub struct PlainCounter {
    #[column(primary_key)]
    pub name: String,
    pub value: i64,
}

/// The same counter with a version column.
#[entity(table = "locked_counters")]
#[derive(Debug, Clone, PartialEq)]
pub struct LockedCounter {
    #[column(primary_key)]
    pub name: String,
    pub value: i64,
    #[column(version)]
    pub version: i32,
}
