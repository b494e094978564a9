//! The validated description of an `#[entity]` struct: table, schema, columns, constraints,
//! relationships and options.
//!
//! [`EntityModel::from_struct`] applies every rule that involves more than one attribute or
//! field (primary key present and not nullable, `auto_increment` only on a single integer key,
//! unique column names, one column per role, one foreign key per parent, ...) and strips the
//! column attributes from the struct it is given.
//!
//! This module holds the model's types and [`EntityModel::from_struct`]; [`mod@column`] validates
//! one field that is a column (its attributes, encryption, foreign key), and [`checks`] applies
//! the rules across columns (keys, names, roles, relations, encryption, indexes) and derives
//! the table name.

mod checks;
mod column;

use crate::attrs::{combine, CheckAttr, EntityArgs, FieldAttrs, RefAction, Role};
use crate::types::SqlType;
use checks::{
    check_columns, check_encryption, check_roles_and_relations, ident_from, indexes, table_ident,
};
use column::column;
use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Fields, Ident, ItemStruct, LitStr, Path, Type, Visibility};

/// Most columns diesel handles in one table with the `32-column-tables` feature.
pub(crate) const MAX_COLUMNS: usize = 32;

/// A validated entity.
pub(crate) struct EntityModel {
    /// The struct's name.
    pub ident: Ident,
    /// The struct's visibility, given to the re-exported table module.
    pub vis: Visibility,
    /// The table name, also the name of the diesel table module.
    pub table: Ident,
    /// The schema, if any.
    pub schema: Option<Ident>,
    /// Mapped columns, in field order.
    pub columns: Vec<Column>,
    /// Fields marked `#[skip]`, filled with `Default::default()` when loading.
    pub skipped: Vec<Ident>,
    /// Multi-column indexes and unique constraints.
    pub indexes: Vec<Index>,
    /// `has_many(...)` and `has_one(...)` children.
    pub children: Vec<Path>,
    /// Span of the `hooks` flag, if present.
    pub hooks: Option<Span>,
    /// Whether `validate` runs validator's rules (flag, or `#[derive(Validate)]`).
    pub validate: Option<Span>,
    /// Span of the `unaudited` flag: writes are not recorded in the audit trail.
    pub unaudited: Option<Span>,
    /// `cache(...)`: the entity cache, with its bounds.
    pub cache: Option<crate::attrs::CacheAttr>,
}

/// A multi-column index or unique constraint.
pub(crate) struct Index {
    /// Name: `<table>_<col>_<col>_key` (unique) or `_idx`.
    pub name: String,
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Unique constraint.
    pub unique: bool,
}

/// A foreign key: the column's `#[belongs_to(Parent)]`.
pub(crate) struct ForeignKey {
    /// The parent entity as written (`Self` replaced by the struct's name).
    pub parent: Path,
    /// RefAction on delete.
    pub on_delete: RefAction,
    /// RefAction on update.
    pub on_update: RefAction,
    /// The key type the field holds (the field type, or `T` of `Option<T>`).
    pub key_ty: Type,
    /// Whether the parent is this entity itself.
    pub self_ref: bool,
}

/// How a timestamp field holds its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp {
    /// `DateTime<Utc>` rather than `NaiveDateTime`.
    pub utc: bool,
    /// In an `Option`.
    pub nullable: bool,
}

/// One mapped field.
pub(crate) struct Column {
    /// Field name, also the column's name in the diesel table module.
    pub ident: Ident,
    /// Field type.
    pub ty: Type,
    /// Column name in the database.
    pub name: String,
    /// Where the name was written: the `name = "..."` string, or the field name.
    pub name_span: Span,
    /// SQL type chosen from the field type.
    pub sql: SqlType,
    /// Part of the primary key.
    pub primary_key: bool,
    /// Assigned by the database on insert.
    pub auto_increment: bool,
    /// Computed or defaulted by the database: left out of inserts and updates.
    pub generated: bool,
    /// Unique constraint on this column alone.
    pub unique: bool,
    /// Index on this column alone.
    pub indexed: bool,
    /// SQL default expression.
    pub default_sql: Option<LitStr>,
    /// Check constraint.
    pub check: Option<CheckAttr>,
    /// Role the write path maintains, with the span of its attribute.
    pub role: Option<(Role, Span)>,
    /// For timestamp columns (`NaiveDateTime`, `DateTime<Utc>`, optionally in `Option`).
    pub timestamp: Option<Timestamp>,
    /// `#[belongs_to(...)]`.
    pub references: Option<ForeignKey>,
    /// Span of the parent path in `#[belongs_to(...)]`, for errors.
    pub references_span: Option<Span>,
    /// Span of the `encrypted` flag: stored sealed under the subject's data key.
    pub encrypted: Option<Span>,
    /// `blind_index = "field"` as written.
    pub blind_index: Option<LitStr>,
    /// The column name of the encrypted field this column indexes (resolved `blind_index`).
    pub blind_index_of: Option<String>,
    /// This column names the data subject (`#[entity(subject = "field")]`).
    pub subject: bool,
    /// `renamed_from = "old"`: the previous column name.
    pub renamed_from: Option<LitStr>,
}

impl Column {
    /// Whether the column is bound by `INSERT`.
    pub(crate) fn inserted(&self) -> bool {
        !self.auto_increment && !self.generated
    }

