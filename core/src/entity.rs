//! The [`Entity`] trait that `#[entity]` implements, and the run-time metadata it carries.
//!
//! An entity is a Rust struct mapped to one table. `#[entity]` generates the diesel `table!`,
//! a row type for loading, an insertable form without database-generated columns, a changeset
//! for updates, and an implementation of [`Entity`] whose raw operations the
//! [`Session`](crate::Session) write path calls. Application code never calls those raw
//! operations itself: it goes through the session, so checks and audit attach in one place.

use crate::conn::AnyConnection;
use crate::value::{ColumnKind, DecodeError};
use diesel::QueryResult;

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

    /// Number of values bound per row by an insert.
    pub fn insert_width(&self) -> usize {
        self.columns
            .iter()
            .filter(|c| !c.auto_increment && !c.generated)
            .count()
            .max(1)
    }
}

/// A struct mapped to a table; implement it with `#[entity]`, never by hand.
///
/// The associated functions prefixed `raw_` run one SQL statement on a connection and are what
/// the [`Session`](crate::Session) write path builds on. They are hidden from the documentation
/// because calling them directly would bypass validation, hooks and audit.
pub trait Entity: Sized + Send + 'static {
    /// The primary key: the key field's type, or a tuple of them for a composite key.
    type Key: Clone + std::fmt::Debug + Send + 'static;
    /// The query selecting every mapped column of this entity, ready for diesel filters.
    type Query;

    /// Table and column metadata.
    const META: EntityMeta;

    /// `SELECT <columns> FROM <table>`: add diesel `filter`, `order`, `limit` and `offset`, then
    /// run it with [`Session::load`](crate::Session::load).
    fn query() -> Self::Query;

    /// The primary key of this value.
    fn key(&self) -> Self::Key;

    #[doc(hidden)]
    /// Stores the key assigned by the database after an insert (auto-increment entities only).
    fn raw_set_generated_key(&mut self, id: i64) -> Result<(), DecodeError>;

    #[doc(hidden)]
    /// `INSERT` of the given rows in one statement.
    fn raw_insert(conn: &mut AnyConnection, rows: &[Self]) -> QueryResult<usize>;

    #[doc(hidden)]
    /// `SELECT` by primary key.
    fn raw_find(conn: &mut AnyConnection, key: &Self::Key) -> QueryResult<Option<Self>>;

    #[doc(hidden)]
    /// `UPDATE` of every non-key, non-generated column by primary key; returns matched rows.
    fn raw_update(conn: &mut AnyConnection, entity: &Self) -> QueryResult<usize>;

    #[doc(hidden)]
    /// `DELETE` by primary key; returns deleted rows.
    fn raw_delete(conn: &mut AnyConnection, key: &Self::Key) -> QueryResult<usize>;
}
