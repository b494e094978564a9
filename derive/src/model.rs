//! The validated description of an `#[entity]` struct: table, schema, columns, constraints,
//! relationships and options.
//!
//! [`EntityModel::from_struct`] applies every rule that involves more than one attribute or
//! field (primary key present and not nullable, `auto_increment` only on a single integer key,
//! unique column names, one column per role, one foreign key per parent, ...) and strips the
//! column attributes from the struct it is given.

use crate::attrs::{
    combine, BelongsToAttr, CheckAttr, EntityArgs, FieldAttrs, FieldList, RefAction, Role,
};
use crate::types::{datetime_of, option_inner, sql_type_of, SqlType};
use proc_macro2::Span;
use quote::ToTokens;
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

/// The path as written, for comparisons and messages.
fn path_string(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Validates the attributes of one field that is a column.
fn column(entity: &Ident, ident: Ident, ty: Type, attrs: FieldAttrs) -> syn::Result<Column> {
    let sql = sql_type_of(&ty)?;
    if attrs.primary_key.is_some() && sql.is_nullable() {
        return Err(syn::Error::new_spanned(
            &ty,
            "a primary key cannot be nullable: remove the `Option`",
        ));
    }
    if let (Some(generated), Some(_)) = (attrs.generated, attrs.primary_key) {
        return Err(syn::Error::new(
            generated,
            "a primary key cannot be `generated`: use `auto_increment` for a key the database assigns",
        ));
    }
    if let Some(auto) = attrs.auto_increment {
        if attrs.primary_key.is_none() {
            return Err(syn::Error::new(
                auto,
                "`auto_increment` is only allowed on the primary key: add `primary_key` or use `generated`",
            ));
        }
        if !sql.is_integer() {
            return Err(syn::Error::new_spanned(
                &ty,
                "an `auto_increment` key must be an integer: i16, i32 or i64",
            ));
        }
    }
    if let Some(unique) = attrs.unique {
        if attrs.primary_key.is_some() {
            return Err(syn::Error::new(
                unique,
                "a primary key is unique already: remove `unique`",
            ));
        }
    }
    if let Some(index) = attrs.index {
        if attrs.primary_key.is_some() || attrs.unique.is_some() {
            return Err(syn::Error::new(
                index,
                "this column is indexed already (primary key or `unique`): remove `index`",
            ));
        }
    }
    let timestamp = datetime_of(&ty).map(|(utc, nullable)| Timestamp { utc, nullable });
    if let Some((role, span)) = attrs.role {
        let key = role.key();
        if attrs.primary_key.is_some() {
            return Err(syn::Error::new(
                span,
                format!("a primary key cannot be `{key}`: the write path maintains that column, use another field"),
            ));
        }
        if attrs.generated.is_some() {
            return Err(syn::Error::new(
                span,
                format!("`{key}` cannot be combined with `generated`: the write path sets the column, not the database"),
            ));
        }
        match role {
            Role::Version => {
                if !matches!(sql, SqlType::Integer | SqlType::BigInt) {
                    return Err(syn::Error::new_spanned(
                        &ty,
                        "a `version` column must be `i32` or `i64` (not in an `Option`)",
                    ));
                }
            }
            Role::CreatedAt | Role::UpdatedAt => {
                if timestamp.is_none() {
                    return Err(syn::Error::new_spanned(
                        &ty,
                        format!(
                            "a `{key}` column must be a timestamp: `NaiveDateTime` or \
                             `DateTime<Utc>`, optionally in an `Option`"
                        ),
                    ));
                }
            }
            Role::DeletedAt => {
                if !timestamp.is_some_and(|t| t.nullable) {
                    return Err(syn::Error::new_spanned(
                        &ty,
                        "a `deleted_at` column must be `Option<NaiveDateTime>` or \
                         `Option<DateTime<Utc>>`: `None` (NULL) marks a live row",
                    ));
                }
            }
        }
    }
    if let Some((check, span)) = &attrs.check {
        let base = match &sql {
            SqlType::Nullable(inner) => &**inner,
            other => other,
        };
        match check {
            CheckAttr::Range { .. } if !base.is_integer() => {
                return Err(syn::Error::new(
                    *span,
                    format!(
                        "`range` is only allowed on integer fields (i16, i32, i64, or an `Option` \
                         of one), not `{}`: use `check = \"...\"`",
                        ty.to_token_stream().to_string().replace(' ', "")
                    ),
                ))
            }
            CheckAttr::OneOf(_) if *base != SqlType::Text => {
                return Err(syn::Error::new(
                    *span,
                    format!(
                        "`one_of` is only allowed on text fields, not `{}`: use `check = \"...\"`",
                        ty.to_token_stream().to_string().replace(' ', "")
                    ),
                ))
            }
            _ => {}
        }
    }
    check_encrypted_column(&ty, &sql, &attrs)?;
    let (references, references_span) = match attrs.belongs_to {
        Some(b) => {
            let span = b.parent.span();
            (Some(foreign_key(entity, &ty, &sql, b)?), Some(span))
        }
        None => (None, None),
    };
    let name = match &attrs.name {
        Some(lit) => lit.value(),
        None => ident.unraw().to_string(),
    };
    let name_span = attrs.name.as_ref().map_or(ident.span(), LitStr::span);
    Ok(Column {
        ident,
        ty,
        name,
        name_span,
        sql,
        primary_key: attrs.primary_key.is_some(),
        auto_increment: attrs.auto_increment.is_some(),
        generated: attrs.generated.is_some(),
        unique: attrs.unique.is_some(),
        indexed: attrs.index.is_some(),
        default_sql: attrs.default,
        check: attrs.check.map(|(c, _)| c),
        role: attrs.role,
        timestamp,
        references,
        references_span,
        encrypted: attrs.encrypted,
        blind_index: attrs.blind_index,
        blind_index_of: None,
        subject: false,
        renamed_from: attrs.renamed_from,
    })
}

/// Whether `ty` is `String` or `Option<String>`: what `encrypted` and `blind_index` hold.
fn is_text_field(ty: &Type, sql: &SqlType) -> bool {
    let base = match sql {
        SqlType::Nullable(inner) => &**inner,
        other => other,
    };
    *base == SqlType::Text && sql.stored_as_is(ty)
}

/// Rules of one field about `encrypted` and `blind_index`.
fn check_encrypted_column(ty: &Type, sql: &SqlType, attrs: &FieldAttrs) -> syn::Result<()> {
    if let Some(span) = attrs.encrypted {
        if !is_text_field(ty, sql) {
            return Err(syn::Error::new_spanned(
                ty,
                "an `encrypted` field must be `String` or `Option<String>`: its column holds the \
                 ciphertext as text (for other types seal a `Sealed<T>` field yourself)",
            ));
        }
        let conflict = [
            (attrs.primary_key, "a primary key"),
            (attrs.unique, "`unique`"),
            (attrs.index, "`index`"),
            (attrs.generated, "`generated`"),
            (attrs.role.map(|(_, s)| s), "a `version`/timestamp role"),
            (attrs.check.as_ref().map(|(_, s)| *s), "a check"),
            (attrs.default.as_ref().map(LitStr::span), "a SQL `default`"),
            (
                attrs.belongs_to.as_ref().map(|b| b.parent.span()),
                "`#[belongs_to]`",
            ),
            (
                attrs.blind_index.as_ref().map(LitStr::span),
                "`blind_index`",
            ),
        ]
        .into_iter()
        .find_map(|(s, what)| s.map(|_| what));
        if let Some(what) = conflict {
            return Err(syn::Error::new(
                span,
                format!(
                    "an `encrypted` column cannot also be {what}: the database only sees random \
                     ciphertext (for lookups or uniqueness add a `blind_index` column)"
                ),
            ));
        }
    }
    if let Some(lit) = &attrs.blind_index {
        if !is_text_field(ty, sql) {
            return Err(syn::Error::new_spanned(
                ty,
                "a `blind_index` field must be `String` or `Option<String>`: it holds a hex \
                 keyed hash",
            ));
        }
        if attrs.primary_key.is_some() || attrs.role.is_some() || attrs.belongs_to.is_some() {
            return Err(syn::Error::new(
                lit.span(),
                "a `blind_index` column is computed by the write path: it cannot be a key, a \
                 role or a foreign key",
            ));
        }
    }
    Ok(())
}

/// Rules across fields about encryption: an encrypted column needs the entity's `subject`,
/// which names a plain, caller-set field; a `blind_index` names an encrypted field of the same
/// nullability. Marks the subject column and resolves blind index sources.
fn check_encryption(columns: &mut [Column], args: &EntityArgs) -> syn::Result<()> {
    let first_encrypted = columns.iter().find_map(|c| c.encrypted);
    match (&args.subject, first_encrypted) {
        (None, Some(span)) => {
            return Err(syn::Error::new(
                span,
                "an `encrypted` column needs the data subject whose key seals it: add \
                 `subject = \"field\"` to `#[entity(...)]`, naming the field that holds the \
                 subject's id",
            ))
        }
        (Some(lit), None) => {
            return Err(syn::Error::new(
                lit.span(),
                "`subject` names whose data key seals the `encrypted` columns, but no column is \
                 `#[column(encrypted)]`",
            ))
        }
        (Some(lit), Some(_)) => {
            let name = lit.value();
            let Some(subject) = columns.iter_mut().find(|c| c.ident.unraw() == name) else {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`subject` names no mapped field: there is no field `{name}`"),
                ));
            };
            if subject.encrypted.is_some() || subject.auto_increment || subject.generated {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "the subject field `{name}` must be a plain field the caller sets: not \
                         `encrypted`, `auto_increment` or `generated` (its value picks the key \
                         before the row is written)"
                    ),
                ));
            }
            subject.subject = true;
        }
        (None, None) => {}
    }
    for i in 0..columns.len() {
        let Some(lit) = columns[i].blind_index.clone() else {
            continue;
        };
        let name = lit.value();
        let Some(source) = columns.iter().find(|c| c.ident.unraw() == name) else {
            return Err(syn::Error::new(
                lit.span(),
                format!("`blind_index` names no mapped field: there is no field `{name}`"),
            ));
        };
        if source.encrypted.is_none() {
            return Err(syn::Error::new(
                lit.span(),
                format!("`blind_index` indexes an `encrypted` field, and `{name}` is not one"),
            ));
        }
        if source.sql.is_nullable() != columns[i].sql.is_nullable() {
            return Err(syn::Error::new_spanned(
                &columns[i].ty,
                format!(
                    "a blind index is NULL exactly when its field is: make this field `{}` like \
                     `{name}`",
                    if source.sql.is_nullable() {
                        "Option<String>"
                    } else {
                        "String"
                    }
                ),
            ));
        }
        let source_name = source.name.clone();
        let column = &mut columns[i];
        column.blind_index_of = Some(source_name);
        // Lookups go through the index: give it one unless the user chose `unique`.
        if !column.unique {
            column.indexed = true;
        }
    }
    Ok(())
}

