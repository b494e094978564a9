//! Roles the write path maintains (`version`, `created_at`, `updated_at`, `deleted_at`), soft
//! delete, lifecycle hooks and validation, through the public Session API on SQLite.
#![deny(missing_docs)]

use chrono::{DateTime, NaiveDateTime, Utc};
use custodian::prelude::*;
use custodian::{ColumnRole, Hooks};
use validator::Validate;

/// A versioned, timestamped, soft-deletable document.
#[entity(table = "documents")]
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Key.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Title.
    pub title: String,
    /// Optimistic-locking version.
    #[column(version)]
    pub version: i32,
    /// Set on insert.
    #[column(created_at)]
    pub created: NaiveDateTime,
    /// Set on insert and update.
    #[column(updated_at, name = "updated")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Soft delete marker.
    #[column(deleted_at)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A 64-bit version, a non-optional `updated_at` and a naive `deleted_at`.
#[entity]
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Key chosen by the application.
    #[column(primary_key)]
    pub code: String,
    /// Version.
    #[column(version)]
    pub rev: i64,
    /// Last change.
    #[column(updated_at)]
    pub changed: DateTime<Utc>,
    /// Creation, optional.
    #[column(created_at)]
    pub created: Option<DateTime<Utc>>,
    /// Soft delete.
    #[column(deleted_at)]
    pub gone: Option<NaiveDateTime>,
}

/// An entity with hooks and validator rules (`#[derive(Validate)]` after `#[entity]`).
#[entity(hooks)]
#[derive(Debug, Clone, PartialEq, Validate)]
#[validate(schema(function = "not_reserved"))]
pub struct Account {
    /// Key.
    #[column(primary_key, auto_increment)]
    pub id: i32,
    /// Name, normalised by a hook.
    #[validate(length(min = 1, max = 20))]
    pub name: String,
    /// Locked accounts cannot be deleted.
    pub locked: bool,
    /// Hook log, not stored.
    #[skip]
    pub log: Vec<String>,
}

fn not_reserved(a: &Account) -> Result<(), validator::ValidationError> {
    if a.name == "root" {
        return Err(validator::ValidationError::new("reserved"));
    }
    Ok(())
}

impl Hooks for Account {
    fn before_insert(&mut self, _session: &mut Session) -> custodian::Result<()> {
        self.name = self.name.to_lowercase();
        self.log.push("before_insert".into());
        Ok(())
    }
    fn after_insert(&self, _session: &mut Session) -> custodian::Result<()> {
        assert!(self.id > 0, "after_insert sees the generated key");
        Ok(())
    }
    fn before_update(&mut self, _session: &mut Session) -> custodian::Result<()> {
        self.log.push("before_update".into());
        Ok(())
    }
    fn before_delete(&mut self, _session: &mut Session) -> custodian::Result<()> {
        if self.locked {
            return Err(Error::integrity(
                custodian::IntegrityKind::Application,
                format!("account {} is locked", self.id),
            ));
        }
        Ok(())
    }
}

/// The `validate` flag with a hand-written `validator::Validate`.
#[entity(validate)]
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    /// Key.
    #[column(primary_key)]
    pub name: String,
}

impl Validate for Tag {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        let mut errors = validator::ValidationErrors::new();
        if self.name.contains(' ') {
            errors.add("name", validator::ValidationError::new("no_spaces"));
            return Err(errors);
        }
        Ok(())
    }
}

fn doc(title: &str) -> Document {
    Document {
        id: 0,
        title: title.into(),
        version: 0,
        created: NaiveDateTime::default(),
        updated_at: None,
        deleted_at: None,
    }
}

