//! `#[column(...)]` and `#[skip]` on a field: the column's name, key flags, constraints, role,
//! encryption, and the field's `#[belongs_to(...)]` (parsed by [`super::belongs_to`]); and the
//! roles the write path maintains.

use super::check::{one_of, range};
use super::{combine, flag, path_name, string_value, BelongsToAttr, CheckAttr};
use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, LitStr, Path, Token};

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
    /// Span of the `unique` flag, if present.
    pub unique: Option<Span>,
    /// Span of the `index` flag, if present.
    pub index: Option<Span>,
    /// `default = "..."`: SQL default expression.
    pub default: Option<LitStr>,
    /// The check constraint and the span of its key.
    pub check: Option<(CheckAttr, Span)>,
    /// The role and the span of its key.
    pub role: Option<(Role, Span)>,
    /// `#[belongs_to(...)]`.
    pub belongs_to: Option<BelongsToAttr>,
    /// Span of the first `#[column]` attribute, if any.
    pub column: Option<Span>,
    /// Span of the `#[skip]` attribute, if present.
    pub skip: Option<Span>,
    /// Span of the `encrypted` flag, if present.
    pub encrypted: Option<Span>,
    /// `blind_index = "field"`: this column holds the blind index of an encrypted field.
    pub blind_index: Option<LitStr>,
    /// `renamed_from = "old"`: the column's previous name, for generated migrations.
    pub renamed_from: Option<LitStr>,
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
            } else if attr.path().is_ident("belongs_to") {
                out.belongs_to_attr(&attr)
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
        } else if meta.path.is_ident("unique") {
            flag(meta, "unique", &mut self.unique)
        } else if meta.path.is_ident("index") {
            flag(meta, "index", &mut self.index)
        } else if meta.path.is_ident("default") {
            string_value(meta, "default", &mut self.default)
        } else if meta.path.is_ident("encrypted") {
            flag(meta, "encrypted", &mut self.encrypted)
        } else if meta.path.is_ident("blind_index") {
            string_value(meta, "blind_index", &mut self.blind_index)
        } else if meta.path.is_ident("renamed_from") {
            string_value(meta, "renamed_from", &mut self.renamed_from)
        } else if meta.path.is_ident("check") {
            let mut sql = None;
            string_value(meta, "check", &mut sql)?;
            let sql = sql.expect("string_value sets the slot on success");
            self.set_check(meta, CheckAttr::Sql(sql))
        } else if meta.path.is_ident("range") {
            let range = range(meta)?;
            self.set_check(meta, range)
        } else if meta.path.is_ident("one_of") {
            let values = one_of(meta)?;
            self.set_check(meta, values)
        } else if let Some(role) = Role::from_path(&meta.path) {
            self.set_role(meta, role)
        } else {
            Err(meta.error(format!(
                "unknown column attribute `{}`, expected one of `name`, `primary_key`, \
                 `auto_increment`, `generated`, `unique`, `index`, `default`, `check`, `range`, \
                 `one_of`, `version`, `created_at`, `updated_at`, `deleted_at`, `encrypted`, \
                 `blind_index`, `renamed_from`",
                path_name(&meta.path)
            )))
        }
    }

    fn set_check(&mut self, meta: &ParseNestedMeta<'_>, check: CheckAttr) -> syn::Result<()> {
        if let Some((first, _)) = &self.check {
            return Err(syn::Error::new(
                meta.path.span(),
                format!(
                    "a column can have one check only, and this one already has `{}`: combine the \
                 conditions in one `check = \"...\"`",
                    first.key()
                ),
            ));
        }
        self.check = Some((check, meta.path.span()));
        Ok(())
    }

    fn set_role(&mut self, meta: &ParseNestedMeta<'_>, role: Role) -> syn::Result<()> {
        if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
            return Err(meta.error(format!(
                "`{0}` takes no value: write just `{0}`",
                role.key()
            )));
        }
        if let Some((first, _)) = &self.role {
            return Err(meta.error(if *first == role {
                format!("duplicate attribute `{}`", role.key())
            } else {
                format!(
                    "a column can have one role only, and this one is already `{}`",
                    first.key()
                )
            }));
        }
        self.role = Some((role, meta.path.span()));
        Ok(())
    }

    fn belongs_to_attr(&mut self, attr: &Attribute) -> syn::Result<()> {
        let syn::Meta::List(list) = &attr.meta else {
            return Err(syn::Error::new_spanned(
                &attr.meta,
                "`#[belongs_to]` expects the parent entity: `#[belongs_to(Parent)]`",
            ));
        };
        if self.belongs_to.is_some() {
            return Err(syn::Error::new_spanned(
                attr,
                "duplicate attribute `#[belongs_to]`: a field is one foreign key",
            ));
        }
        let parsed = list.parse_args_with(BelongsToAttr::parse)?;
        self.belongs_to = Some(parsed);
        Ok(())
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

/// The role of a column the write path maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `version`.
    Version,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `deleted_at`.
    DeletedAt,
}

impl Role {
    fn from_path(path: &Path) -> Option<Role> {
        let ident = path.get_ident()?;
        Some(match ident.to_string().as_str() {
            "version" => Role::Version,
            "created_at" => Role::CreatedAt,
            "updated_at" => Role::UpdatedAt,
            "deleted_at" => Role::DeletedAt,
            _ => return None,
        })
    }

    /// The attribute key.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Role::Version => "version",
            Role::CreatedAt => "created_at",
            Role::UpdatedAt => "updated_at",
            Role::DeletedAt => "deleted_at",
        }
    }

    /// The `ColumnRole` variant.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Role::Version => "Version",
            Role::CreatedAt => "CreatedAt",
            Role::UpdatedAt => "UpdatedAt",
            Role::DeletedAt => "DeletedAt",
        }
    }
}
