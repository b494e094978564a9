//! The [`Entity`] trait that `#[entity]` implements, and the run-time metadata it carries.
//!
//! An entity is a Rust struct mapped to one table. `#[entity]` generates the diesel `table!`,
//! a row type for loading, an insertable form without database-generated columns, a changeset
//! for updates, and an implementation of [`Entity`] whose raw operations the
//! [`Session`] write path calls. Application code never calls those raw
//! operations itself: it goes through the session, so checks and audit attach in one place.

use crate::conn::AnyConnection;
use crate::error::{Result, ValidationErrors};
use crate::session::Session;
use crate::value::{ColumnKind, DecodeError};
use diesel::QueryResult;

/// A column the write path maintains itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnRole {
    /// Ordinary data.
    Data,
    /// Optimistic-locking version (`#[column(version)]`): 1 on insert, +1 on every update; an
    /// update based on a stale version fails with `Error::Conflict`.
    Version,
    /// Set to the current UTC time on insert (`#[column(created_at)]`).
    CreatedAt,
    /// Set to the current UTC time on insert and update (`#[column(updated_at)]`).
    UpdatedAt,
    /// Soft delete marker (`#[column(deleted_at)]`): `NULL` while the row is live.
    DeletedAt,
}

/// A check constraint on one column, written as DDL for each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Inclusive integer bounds, either optional.
    Range {
        /// Lowest allowed value.
        min: Option<i64>,
        /// Highest allowed value.
        max: Option<i64>,
    },
    /// The value is one of these strings (DbEnum columns get this automatically).
    OneOf(&'static [&'static str]),
    /// A raw SQL boolean expression, used verbatim on every backend.
    Sql(&'static str),
}

/// What the database does to referencing rows when the referenced row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RefAction {
    /// Refuse the change while references exist (checked at the end of the statement).
    #[default]
    NoAction,
    /// Refuse the change while references exist (checked immediately).
    Restrict,
    /// Delete (or update) the referencing rows too.
    Cascade,
    /// Set the referencing column to `NULL`.
    SetNull,
}

/// A foreign key from one column to the primary key of another entity.
#[derive(Debug, Clone, Copy)]
pub struct ForeignKey {
    /// Metadata of the referenced entity (a function, so entities may reference each other).
    pub parent: fn() -> EntityMeta,
    /// Action on delete of the referenced row.
    pub on_delete: RefAction,
    /// Action on update of the referenced key.
    pub on_update: RefAction,
}

impl PartialEq for ForeignKey {
    fn eq(&self, other: &Self) -> bool {
        (self.parent)().table == (other.parent)().table
            && self.on_delete == other.on_delete
            && self.on_update == other.on_update
    }
}

impl Eq for ForeignKey {}

/// An index or unique constraint over one or more columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexMeta {
    /// Index name (unique per database): `<table>_<columns>_key` for unique, `_idx` otherwise.
    pub name: &'static str,
    /// Column names, in order.
    pub columns: &'static [&'static str],
    /// Whether it is a unique constraint.
    pub unique: bool,
}

/// Run-time description of one mapped column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMeta {
    /// Column name in the database.
    pub name: &'static str,
    /// Field name in the Rust struct.
    pub field: &'static str,
    /// Portable kind of the column, for DDL.
    pub kind: ColumnKind,
    /// Whether the column accepts `NULL` (the field is an `Option`).
    pub nullable: bool,
    /// Whether the column is part of the primary key.
    pub primary_key: bool,
    /// Whether the database assigns the value (auto-increment key): left out of inserts.
    pub auto_increment: bool,
    /// Whether the database computes or defaults the value: left out of inserts and updates.
    pub generated: bool,
    /// Whether the write path maintains the column (version, timestamps, soft delete).
    pub role: ColumnRole,
    /// A unique constraint on this column alone (`#[column(unique)]`).
    pub unique: bool,
    /// A non-unique index on this column alone (`#[column(index)]`).
    pub indexed: bool,
    /// SQL default expression (`#[column(default = "...")]`), used verbatim on every backend.
    pub default_sql: Option<&'static str>,
    /// Check constraint on this column.
    pub check: Option<Check>,
    /// Foreign key (`#[belongs_to(Parent)]`).
    pub references: Option<ForeignKey>,
    /// Stored sealed under the data key of the row's subject (`#[column(encrypted)]`): the
    /// write path encrypts the field, every entity read path decrypts it.
    pub encrypted: bool,
    /// Names the row's data subject, whose data key seals the encrypted columns
    /// (`#[entity(subject = "field")]`).
    pub subject: bool,
    /// Holds the blind index (keyed hash) of the named encrypted column, which the write path
    /// computes (`#[column(blind_index = "field")]`).
    pub blind_index_of: Option<&'static str>,
}