    /// Whether the column is set by `UPDATE` (from the entity or by the write path).
    pub(crate) fn updated(&self) -> bool {
        !self.primary_key && !self.generated
    }

    /// Whether the column plays `role`.
    pub(crate) fn is(&self, role: Role) -> bool {
        matches!(self.role, Some((r, _)) if r == role)
    }

    /// Whether the database name differs from the field name.
    pub(crate) fn renamed(&self) -> bool {
        self.ident.unraw() != self.name
    }
}

impl EntityModel {
    /// Validates `item` against `args`, removing `#[column]` and `#[skip]` from its fields.
    pub(crate) fn from_struct(args: EntityArgs, item: &mut ItemStruct) -> syn::Result<Self> {
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            return Err(syn::Error::new_spanned(
                &item.generics,
                "`#[entity]` does not support generic parameters or lifetimes",
            ));
        }
        let fields = match &mut item.fields {
            Fields::Named(named) => &mut named.named,
            Fields::Unnamed(unnamed) => {
                return Err(syn::Error::new_spanned(
                    &*unnamed,
                    "`#[entity]` needs a struct with named fields, found a tuple struct",
                ))
            }
            Fields::Unit => {
                return Err(syn::Error::new_spanned(
                    &item.ident,
                    "`#[entity]` needs a struct with named fields, found a unit struct",
                ))
            }
        };

        let mut errors: Option<syn::Error> = None;
        let table = match table_ident(&args, &item.ident) {
            Ok(t) => Some(t),
            Err(e) => {
                combine(&mut errors, e);
                None
            }
        };
        let schema = match &args.schema {
            Some(lit) => match ident_from(lit, "schema") {
                Ok(s) => Some(s),
                Err(e) => {
                    combine(&mut errors, e);
                    None
                }
            },
            None => None,
        };

        let mut columns = Vec::new();
        let mut skipped = Vec::new();
        for field in fields.iter_mut() {
            let attrs = match FieldAttrs::take(&mut field.attrs) {
                Ok(a) => a,
                Err(e) => {
                    combine(&mut errors, e);
                    continue;
                }
            };
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            if let Some(skip) = attrs.skip {
                if attrs.belongs_to.is_some() {
                    combine(
                        &mut errors,
                        syn::Error::new(
                            skip,
                            "`#[skip]` cannot be combined with `#[belongs_to]`: a foreign key must be stored",
                        ),
                    );
                } else if let Some(pk) = attrs.primary_key {
                    combine(
                        &mut errors,
                        syn::Error::new(
                            pk,
                            "a primary key cannot be `#[skip]`ped: the key must be stored",
                        ),
                    );
                } else if attrs.column.is_some() {
                    combine(
                        &mut errors,
                        syn::Error::new(
                            skip,
                            "`#[skip]` cannot be combined with `#[column]`: a skipped field is not a column",
                        ),
                    );
                }
                skipped.push(ident);
                continue;
            }
            match column(&item.ident, ident, field.ty.clone(), attrs) {
                Ok(c) => columns.push(c),
                Err(e) => combine(&mut errors, e),
            }
        }
        if let Some(e) = errors {
            return Err(e);
        }
        let table = table.expect("no table error was reported");
        check_encryption(&mut columns, &args)?;
        check_columns(&item.ident, &table, &columns)?;
        check_roles_and_relations(&columns, &args)?;
        let indexes = indexes(&table, &columns, &skipped, &args)?;
        let validate = args.validate.or_else(|| derives_validate(&item.attrs));
        Ok(EntityModel {
            ident: item.ident.clone(),
            vis: item.vis.clone(),
            table,
            schema,
            columns,
            skipped,
            indexes,
            children: args
                .has_many
                .iter()
                .chain(&args.has_one)
                .map(|p| self_to_name(p, &item.ident))
                .collect(),
            hooks: args.hooks,
            validate,
            unaudited: args.unaudited,
            cache: args.cache,
        })
    }

    /// The primary key columns, in field order.
    pub(crate) fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.primary_key)
    }

    /// The auto-increment column, if any.
    pub(crate) fn auto_increment(&self) -> Option<&Column> {
        self.columns.iter().find(|c| c.auto_increment)
    }

    /// The column playing `role`, if any.
    pub(crate) fn role(&self, role: Role) -> Option<&Column> {
        self.columns.iter().find(|c| c.is(role))
    }
}

/// The span of `#[derive(..., Validate, ...)]` among the struct's attributes, if any.
fn derives_validate(attrs: &[syn::Attribute]) -> Option<Span> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .filter_map(|a| {
            a.parse_args_with(syn::punctuated::Punctuated::<Path, syn::Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .find(|p| p.segments.last().is_some_and(|s| s.ident == "Validate"))
        .map(|p| p.span())
}

/// `Self` as the struct's name, so the path can be used outside the struct's impls.
fn self_to_name(path: &Path, ident: &Ident) -> Path {
    if path.is_ident("Self") {
        Path::from(Ident::new(&ident.to_string(), path.span()))
    } else {
        path.clone()
    }
}

/// `AuditFinding` -> `audit_finding`, `HTTPServer` -> `http_server`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_splits_words() {
        assert_eq!(snake_case("AuditFinding"), "audit_finding");
        assert_eq!(snake_case("Control"), "control");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Iso27001Control"), "iso27001_control");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }
}
