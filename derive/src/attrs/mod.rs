//! Parsing of the attributes the macros understand: `#[entity(...)]`, `#[column(...)]`,
//! `#[belongs_to(...)]`, `#[skip]` and `#[db_enum(...)]`.
//!
//! Parsing only checks the grammar (known keys, no duplicates, string values, no empty strings);
//! the rules that relate several fields to each other live in [`crate::model`].
//!
//! This module parses `#[entity(...)]` and holds the helpers every parser shares;
//! [`mod@column`] parses a field's `#[column(...)]` and `#[skip]` and defines the roles,
//! [`check`] the check constraints (`check`, `range`, `one_of`), and [`belongs_to`]
//! `#[belongs_to(...)]` and its referential actions.

mod belongs_to;
mod check;
mod column;

pub(crate) use belongs_to::{BelongsToAttr, RefAction};
pub(crate) use check::CheckAttr;
pub(crate) use column::{FieldAttrs, Role};

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitStr, Path, Token};

/// Arguments of `#[entity(...)]`.
#[derive(Default)]
pub(crate) struct EntityArgs {
    /// `table = "..."`: table name (default: the struct name in snake_case).
    pub table: Option<LitStr>,
    /// `schema = "..."`: schema (PostgreSQL) or database (MariaDB) holding the table.
    pub schema: Option<LitStr>,
    /// `unique(a, b)`: multi-column unique constraints.
    pub unique: Vec<FieldList>,
    /// `index(a, b)`: multi-column indexes.
    pub index: Vec<FieldList>,
    /// `has_many(Child)`: child entities that belong to this one.
    pub has_many: Vec<Path>,
    /// `has_one(Child)`: child entities that belong to this one, at most one per parent.
    pub has_one: Vec<Path>,
    /// Span of the `hooks` flag, if present.
    pub hooks: Option<Span>,
    /// Span of the `validate` flag, if present.
    pub validate: Option<Span>,
    /// Span of the `unaudited` flag, if present.
    pub unaudited: Option<Span>,
    /// `subject = "field"`: the field naming the data subject of encrypted columns.
    pub subject: Option<LitStr>,
    /// `cache` or `cache(capacity = N, ttl_secs = S)`: the entity cache.
    pub cache: Option<CacheAttr>,
}

/// `cache` / `cache(capacity = N, ttl_secs = S)` on an entity.
pub(crate) struct CacheAttr {
    /// The `cache` keyword: errors about the entity as a whole point here.
    pub span: Span,
    /// Most rows kept.
    pub capacity: Option<u64>,
    /// Seconds a row is kept.
    pub ttl_secs: Option<u64>,
}

/// The field names of `unique(...)` or `index(...)`, with the keyword for error spans.
pub(crate) struct FieldList {
    /// The `unique` or `index` keyword.
    pub keyword: Ident,
    /// The field names, as written.
    pub fields: Vec<Ident>,
}

impl EntityArgs {
    /// Parses the tokens inside `#[entity(...)]`.
    pub(crate) fn parse(attr: TokenStream) -> syn::Result<Self> {
        let mut args = EntityArgs::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("table") {
                string_value(&meta, "table", &mut args.table)
            } else if meta.path.is_ident("schema") {
                string_value(&meta, "schema", &mut args.schema)
            } else if meta.path.is_ident("unique") {
                args.unique.push(field_list(&meta, "unique")?);
                Ok(())
            } else if meta.path.is_ident("index") {
                args.index.push(field_list(&meta, "index")?);
                Ok(())
            } else if meta.path.is_ident("has_many") {
                entity_list(&meta, "has_many", &mut args.has_many)
            } else if meta.path.is_ident("has_one") {
                entity_list(&meta, "has_one", &mut args.has_one)
            } else if meta.path.is_ident("hooks") {
                flag(&meta, "hooks", &mut args.hooks)
            } else if meta.path.is_ident("validate") {
                flag(&meta, "validate", &mut args.validate)
            } else if meta.path.is_ident("unaudited") {
                flag(&meta, "unaudited", &mut args.unaudited)
            } else if meta.path.is_ident("subject") {
                string_value(&meta, "subject", &mut args.subject)
            } else if meta.path.is_ident("cache") {
                if args.cache.is_some() {
                    return Err(meta.error("duplicate attribute `cache`"));
                }
                args.cache = Some(cache_attr(&meta)?);
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown entity attribute `{}`, expected one of `table`, `schema`, `unique`, \
                     `index`, `has_many`, `has_one`, `hooks`, `validate`, `unaudited`, `subject`, `cache`",
                    path_name(&meta.path)
                )))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(args)
    }
}

