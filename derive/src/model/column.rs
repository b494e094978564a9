//! Validation of one field that is a column: its attributes against its type (keys, roles,
//! checks, defaults, timestamps), `encrypted` and `blind_index`, and its `#[belongs_to]`.

use super::{self_to_name, Column, ForeignKey, Timestamp};
use crate::attrs::{BelongsToAttr, CheckAttr, FieldAttrs, RefAction, Role};
use crate::types::{datetime_of, option_inner, sql_type_of, SqlType};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Type};

/// Validates the attributes of one field that is a column.
pub(super) fn column(
    entity: &Ident,
    ident: Ident,
    ty: Type,
    attrs: FieldAttrs,
) -> syn::Result<Column> {
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
