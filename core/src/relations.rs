//! Relationships between entities: `belongs_to` (a foreign key), its inverse `has_many` /
//! `has_one`, and many-to-many through a join entity that belongs to both sides.
//!
//! `#[belongs_to(Parent)]` on a foreign-key field implements [`BelongsTo`], adds the foreign key
//! to the DDL and lets diesel join the two tables. Loading goes through the session, one query
//! per relation whatever the number of parents (no N+1):
//! [`Session::parent`](crate::Session::parent), [`Session::children`](crate::Session::children),
//! [`Session::child`](crate::Session::child), [`Session::related`](crate::Session::related).

use crate::conn::AnyConnection;
use crate::entity::Entity;
use diesel::QueryResult;

/// A child entity whose foreign key references parent `P`. Implemented by `#[belongs_to(P)]`.
///
/// An entity can belong to a given parent type through one foreign key only.
pub trait BelongsTo<P: Entity>: Entity {
    /// Field name of the foreign key.
    const FOREIGN_KEY: &'static str;

    #[doc(hidden)]
    /// The diesel column of the foreign key (for the parent's `has_many` / `has_one` joins).
    type ForeignKeyColumn: diesel::Column + Default;

    /// The parent key this value points at; `None` when a nullable foreign key is `NULL`.
    fn parent_key(&self) -> Option<P::Key>;

    #[doc(hidden)]
    /// Live rows whose foreign key is one of `keys`, in one statement.
    fn raw_children_of(conn: &mut AnyConnection, keys: &[P::Key]) -> QueryResult<Vec<Self>>;
}
