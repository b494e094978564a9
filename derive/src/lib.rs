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
mod model;
mod types;

/// Maps a struct with named fields to a table.
///
/// ```text
/// #[entity(table = "controls", schema = "compliance")]
/// pub struct Control {
///     #[column(primary_key, auto_increment)]
///     pub id: i64,
///     #[column(name = "control_code")]
///     pub code: String,
///     #[column(generated)]
///     pub created_at: Option<chrono::NaiveDateTime>,
///     #[skip]
///     pub cache: Vec<String>,
/// }
/// ```
///
/// Entity keys: `table` (default: the struct name in snake_case) and `schema`. Field keys, in
/// `#[column(...)]`: `name = "..."`, `primary_key`, `auto_increment`, `generated`; `#[skip]`
/// leaves a field out of the table and fills it with `Default::default()` when loading.
///
/// Generates the `diesel::table!` module (named after the table, with the struct's visibility),
/// loading, insert and update support, and an implementation of `custodian::Entity`. The user
/// crate must depend on `diesel` too (diesel's `table!` refers to `::diesel`).
#[proc_macro_attribute]
pub fn entity(attr: TokenStream, item: TokenStream) -> TokenStream {
    entity::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Stores a field-less enum as the name of its variant in a text column.
///
/// A variant is stored under its identifier, or under `#[db_enum(name = "...")]`.
#[proc_macro_derive(DbEnum, attributes(db_enum))]
pub fn db_enum(item: TokenStream) -> TokenStream {
    syn::parse::<syn::DeriveInput>(item)
        .and_then(db_enum::expand)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
