//! The rules across an entity's columns: at least one column and a primary key, unique column
//! names, one column per role, one foreign key per parent, children that exist, encryption (a
//! subject, blind indexes of encrypted fields), the multi-column indexes of `#[entity(...)]`;
//! and the table and schema names.

use super::{snake_case, Column, Index, MAX_COLUMNS};
use crate::attrs::{combine, EntityArgs, FieldList};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{Ident, LitStr, Path};

/// Rules across fields about encryption: an encrypted column needs the entity's `subject`,
/// which names a plain, caller-set field; a `blind_index` names an encrypted field of the same
/// nullability. Marks the subject column and resolves blind index sources.
pub(super) fn check_encryption(columns: &mut [Column], args: &EntityArgs) -> syn::Result<()> {
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

/// Rules across columns about roles and relationships: one column per role, one foreign key
/// per parent, one `has_many`/`has_one` per child.
pub(super) fn check_roles_and_relations(columns: &[Column], args: &EntityArgs) -> syn::Result<()> {
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
pub(super) fn indexes(
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
pub(super) fn check_columns(ident: &Ident, table: &Ident, columns: &[Column]) -> syn::Result<()> {
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
pub(super) fn table_ident(args: &EntityArgs, ident: &Ident) -> syn::Result<Ident> {
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
pub(super) fn ident_from(lit: &LitStr, what: &str) -> syn::Result<Ident> {
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

/// The path as written, for comparisons and messages.
fn path_string(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}
