//! Procedural macros of custodian: `#[entity]` and `#[derive(DbEnum)]`.
//!
//! Use them through the `custodian` crate, which re-exports both; the generated code refers to
//! custodian's runtime as `::custodian::__private`.
//!
//! The crate is organised by concern: `attrs` parses the attributes, `types` maps Rust field types
//! to SQL types, `model` validates an entity, `entity` and `db_enum` generate code.
#![deny(missing_docs)]

use proc_macro::TokenStream;

mod attrs;
mod db_enum;
mod entity;
#[cfg(test)]
mod expand_tests;
mod manifest;
mod model;
mod types;

/// Maps a struct with named fields to a table.
///
/// Every attribute below is used in a runnable example (a doctest of the `custodian` crate):
/// `custodian::guide::entities` shows those the other guide topics do not, and says where the
/// rest are. The example here is a summary of the syntax.
///
/// ```text
/// #[entity(table = "controls", schema = "compliance", unique(framework, code),
///          index(owner, level), has_many(Finding), hooks)]
/// #[derive(Debug, Clone, validator::Validate)]
/// pub struct Control {
///     #[column(primary_key, auto_increment)]
///     pub id: i64,
///     pub framework: String,
///     #[column(name = "control_code")]
///     #[validate(length(min = 1))]
///     pub code: String,
///     #[column(unique)]
///     pub slug: String,
///     #[column(index)]
///     pub owner: Option<String>,
///     #[column(range(min = 1, max = 5), default = "1")]
///     pub level: i32,
///     #[column(one_of("low", "high"))]
///     pub risk: String,
///     #[belongs_to(Framework, on_delete = "cascade")]
///     pub framework_id: i64,
///     #[column(version)]
///     pub version: i32,
///     #[column(created_at)]
///     pub created_at: chrono::NaiveDateTime,
///     #[column(updated_at)]
///     pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
///     #[column(deleted_at)]
///     pub deleted_at: Option<chrono::NaiveDateTime>,
///     #[skip]
///     pub cache: Vec<String>,
/// }
/// ```
///
/// # Entity attributes: `#[entity(...)]`
///
/// - `table = "..."` (default: the struct name in snake_case), `schema = "..."` (PostgreSQL
///   schema or MariaDB database, created by `Db::create_table(s)` if missing; on SQLite the name
///   of an attached database, which the application attaches).
/// - `unique(field_a, field_b, ...)`, `index(field_a, field_b, ...)`: a multi-column unique
///   constraint (named `<table>_<col>_<col>_key`) or index (`<table>_<col>_<col>_idx`) over at
///   least two columns, named by field; repeatable. For one column use `#[column(unique)]` or
///   `#[column(index)]`.
/// - `has_many(Child, ...)`, `has_one(Child, ...)`: the children that `#[belongs_to(ThisEntity)]`;
///   repeatable. Lets diesel join this table to the child's (the child's `belongs_to` gives the
///   other direction). Loading goes through `Session::children` / `Session::child`.
/// - `hooks`: the write path runs the entity's `custodian::Hooks` impl (which you write) around
///   inserts, updates and deletes, inside a transaction.
/// - `validate`: the write path runs `validator::Validate` before every insert and update. Without
///   the flag the rules run all the same whenever the struct implements `Validate`, whether
///   `#[derive(Validate)]` (or `#[derive(validator::Validate)]`) is placed above or below
///   `#[entity]`; the flag makes a missing `Validate` impl a compile error. `#[validate(...)]`
///   attributes are left in place for validator's derive (the crate then depends on
///   `validator = { version = "0.20", features = ["derive"] }`).
/// - `unaudited`: the write path appends no audit records for this entity. Entities are audited
///   by default (the safer choice: forgetting the flag records too much, never too little).
/// - `subject = "field"`: the field holding the data subject's id, whose data key seals the
///   entity's `encrypted` columns (see below). Required with, and only with, encrypted columns.
/// - `cache` or `cache(capacity = N, ttl_secs = S)` (positive integers; default 10 000 rows for
///   60 s): `get`, `find` and `get_many` outside a transaction read through the entity cache
///   (custodian's `cache` feature; without it the flag changes nothing). The struct must be
///   `Clone`. Encrypted fields are cached as ciphertext; access control applies after the
///   cache. See `custodian::cache`.
///
/// # Field attributes: `#[column(...)]`, combinable
///
/// - `name = "..."`: column name (default: the field name).
/// - `primary_key` (one or more fields; not nullable), `auto_increment` (single integer key),
///   `generated` (computed or defaulted by the database: left out of inserts and updates).
/// - `unique`, `index`: a unique constraint or index on this column alone (not on a primary key,
///   not both).
/// - `default = "SQL"`: the column's SQL default, used verbatim on every backend.
/// - `renamed_from = "old"`: the column was called `old`; `migrate::generate` renames that
///   column (keeping its data) instead of dropping it and adding a new one. No effect at run
///   time; harmless to keep once the rename is generated.
/// - One check constraint at most: `check = "SQL"` (a boolean expression, verbatim),
///   `range(min = 1, max = 5)` (integer fields, `Option` included; either bound optional,
///   integer literals), or `one_of("a", "b", ...)` (text fields). Columns of a
///   `#[derive(DbEnum)]` enum (or `Option` of one) are checked against the enum's stored names
///   unless they have an explicit check.
/// - Roles the write path maintains, at most one column each, not on a primary key and not
///   `generated`:
///   - `version`: `i32` or `i64`; 1 on insert, `+ 1` on each update; an update of a stale
///     version fails with `Error::Conflict` (code `stale_version`).
///   - `created_at`: `NaiveDateTime` or `DateTime<Utc>`, optionally in `Option`; set on insert,
///     never updated.
///   - `updated_at`: same types; set on insert and on every update.
///   - `deleted_at`: `Option<NaiveDateTime>` or `Option<DateTime<Utc>>`; makes the entity
///     soft-delete: `delete` sets it, `restore` clears it, queries and finds see live rows
///     (`NULL`) only, except `query_with_deleted`, `query_deleted` and `find_with_deleted`.
///
/// # Encrypted fields: `#[column(encrypted)]`, `#[column(blind_index = "field")]`
///
/// ```text
/// #[entity(table = "clients", subject = "client_ref")]
/// pub struct Client {
///     #[column(primary_key, auto_increment)]
///     pub id: i64,
///     pub client_ref: String,
///     #[column(encrypted)]
///     pub email: Option<String>,
///     #[column(blind_index = "email")]
///     pub email_index: Option<String>,
/// }
/// ```
///
/// - `encrypted` (on `String` or `Option<String>`): the write path stores the value sealed
///   (AES-256-GCM) under the data key of the row's subject; every entity read opens it again, and
///   it reads as `custodian::crypto::ERASED` once the subject was erased. Not combinable with
///   `primary_key`, `unique`, `index`, `generated`, a role, a check, `default`, `belongs_to` or
///   `blind_index`: the database only sees random ciphertext.
/// - `blind_index = "field"` (on `String`/`Option<String>`, nullable exactly like the encrypted
///   field it names): the write path fills it with the keyed hash of that field's plaintext, so
///   equality lookups stay possible (`Crypto::blind_index`). Indexed automatically unless
///   `unique`.
///
/// # Foreign keys: `#[belongs_to(Parent)]`
///
/// `#[belongs_to(Parent)]` or `#[belongs_to(Parent, on_delete = "...", on_update = "...")]` on the
/// field holding the parent's key: its type (or `T` of `Option<T>`) must be the parent's
/// (single-column) key type. Actions: `"no_action"` (default), `"restrict"`, `"cascade"`,
/// `"set_null"` (needs an `Option` field). `Self` (or the entity's own name) makes a
/// self-reference. An entity can belong to a given parent type through one field only.
/// Generates the foreign key in the metadata (and DDL), `custodian::BelongsTo<Parent>` and
/// diesel's `JoinTo` from this table to the parent's.
///
/// `"cascade"` and `"set_null"` on delete are carried out by the database, and recorded by
/// custodian: when the write path hard-deletes a parent row, every row the cascade deletes or
/// sets to `NULL` (transitively) gets its own audit record in the same transaction, with its
/// true before and after images (`custodian::cascade`). The `Db` must know the child entity
/// (`create_table(s)`, `check_schema` or `schema_drift` with it).
///
/// # Other field attributes
///
/// `#[skip]` leaves a field out of the table and fills it with `Default::default()` when
/// loading.
///
/// # Generated code
///
/// The `diesel::table!` module (named after the table, with the struct's visibility), loading,
/// insert and update support, and an implementation of `custodian::Entity`. The user crate must
/// depend on `diesel` too (diesel's `table!` refers to `::diesel`). To join tables in one query,
/// list them in diesel's `allow_tables_to_appear_in_same_query!`.
#[proc_macro_attribute]
pub fn entity(attr: TokenStream, item: TokenStream) -> TokenStream {
    entity::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Stores a field-less enum as the name of its variant in a text column.
///
/// A variant is stored under its identifier, or under `#[db_enum(name = "...")]`. Runnable
/// example: `custodian::guide::entities`.
#[proc_macro_derive(DbEnum, attributes(db_enum))]
pub fn db_enum(item: TokenStream) -> TokenStream {
    syn::parse::<syn::DeriveInput>(item)
        .and_then(db_enum::expand)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
