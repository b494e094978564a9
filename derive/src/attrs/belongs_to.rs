//! `#[belongs_to(Parent, on_delete = "...", on_update = "...")]` on a field, and the
//! referential actions of a foreign key.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::{Expr, ExprLit, Ident, Lit, Path, Token};

/// What the database does to referencing rows (`on_delete`, `on_update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum RefAction {
    /// `"no_action"`.
    #[default]
    NoAction,
    /// `"restrict"`.
    Restrict,
    /// `"cascade"`.
    Cascade,
    /// `"set_null"`.
    SetNull,
}

impl RefAction {
    /// The `RefAction` variant.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            RefAction::NoAction => "NoAction",
            RefAction::Restrict => "Restrict",
            RefAction::Cascade => "Cascade",
            RefAction::SetNull => "SetNull",
        }
    }
}

/// `#[belongs_to(Parent, on_delete = "...", on_update = "...")]`.
pub(crate) struct BelongsToAttr {
    /// The parent entity type.
    pub parent: Path,
    /// Action on delete, with the span of its value.
    pub on_delete: (RefAction, Option<Span>),
    /// Action on update, with the span of its value.
    pub on_update: (RefAction, Option<Span>),
}

impl BelongsToAttr {
    pub(super) fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(
                input.error("`#[belongs_to]` expects the parent entity: `#[belongs_to(Parent)]`")
            );
        }
        if input.peek(syn::Ident) && input.peek2(Token![=]) {
            return Err(input.error(
                "the first argument of `#[belongs_to]` is the parent entity: \
                 `#[belongs_to(Parent, on_delete = \"cascade\")]`",
            ));
        }
        let parent: Path = input.parse()?;
        let mut out = BelongsToAttr {
            parent,
            on_delete: (RefAction::NoAction, None),
            on_update: (RefAction::NoAction, None),
        };
        let mut seen_delete = false;
        let mut seen_update = false;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            let (slot, seen) = if key == "on_delete" {
                (&mut out.on_delete, &mut seen_delete)
            } else if key == "on_update" {
                (&mut out.on_update, &mut seen_update)
            } else {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown belongs_to attribute `{key}`, expected `on_delete` or `on_update`"
                    ),
                ));
            };
            if *seen {
                return Err(syn::Error::new(
                    key.span(),
                    format!("duplicate attribute `{key}`"),
                ));
            }
            *seen = true;
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{key}` expects an action: `{key} = \"cascade\"`"),
                ));
            }
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            let Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) = &value
            else {
                return Err(syn::Error::new_spanned(
                    &value,
                    format!("`{key}` expects a string literal: `{key} = \"cascade\"`"),
                ));
            };
            let action = match s.value().as_str() {
                "no_action" => RefAction::NoAction,
                "restrict" => RefAction::Restrict,
                "cascade" => RefAction::Cascade,
                "set_null" => RefAction::SetNull,
                other => {
                    return Err(syn::Error::new(
                        s.span(),
                        format!(
                            "unknown action `{other}` for `{key}`, expected one of \
                             \"no_action\", \"restrict\", \"cascade\", \"set_null\""
                        ),
                    ))
                }
            };
            *slot = (action, Some(s.span()));
        }
        Ok(out)
    }
}