fn main() -> custodian::Result<()> {
    let meta = Document::META;
    assert_eq!(meta.role(ColumnRole::Version).unwrap().field, "version");
    assert_eq!(meta.role(ColumnRole::CreatedAt).unwrap().name, "created");
    assert_eq!(meta.role(ColumnRole::UpdatedAt).unwrap().name, "updated");
    assert!(meta.soft_delete() && meta.versioned());
    const { assert!(!Document::HOOKS && Account::HOOKS) };

    let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?.acting_as(custodian::Principal::new("ui-test"));
    db.create_table::<Document>()?;
    db.create_table::<Note>()?;
    db.create_table::<Account>()?;
    db.create_table::<Tag>()?;
    let mut s = db.session()?;

    // Insert stamps version and timestamps.
    let d = s.insert(doc("Policy"))?;
    assert_eq!(d.version, 1);
    assert_eq!(d.version(), Some(1));
    assert_ne!(d.created, NaiveDateTime::default());
    assert_eq!(d.updated_at.unwrap().naive_utc(), d.created);
    assert_eq!(s.get::<Document>(&d.id)?, d);

    // Update bumps the version, sets updated_at, keeps created_at.
    let mut changed = d.clone();
    changed.title = "Policy v2".into();
    changed.created = NaiveDateTime::default();
    s.update(&mut changed)?;
    assert_eq!(changed.version, 2);
    let stored = s.get::<Document>(&d.id)?;
    assert_eq!(stored.version, 2);
    assert_eq!(stored.title, "Policy v2");
    assert_eq!(stored.created, d.created, "created_at is never updated");
    assert_eq!(stored.updated_at, changed.updated_at);

    // A stale copy conflicts.
    let mut stale = d.clone();
    stale.title = "lost update".into();
    let err = s.update(&mut stale).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(err.field_errors().unwrap().fields["version"][0].code, "stale_version");
    assert_eq!(stale.version, 1, "a failed update does not stamp");

    // Bulk reads in one statement, live rows only.
    let other = s.insert(doc("Other"))?;
    let mut many = s.get_many::<Document>(&[d.id, other.id, 999])?;
    many.sort_by_key(|x| x.id);
    assert_eq!(many.iter().map(|x| x.id).collect::<Vec<_>>(), [d.id, other.id]);

    // Soft delete hides the row; the deleted query and find_with_deleted still see it.
    s.delete(&stored)?;
    assert!(s.find::<Document>(&d.id)?.is_none());
    assert_eq!(s.get_many::<Document>(&[d.id, other.id])?.len(), 1);
    let hidden = s.find_with_deleted::<Document>(&d.id)?.unwrap();
    assert!(hidden.deleted_at.is_some());
    assert_eq!(s.deleted::<Document>()?.len(), 1);
    assert_eq!(s.load::<Document, _>(Document::query())?.len(), 1);
    assert_eq!(s.load::<Document, _>(Document::query_with_deleted())?.len(), 2);
    assert!(matches!(s.delete(&stored).unwrap_err(), Error::NotFound { .. }));
    let mut ghost = hidden.clone();
    assert!(matches!(s.update(&mut ghost).unwrap_err(), Error::NotFound { .. }), "deleted rows are not updated");

    // Restore brings it back; purge removes it for good.
    let back = s.restore::<Document>(&d.id)?;
    assert_eq!(back.deleted_at, None);
    assert!(matches!(s.restore::<Document>(&d.id).unwrap_err(), Error::NotFound { .. }));
    s.delete(&back)?;
    s.purge(&back)?;
    assert!(s.find_with_deleted::<Document>(&d.id)?.is_none());

    // Application keys, i64 version, non-optional updated_at.
    let note = s.insert(Note {
        code: "n1".into(),
        rev: 0,
        changed: DateTime::default(),
        created: None,
        gone: None,
    })?;
    assert_eq!(note.rev, 1);
    assert!(note.created.is_some() && note.changed == note.created.unwrap());
    let mut n = note.clone();
    s.update(&mut n)?;
    s.update(&mut n)?;
    assert_eq!(s.get::<Note>(&"n1".to_string())?.rev, 3);
    s.delete(&n)?;
    assert!(s.find_with_deleted::<Note>(&"n1".to_string())?.unwrap().gone.is_some());

    // Hooks run around writes.
    let a = s.insert(Account { id: 0, name: "ALICE".into(), locked: true, log: vec![] })?;
    assert_eq!(a.name, "alice");
    assert_eq!(a.log, ["before_insert"]);
    let mut a2 = a.clone();
    s.update(&mut a2)?;
    assert_eq!(a2.log, ["before_insert", "before_update"]);
    let err = s.delete(&a).unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(s.find::<Account>(&a.id)?.is_some(), "a failing before hook aborts the write");

    // Validation runs before every insert and update.
    let err = s.insert(Account { id: 0, name: String::new(), locked: false, log: vec![] }).unwrap_err();
    assert_eq!(err.field_errors().unwrap().fields["name"][0].code, "length");
    let err = s.insert(Account { id: 0, name: "root".into(), locked: false, log: vec![] }).unwrap_err();
    assert!(err.field_errors().unwrap().fields.contains_key("__entity"), "{err}");
    let mut a3 = a.clone();
    a3.name = "x".repeat(30);
    assert!(matches!(s.update(&mut a3).unwrap_err(), Error::Validation(_)));
    let err = s.insert(Tag { name: "two words".into() }).unwrap_err();
    assert_eq!(err.field_errors().unwrap().fields["name"][0].code, "no_spaces");
    s.insert(Tag { name: "one".into() })?;
    Ok(())
}