/// Validates `#[belongs_to(...)]` on a field of type `ty`.
fn foreign_key(
    entity: &Ident,
    ty: &Type,
    sql: &SqlType,
    b: BelongsToAttr,
) -> syn::Result<ForeignKey> {
    for (action, span) in [b.on_delete, b.on_update] {
        if let (RefAction::SetNull, Some(span)) = (action, span) {
            if !sql.is_nullable() {
                return Err(syn::Error::new(
                    span,
                    "\"set_null\" needs a nullable foreign key: make the field an `Option`",
                ));
            }
        }
    }
    if let Some(seg) = b.parent.segments.iter().find(|s| !s.arguments.is_none()) {
        return Err(syn::Error::new_spanned(
            &seg.arguments,
            "the parent entity takes no generic arguments",
        ));
    }
    let self_ref = b.parent.is_ident("Self") || b.parent.is_ident(entity);
    Ok(ForeignKey {
        parent: self_to_name(&b.parent, entity),
        on_delete: b.on_delete.0,
        on_update: b.on_update.0,
        key_ty: option_inner(ty).unwrap_or(ty).clone(),
        self_ref,
    })
}

/// Rules across columns about roles and relationships: one column per role, one foreign key
/// per parent, one `has_many`/`has_one` per child.
fn check_roles_and_relations(columns: &[Column], args: &EntityArgs) -> syn::Result<()> {
    let mut errors: Option<syn::Error> = None;
    for (i, c) in columns.iter().enumerate() {
        if let Some((role, span)) = c.role {
            if let Some(first) = columns[..i].iter().find(|p| p.is(role)) {
                combine(
                    &mut errors,
                    syn::Error::new(
                        span,
                        format!(
                            "only one field can be `{}`, and `{}` already is",
                            role.key(),
                            first.ident
                        ),
                    ),
                );
            }
        }
        if let (Some(fk), Some(span)) = (&c.references, c.references_span) {
            let parent = path_string(&fk.parent);
            if let Some(first) = columns[..i].iter().find(|p| {
                p.references
                    .as_ref()
                    .is_some_and(|f| path_string(&f.parent) == parent)
            }) {
                combine(
                    &mut errors,
                    syn::Error::new(
                        span,
                        format!(
                            "an entity can belong to `{parent}` through one foreign key only, \
                             and `{}` already references it",
                            first.ident
                        ),
                    ),
                );
            }
        }
    }
    let mut seen: Vec<(String, &str)> = Vec::new();
    for (key, paths) in [("has_many", &args.has_many), ("has_one", &args.has_one)] {
        for p in paths {
            let name = path_string(p);
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                combine(
                    &mut errors,
                    syn::Error::new_spanned(
                        p,
                        format!("`{name}` is already related to this entity by `{first}({name})`"),
                    ),
                );
            } else if columns.iter().any(|c| {
                c.references
                    .as_ref()
                    .is_some_and(|f| path_string(&f.parent) == name)
            }) {
                combine(
                    &mut errors,
                    syn::Error::new_spanned(
                        p,
                        format!(
                            "this entity belongs to `{name}`, so it cannot also {key} it: \
                             the two tables are joined through `#[belongs_to({name})]` already"
                        ),
                    ),
                );
            } else {
                seen.push((name, key));
            }
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The multi-column indexes and unique constraints of `#[entity(unique(..), index(..))]`.
fn indexes(
    table: &Ident,
    columns: &[Column],
    skipped: &[Ident],
    args: &EntityArgs,
) -> syn::Result<Vec<Index>> {
    let mut errors: Option<syn::Error> = None;
    let mut out: Vec<Index> = Vec::new();
    let lists = args
        .unique
        .iter()
        .map(|l| (l, true))
        .chain(args.index.iter().map(|l| (l, false)));
    for (list, unique) in lists {
        match index(table, columns, skipped, list, unique) {
            Ok(i) => {
                if out.iter().any(|o| o.name == i.name) {
                    combine(
                        &mut errors,
                        syn::Error::new_spanned(
                            &list.keyword,
                            format!("duplicate {} `{}`", list.keyword, i.name),
                        ),
                    );
                } else {
                    out.push(i);
                }
            }
            Err(e) => combine(&mut errors, e),
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn index(
    table: &Ident,
    columns: &[Column],
    skipped: &[Ident],
    list: &FieldList,
    unique: bool,
) -> syn::Result<Index> {
    let key = list.keyword.to_string();
    let mut names: Vec<String> = Vec::new();
    for (i, f) in list.fields.iter().enumerate() {
        if list.fields[..i].iter().any(|p| p.unraw() == f.unraw()) {
            return Err(syn::Error::new_spanned(
                f,
                format!("field `{f}` is listed twice in `{key}(...)`"),
            ));
        }
        match columns.iter().find(|c| c.ident.unraw() == f.unraw()) {
            Some(c) => names.push(c.name.clone()),
            None if skipped.iter().any(|s| s.unraw() == f.unraw()) => {
                return Err(syn::Error::new_spanned(
                    f,
                    format!("field `{f}` is `#[skip]`ped, so it is not a column"),
                ))
            }
            None => {
                return Err(syn::Error::new_spanned(
                    f,
                    format!("unknown field `{f}` in `{key}(...)`"),
                ))
            }
        }
    }
    if names.len() < 2 {
        return Err(syn::Error::new_spanned(
            &list.keyword,
            format!(
                "`{key}(...)` takes at least two fields; for one column write \
                 `#[column({key})]` on the field"
            ),
        ));
    }
    let suffix = if unique { "key" } else { "idx" };
    Ok(Index {
        name: format!("{table}_{}_{suffix}", names.join("_")),
        columns: names,
        unique,
    })
}

/// Rules across columns: at least one column, a primary key, one `auto_increment` on a
/// single key, unique names, no column named like the table, at most [`MAX_COLUMNS`].
fn check_columns(ident: &Ident, table: &Ident, columns: &[Column]) -> syn::Result<()> {
    if columns.is_empty() {
        return Err(syn::Error::new_spanned(
            ident,
            format!("`{ident}` has no columns: an entity needs at least one field that is not `#[skip]`ped"),
        ));
    }
    if columns.len() > MAX_COLUMNS {
        return Err(syn::Error::new_spanned(
            ident,
            format!(
                "`{ident}` has {} columns: an entity can have at most {MAX_COLUMNS} columns",
                columns.len()
            ),
        ));
    }
    let keys = columns.iter().filter(|c| c.primary_key).count();
    if keys == 0 {
        return Err(syn::Error::new_spanned(
            ident,
            format!("`{ident}` has no primary key: mark a field with #[column(primary_key)]"),
        ));
    }
    let mut autos = columns.iter().filter(|c| c.auto_increment);
    if let (Some(_), Some(second)) = (autos.next(), autos.next()) {
        return Err(syn::Error::new_spanned(
            &second.ident,
            "only one field can be `auto_increment`",
        ));
    }
    if keys > 1 {
        if let Some(auto) = columns.iter().find(|c| c.auto_increment) {
            return Err(syn::Error::new_spanned(
                &auto.ident,
                "`auto_increment` cannot be used with a composite primary key",
            ));
        }
    }
    for (i, c) in columns.iter().enumerate() {
        if let Some(first) = columns[..i]
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(&c.name))
        {
            return Err(syn::Error::new(
                c.name_span,
                format!(
                    "duplicate column name `{}`: field `{}` already maps to `{}` \
                     (column names are compared case-insensitively, as MariaDB and SQLite do)",
                    c.name, first.ident, first.name
                ),
            ));
        }
        if c.ident == *table {
            return Err(syn::Error::new_spanned(
                &c.ident,
                format!(
                    "field `{}` has the name of its table, which diesel does not allow: rename \
                     the field and keep the column with #[column(name = \"{}\")]",
                    c.ident, c.name
                ),
            ));
        }
        if c.ident == "table" || c.ident == "star" {
            return Err(syn::Error::new_spanned(
                &c.ident,
                format!(
                    "a field cannot be named `{}`, which diesel's table module uses itself: \
                     rename the field and keep the column with #[column(name = \"{}\")]",
                    c.ident, c.name
                ),
            ));
        }
    }
    Ok(())
}

/// The table module name: `table = "..."`, or the struct name in snake_case.
fn table_ident(args: &EntityArgs, ident: &Ident) -> syn::Result<Ident> {
    match &args.table {
        Some(lit) => ident_from(lit, "table"),
        None => {
            let name = snake_case(&ident.unraw().to_string());
            syn::parse_str::<Ident>(&name)
                .map(|i| Ident::new(&i.to_string(), ident.span()))
                .map_err(|_| {
                    syn::Error::new_spanned(
                        ident,
                        format!(
                            "the default table name `{name}` is not a Rust identifier: \
                             set one with #[entity(table = \"...\")]"
                        ),
                    )
                })
        }
    }
}

/// The string of `lit` as an identifier, or an error under it.
fn ident_from(lit: &LitStr, what: &str) -> syn::Result<Ident> {
    let why = if what == "table" {
        "it names the generated diesel table module"
    } else {
        "diesel's `table!` takes it as an identifier"
    };
    let value = lit.value();
    match syn::parse_str::<Ident>(&value) {
        Ok(i) if !value.starts_with("r#") => Ok(Ident::new(&i.to_string(), lit.span())),
        _ => Err(syn::Error::new(
            lit.span(),
            format!(
                "`{value}` is not a valid {what} name: {why}, so it must be a Rust identifier \
                 (letters, digits and `_`, not a keyword)"
            ),
        )),
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
