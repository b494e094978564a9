//! Parsing of the attributes the macros understand: `#[entity(...)]`, `#[column(...)]`,
//! `#[skip]` and `#[db_enum(...)]`.
//!
//! Parsing only checks the grammar (known keys, no duplicates, string values, no empty strings);
//! the rules that relate several fields to each other live in [`crate::model`].

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Token};

/// Arguments of `#[entity(table = "...", schema = "...")]`.
#[derive(Default)]
pub(crate) struct EntityArgs {
    /// `table = "..."`: table name (default: the struct name in snake_case).
    pub table: Option<LitStr>,
    /// `schema = "..."`: schema (PostgreSQL) or database (MariaDB) holding the table.
    pub schema: Option<LitStr>,
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
            } else {
                Err(meta.error(format!(
                    "unknown entity attribute `{}`, expected one of `table`, `schema`",
                    path_name(&meta.path)
                )))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(args)
    }
}

/// The column attributes of one field: `#[column(...)]` and `#[skip]`.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `name = "..."`: column name in the database.
    pub name: Option<LitStr>,
    /// Span of the `primary_key` flag, if present.
    pub primary_key: Option<Span>,
    /// Span of the `auto_increment` flag, if present.
    pub auto_increment: Option<Span>,
    /// Span of the `generated` flag, if present.
    pub generated: Option<Span>,
    /// Span of the first `#[column]` attribute, if any.
    pub column: Option<Span>,
    /// Span of the `#[skip]` attribute, if present.
    pub skip: Option<Span>,
}

impl FieldAttrs {
    /// Parses and removes `#[column(...)]` and `#[skip]` from `attrs`, keeping every other
    /// attribute in place.
    pub(crate) fn take(attrs: &mut Vec<Attribute>) -> syn::Result<Self> {
        let mut out = FieldAttrs::default();
        let mut errors: Option<syn::Error> = None;
        let mut kept = Vec::with_capacity(attrs.len());
        for attr in attrs.drain(..) {
            let result = if attr.path().is_ident("column") {
                out.column.get_or_insert(attr.span());
                attr.parse_nested_meta(|meta| out.column_key(&meta))
            } else if attr.path().is_ident("skip") {
                out.skip_attr(&attr)
            } else {
                kept.push(attr);
                Ok(())
            };
            if let Err(e) = result {
                combine(&mut errors, e);
            }
        }
        *attrs = kept;
        match errors {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn column_key(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("name") {
            string_value(meta, "name", &mut self.name)
        } else if meta.path.is_ident("primary_key") {
            flag(meta, "primary_key", &mut self.primary_key)
        } else if meta.path.is_ident("auto_increment") {
            flag(meta, "auto_increment", &mut self.auto_increment)
        } else if meta.path.is_ident("generated") {
            flag(meta, "generated", &mut self.generated)
        } else {
            Err(meta.error(format!(
                "unknown column attribute `{}`, expected one of `name`, `primary_key`, \
                 `auto_increment`, `generated`",
                path_name(&meta.path)
            )))
        }
    }

    fn skip_attr(&mut self, attr: &Attribute) -> syn::Result<()> {
        if let syn::Meta::List(_) | syn::Meta::NameValue(_) = attr.meta {
            return Err(syn::Error::new_spanned(
                &attr.meta,
                "`#[skip]` takes no arguments",
            ));
        }
        if self.skip.is_some() {
            return Err(syn::Error::new_spanned(
                attr,
                "duplicate attribute `#[skip]`",
            ));
        }
        self.skip = Some(attr.span());
        Ok(())
    }
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