impl ColumnMeta {
    /// A plain data column; generated code fills the rest with `..ColumnMeta::PLAIN`.
    pub const PLAIN: ColumnMeta = ColumnMeta {
        name: "",
        field: "",
        kind: ColumnKind::Text,
        nullable: false,
        primary_key: false,
        auto_increment: false,
        generated: false,
        role: ColumnRole::Data,
        unique: false,
        indexed: false,
        default_sql: None,
        check: None,
        references: None,
        encrypted: false,
        subject: false,
        blind_index_of: None,
    };

    /// Whether MariaDB needs a bounded type for it (keys, unique, indexed, referencing).
    pub fn needs_index(&self) -> bool {
        self.primary_key || self.unique || self.indexed || self.references.is_some()
    }
}

/// Run-time description of an entity: its table and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityMeta {
    /// Name of the Rust struct.
    pub name: &'static str,
    /// Table name in the database.
    pub table: &'static str,
    /// PostgreSQL schema (MariaDB: database) holding the table, if not the default one.
    pub schema: Option<&'static str>,
    /// Mapped columns, in field order (skipped fields are absent).
    pub columns: &'static [ColumnMeta],
    /// Multi-column indexes and unique constraints (`#[entity(unique(a, b), index(c, d))]`).
    pub indexes: &'static [IndexMeta],
}

impl EntityMeta {
    /// The columns forming the primary key, in declaration order.
    pub fn primary_key(&self) -> impl Iterator<Item = &'static ColumnMeta> {
        self.columns.iter().filter(|c| c.primary_key)
    }

    /// The column of the given field name.
    pub fn column(&self, field: &str) -> Option<&'static ColumnMeta> {
        self.columns.iter().find(|c| c.field == field)
    }

    /// Whether the database assigns the (single) primary key on insert.
    pub fn has_auto_increment(&self) -> bool {
        self.columns.iter().any(|c| c.auto_increment)
    }

    /// Whether inserting leaves columns for the database to fill, so the stored row may differ
    /// from the inserted value.
    pub fn has_generated(&self) -> bool {
        self.columns.iter().any(|c| c.generated)
    }

    /// The column playing `role`, if any.
    pub fn role(&self, role: ColumnRole) -> Option<&'static ColumnMeta> {
        self.columns.iter().find(|c| c.role == role)
    }

    /// Whether deleting hides rows instead of removing them (a `deleted_at` column exists).
    pub fn soft_delete(&self) -> bool {
        self.role(ColumnRole::DeletedAt).is_some()
    }

    /// Whether some column is `#[column(encrypted)]`.
    pub fn has_encrypted(&self) -> bool {
        self.columns.iter().any(|c| c.encrypted)
    }

    /// The column naming the row's data subject (`#[entity(subject = "field")]`), if any.
    pub fn subject_column(&self) -> Option<&'static ColumnMeta> {
        self.columns.iter().find(|c| c.subject)
    }

    /// Whether updates check and bump a version column.
    pub fn versioned(&self) -> bool {
        self.role(ColumnRole::Version).is_some()
    }

    /// The column of the given SQL name.
    pub fn column_named(&self, name: &str) -> Option<&'static ColumnMeta> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Every index and unique constraint: single-column ones from the columns, then the
    /// multi-column ones, as `(name, columns, unique)`.
    pub fn all_indexes(&self) -> Vec<(String, Vec<&'static str>, bool)> {
        let mut out = Vec::new();
        for c in self.columns {
            if c.unique {
                out.push((format!("{}_{}_key", self.table, c.name), vec![c.name], true));
            } else if c.indexed || c.references.is_some() {
                out.push((
                    format!("{}_{}_idx", self.table, c.name),
                    vec![c.name],
                    false,
                ));
            }
        }
        for i in self.indexes {
            out.push((i.name.to_string(), i.columns.to_vec(), i.unique));
        }
        out
    }

    /// Number of columns an insert writes (0: the database fills every column, and each row
    /// is its own `DEFAULT VALUES` insert).
    pub fn inserted_columns(&self) -> usize {
        self.columns
            .iter()
            .filter(|c| !c.auto_increment && !c.generated)
            .count()
    }

    /// Number of values bound per row by an insert.
    pub fn insert_width(&self) -> usize {
        self.inserted_columns().max(1)
    }
}