/// Parses `cache` or `cache(capacity = N, ttl_secs = S)`: positive integers, each at most
/// once.
fn cache_attr(meta: &ParseNestedMeta<'_>) -> syn::Result<CacheAttr> {
    let mut attr = CacheAttr {
        span: meta.path.span(),
        capacity: None,
        ttl_secs: None,
    };
    if meta.input.peek(Token![=]) {
        return Err(meta.error(
            "`cache` takes bounds in parentheses: `cache` or `cache(capacity = 10000, ttl_secs = 60)`",
        ));
    }
    if !meta.input.peek(syn::token::Paren) {
        return Ok(attr);
    }
    meta.parse_nested_meta(|inner| {
        let name = path_name(&inner.path);
        let slot = match name.as_str() {
            "capacity" => &mut attr.capacity,
            "ttl_secs" => &mut attr.ttl_secs,
            _ => {
                return Err(inner.error(format!(
                    "unknown cache option `{name}`, expected `capacity` or `ttl_secs`"
                )))
            }
        };
        if slot.is_some() {
            return Err(inner.error(format!("duplicate cache option `{name}`")));
        }
        let value: Expr = inner.value()?.parse()?;
        let n = match &value {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => i.base10_parse::<u64>()?,
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    format!("`{name}` expects a positive integer"),
                ))
            }
        };
        if n == 0 {
            return Err(syn::Error::new_spanned(
                value,
                format!("`{name} = 0` would cache nothing: remove `cache` instead"),
            ));
        }
        *slot = Some(n);
        Ok(())
    })?;
    Ok(attr)
}

/// Parses `key(field_a, field_b)`.
fn field_list(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<FieldList> {
    let keyword = meta
        .path
        .get_ident()
        .cloned()
        .unwrap_or_else(|| Ident::new(key, meta.path.span()));
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`{key}` expects field names: `{key}(field_a, field_b)`"
        )));
    }
    let mut fields = Vec::new();
    meta.parse_nested_meta(|inner| {
        let Some(ident) = inner.path.get_ident() else {
            return Err(inner.error(format!("`{key}(...)` expects field names")));
        };
        if !inner.input.is_empty() && !inner.input.peek(Token![,]) {
            return Err(inner.error(format!("`{key}(...)` expects field names only")));
        }
        fields.push(ident.clone());
        Ok(())
    })?;
    Ok(FieldList { keyword, fields })
}

/// Parses `key(EntityA, EntityB)` into `out`.
fn entity_list(meta: &ParseNestedMeta<'_>, key: &str, out: &mut Vec<Path>) -> syn::Result<()> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!("`{key}` expects entity types: `{key}(Child)`")));
    }
    let mut any = false;
    meta.parse_nested_meta(|inner| {
        if !inner.input.is_empty() && !inner.input.peek(Token![,]) {
            return Err(inner.error(format!("`{key}(...)` expects entity types only")));
        }
        out.push(inner.path.clone());
        any = true;
        Ok(())
    })?;
    if !any {
        return Err(meta.error(format!("`{key}` expects entity types: `{key}(Child)`")));
    }
    Ok(())
}

/// Parses `#[db_enum(name = "...")]` on one enum variant; returns the stored name, if given.
pub(crate) fn variant_name(attrs: &[Attribute]) -> syn::Result<Option<LitStr>> {
    let mut name = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("db_enum")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                string_value(&meta, "name", &mut name)
            } else {
                Err(meta.error(format!(
                    "unknown db_enum attribute `{}`, expected `name`",
                    path_name(&meta.path)
                )))
            }
        })?;
    }
    Ok(name)
}

/// Parses `key = "value"` into `slot`, rejecting duplicates, non-strings and empty strings.
fn string_value(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    slot: &mut Option<LitStr>,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("duplicate attribute `{key}`")));
    }
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!("`{key}` expects a string: `{key} = \"...\"`")));
    }
    let value: Expr = meta.value()?.parse()?;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            if s.value().is_empty() {
                return Err(syn::Error::new(
                    s.span(),
                    format!("`{key}` cannot be empty"),
                ));
            }
            *slot = Some(s);
            Ok(())
        }
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` expects a string literal: `{key} = \"...\"`"),
        )),
    }
}

/// Parses a bare flag such as `primary_key` into `slot`, rejecting duplicates and values.
fn flag(meta: &ParseNestedMeta<'_>, key: &str, slot: &mut Option<Span>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!("`{key}` takes no value: write just `{key}`")));
    }
    if slot.is_some() {
        return Err(meta.error(format!("duplicate attribute `{key}`")));
    }
    *slot = Some(meta.path.span());
    Ok(())
}

/// A path as written, without the spaces `to_string` puts between tokens.
fn path_name(path: &syn::Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Adds `e` to the errors collected so far.
pub(crate) fn combine(errors: &mut Option<syn::Error>, e: syn::Error) {
    match errors {
        Some(all) => all.combine(e),
        None => *errors = Some(e),
    }
}
