//! Check constraints of `#[column(...)]`: `check = "SQL"`, `range(min = .., max = ..)` with
//! integer literal bounds, and `one_of("a", "b", ...)`.

use super::path_name;
use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, Token, UnOp};

/// A check constraint written on a column.
pub(crate) enum CheckAttr {
    /// `check = "SQL"`.
    Sql(LitStr),
    /// `range(min = .., max = ..)`.
    Range {
        /// Lowest allowed value.
        min: Option<i64>,
        /// Highest allowed value.
        max: Option<i64>,
    },
    /// `one_of("a", "b")`.
    OneOf(Vec<LitStr>),
}

impl CheckAttr {
    /// The attribute key.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            CheckAttr::Sql(_) => "check",
            CheckAttr::Range { .. } => "range",
            CheckAttr::OneOf(_) => "one_of",
        }
    }
}

/// Parses `range(min = 1, max = 5)`.
pub(super) fn range(meta: &ParseNestedMeta<'_>) -> syn::Result<CheckAttr> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error("`range` expects bounds: `range(min = 1, max = 5)`"));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let mut min = None;
    let mut max = None;
    let bounds = syn::meta::parser(|inner| {
        let slot = if inner.path.is_ident("min") {
            &mut min
        } else if inner.path.is_ident("max") {
            &mut max
        } else {
            return Err(inner.error(format!(
                "unknown range bound `{}`, expected `min` or `max`",
                path_name(&inner.path)
            )));
        };
        let key = path_name(&inner.path);
        if slot.is_some() {
            return Err(inner.error(format!("duplicate bound `{key}`")));
        }
        if !inner.input.peek(Token![=]) {
            return Err(inner.error(format!("`{key}` expects an integer: `{key} = 1`")));
        }
        let value: Expr = inner.value()?.parse()?;
        *slot = Some(integer(&value, &key)?);
        Ok(())
    });
    syn::parse::Parser::parse2(bounds, content.parse::<TokenStream>()?)?;
    match (min, max) {
        (None, None) => {
            Err(meta.error("`range` needs `min`, `max` or both: `range(min = 1, max = 5)`"))
        }
        (Some(lo), Some(hi)) if lo > hi => Err(meta.error(format!(
            "empty range: `min` ({lo}) is greater than `max` ({hi})"
        ))),
        _ => Ok(CheckAttr::Range { min, max }),
    }
}

/// An integer literal, possibly negative.
fn integer(value: &Expr, key: &str) -> syn::Result<i64> {
    let not_integer = || {
        syn::Error::new_spanned(
            value,
            format!("`{key}` expects an integer literal: `{key} = 1`"),
        )
    };
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<i64>(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => format!("-{}", i.base10_digits())
                .parse::<i64>()
                .map_err(|e| syn::Error::new_spanned(value, e)),
            _ => Err(not_integer()),
        },
        _ => Err(not_integer()),
    }
}

/// Parses `one_of("a", "b")`.
pub(super) fn one_of(meta: &ParseNestedMeta<'_>) -> syn::Result<CheckAttr> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error("`one_of` expects strings: `one_of(\"a\", \"b\")`"));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let values = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    let mut out: Vec<LitStr> = Vec::new();
    for value in values {
        match value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => {
                if out.iter().any(|o| o.value() == s.value()) {
                    return Err(syn::Error::new(
                        s.span(),
                        format!("`{}` is listed twice", s.value()),
                    ));
                }
                out.push(s);
            }
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "`one_of` expects string literals: `one_of(\"a\", \"b\")`",
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(meta.error("`one_of` needs at least one value: `one_of(\"a\", \"b\")`"));
    }
    Ok(CheckAttr::OneOf(out))
}