/// A struct mapped to a table; implement it with `#[entity]`, never by hand.
///
/// The associated functions prefixed `raw_` run one SQL statement on a connection and are what
/// the [`Session`] write path builds on. They are hidden from the documentation
/// because calling them directly would bypass validation, hooks and audit.
pub trait Entity: Sized + Send + 'static {
    /// The primary key: the key field's type, or a tuple of them for a composite key.
    type Key: Clone + std::fmt::Debug + Send + 'static;
    /// The diesel table.
    type Table: diesel::Table + Default + Copy;
    /// The query selecting every mapped column of the live rows, ready for diesel filters.
    type Query;
    /// The query selecting every mapped column of all rows, soft-deleted ones included.
    type QueryWithDeleted;
    /// The query selecting every mapped column of the soft-deleted rows only.
    type QueryDeleted;

    /// Table and column metadata.
    const META: EntityMeta;

    /// Whether writes of this entity are recorded in the audit trail. On by default (the safe
    /// choice); `#[entity(audit = false)]` turns it off for data that needs no trail.
    const AUDITED: bool = true;

    /// Whether the entity has lifecycle hooks (`#[entity(hooks)]` with an impl of
    /// [`Hooks`](crate::Hooks)); writes of such entities always run in a transaction.
    const HOOKS: bool = false;

    /// `SELECT <columns> FROM <table>` (`WHERE deleted_at IS NULL` for soft-delete entities):
    /// add diesel `filter`, `order`, `limit` and `offset`, then run it with
    /// [`Session::load`](crate::Session::load).
    fn query() -> Self::Query;

    /// Like [`Entity::query`], soft-deleted rows included.
    fn query_with_deleted() -> Self::QueryWithDeleted;

    /// Like [`Entity::query`], soft-deleted rows only (no rows for other entities).
    fn query_deleted() -> Self::QueryDeleted;

    /// The primary key of this value.
    fn key(&self) -> Self::Key;

    /// Field rules (validator) and entity-level rules; run by the write path before every
    /// insert and update. `#[derive(Validate)]` on the struct makes `#[entity]` call it.
    fn validate(&self) -> std::result::Result<(), ValidationErrors> {
        Ok(())
    }

    /// The optimistic-locking version of this value, for versioned entities.
    fn version(&self) -> Option<i64> {
        None
    }

    /// The stored row as a JSON image (column name to stored value), as the audit trail records
    /// it. Generated by `#[entity]`.
    fn raw_image(
        &self,
    ) -> std::result::Result<serde_json::Map<String, serde_json::Value>, DecodeError> {
        Err(format!("{} has no JSON image", Self::META.name).into())
    }

    /// The value of a JSON image (from [`Entity::raw_image`]); skipped fields get their default.
    fn raw_from_image(
        image: &serde_json::Map<String, serde_json::Value>,
    ) -> std::result::Result<Self, DecodeError> {
        let _ = image;
        Err(format!("{} cannot be rebuilt from an image", Self::META.name).into())
    }

    /// The primary key as a JSON array of stored values, as the audit trail records it.
    fn raw_key_image(key: &Self::Key) -> std::result::Result<serde_json::Value, DecodeError> {
        let _ = key;
        Err(format!("{} has no key image", Self::META.name).into())
    }

    #[doc(hidden)]
    /// The columns (index into `META.columns`) whose values cannot be stored faithfully, with
    /// the reason ([`ColumnValue::unstorable`](crate::ColumnValue::unstorable)). Generated by
    /// `#[entity]`.
    fn raw_unstorable(&self) -> Vec<(usize, &'static str)> {
        Vec::new()
    }

    #[doc(hidden)]
    /// Mirrors into the struct what the write path stored: timestamps, version, soft delete.
    fn raw_stamp(&mut self, _op: Stamp, _now: chrono::NaiveDateTime) {}

    #[doc(hidden)]
    /// Runs the `before_*` hook of `kind` (entities with `#[entity(hooks)]`).
    fn raw_before(&mut self, _kind: WriteKind, _session: &mut Session) -> Result<()> {
        Ok(())
    }

    #[doc(hidden)]
    /// Runs the `after_*` hook of `kind` (entities with `#[entity(hooks)]`).
    fn raw_after(&self, _kind: WriteKind, _session: &mut Session) -> Result<()> {
        Ok(())
    }

    #[doc(hidden)]
    /// Stores the key assigned by the database after an insert (auto-increment entities only).
    fn raw_set_generated_key(&mut self, id: i64) -> Result<(), DecodeError>;

    #[doc(hidden)]
    /// `INSERT` of the given rows in one statement.
    fn raw_insert(conn: &mut AnyConnection, rows: &[Self]) -> QueryResult<usize>;

    #[doc(hidden)]
    /// `INSERT` of one row as a prepared statement diesel can cache. Returns the key the database
    /// assigned when the backend can return it from the same statement (`RETURNING` on
    /// PostgreSQL and SQLite), `None` otherwise (the write path then asks the backend).
    fn raw_insert_one(conn: &mut AnyConnection, row: &Self) -> QueryResult<Option<i64>> {
        Self::raw_insert(conn, std::slice::from_ref(row)).map(|_| None)
    }

    #[doc(hidden)]
    /// `INSERT` of the given rows in one statement that returns their auto-increment keys
    /// (`RETURNING` on PostgreSQL and SQLite), in ascending order: the order the database
    /// assigned them to the rows. `Ok(None)` without `RETURNING` (MariaDB) or an
    /// auto-increment key; nothing is inserted then.
    fn raw_insert_returning_keys(
        _conn: &mut AnyConnection,
        _rows: &[Self],
    ) -> QueryResult<Option<Vec<i64>>> {
        Ok(None)
    }

    #[doc(hidden)]
    /// `SELECT` by primary key; soft-deleted rows only when `with_deleted`.
    fn raw_find(
        conn: &mut AnyConnection,
        key: &Self::Key,
        with_deleted: bool,
    ) -> QueryResult<Option<Self>>;

    #[doc(hidden)]
    /// [`Entity::raw_find`] that also locks the row until the transaction ends, in the same
    /// statement (`FOR UPDATE` on PostgreSQL and MariaDB; SQLite's write transaction already
    /// excludes other writers).
    fn raw_find_for_update(
        conn: &mut AnyConnection,
        key: &Self::Key,
        with_deleted: bool,
    ) -> QueryResult<Option<Self>> {
        Self::raw_find(conn, key, with_deleted)
    }

    #[doc(hidden)]
    /// `SELECT` of the live rows with these primary keys, in one statement (any order).
    fn raw_find_many(conn: &mut AnyConnection, keys: &[Self::Key]) -> QueryResult<Vec<Self>>;

    #[doc(hidden)]
    /// `UPDATE` of every non-key, non-generated column by primary key, with `updated_at = now`
    /// and, for versioned entities, `version = version + 1 ... AND version = <entity's version>`.
    /// Returns matched rows.
    fn raw_update(
        conn: &mut AnyConnection,
        entity: &Self,
        now: chrono::NaiveDateTime,
    ) -> QueryResult<usize>;

    #[doc(hidden)]
    /// [`Entity::raw_update`] that also returns the row as it was before, in the same
    /// statement: `Ok(None)` where the backend cannot (the write path then reads it first),
    /// `Ok(Some(None))` when no row matched.
    fn raw_update_returning_old(
        _conn: &mut AnyConnection,
        _entity: &Self,
        _now: chrono::NaiveDateTime,
    ) -> QueryResult<Option<Option<Self>>> {
        Ok(None)
    }

    #[doc(hidden)]
    /// [`Entity::raw_update`] guarded by every column of the row still holding the values of
    /// `seen` (compared byte for byte, `NULL` equal to `NULL`): when it matches one row, `seen`
    /// was the row it replaced. `Ok(None)` for entities without updatable columns.
    fn raw_update_if_unchanged(
        _conn: &mut AnyConnection,
        _entity: &Self,
        _now: chrono::NaiveDateTime,
        _seen: &Self,
    ) -> QueryResult<Option<usize>> {
        Ok(None)
    }

    #[doc(hidden)]
    /// `DELETE` by primary key (hard delete); returns deleted rows.
    fn raw_delete(conn: &mut AnyConnection, key: &Self::Key) -> QueryResult<usize>;

    #[doc(hidden)]
    /// [`Entity::raw_delete`] that returns the deleted row (`DELETE … RETURNING` on PostgreSQL
    /// and SQLite): `Ok(None)` where the backend cannot, `Ok(Some(None))` when no row matched.
    fn raw_delete_returning(
        _conn: &mut AnyConnection,
        _key: &Self::Key,
    ) -> QueryResult<Option<Option<Self>>> {
        Ok(None)
    }

    #[doc(hidden)]
    /// Soft-delete entities: `UPDATE SET deleted_at = now` of a live row (`restore`: back to
    /// `NULL` for a deleted row). Returns matched rows; 0 for other entities.
    fn raw_set_deleted(
        _conn: &mut AnyConnection,
        _key: &Self::Key,
        _deleted_at: Option<chrono::NaiveDateTime>,
    ) -> QueryResult<usize> {
        Ok(0)
    }
}

/// What the write path is doing, for [`Entity::raw_stamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stamp {
    /// Before an insert: `created_at` and `updated_at` = now, `version` = 1.
    Insert,
    /// After an update: `updated_at` = now, `version` + 1.
    Update,
    /// After a soft delete: `deleted_at` = now.
    SoftDelete,
    /// After a restore: `deleted_at` = `None`.
    Restore,
}

/// The kind of write a hook runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// `insert` and `insert_many`.
    Insert,
    /// `update` and `update_many`.
    Update,
    /// `delete`, `delete_by_key` and `purge`.
    Delete,
}

/// Metadata of an entity as a plain function, for [`ForeignKey::parent`].
pub fn meta_of<E: Entity>() -> EntityMeta {
    E::META
}
