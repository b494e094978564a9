//! The validated description of an `#[entity]` struct: table, schema and columns.
//!
//! [`EntityModel::from_struct`] applies every rule that involves more than one attribute or
//! field (primary key present and not nullable, `auto_increment` only on a single integer key,
//! unique column names, ...) and strips the column attributes from the struct it is given.

use crate::attrs::{combine, EntityArgs, FieldAttrs};
use crate::types::{sql_type_of, SqlType};
use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Fields, Ident, ItemStruct, LitStr, Type, Visibility};

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
}

impl Column {
    /// Whether the column is bound by `INSERT`.
    pub(crate) fn inserted(&self) -> bool {
        !self.auto_increment && !self.generated
    }

    /// Whether the column is set by `UPDATE`.
    pub(crate) fn updated(&self) -> bool {
        !self.primary_key && !self.generated
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
                if let Some(pk) = attrs.primary_key {
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
            match column(ident, field.ty.clone(), attrs) {
                Ok(c) => columns.push(c),
                Err(e) => combine(&mut errors, e),
            }
        }
        if let Some(e) = errors {
            return Err(e);
        }
        let table = table.expect("no table error was reported");
        check_columns(&item.ident, &table, &columns)?;
        Ok(EntityModel {
            ident: item.ident.clone(),
            vis: item.vis.clone(),
            table,
            schema,
            columns,
            skipped,
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
}

/// Validates the attributes of one field that is a column.
fn column(ident: Ident, ty: Type, attrs: FieldAttrs) -> syn::Result<Column> {
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
