//! The entity's metadata, `Entity::META`: table, schema, and per column its name, field, kind,
//! key and role flags, constraints, foreign key and encryption. custodian builds the DDL, the
//! schema checks and the audit records from it at run time, so it is a constant
//! (`__CUSTODIAN_META`) built here from the model.
//!
//! The column kind and nullability are read from the field type's `ColumnValue` impl, and an
//! enum column without an explicit check gets the enum's stored names as its check.

use super::relations::{cascade_fn, parent_alias};
use super::Gen;
use crate::attrs::CheckAttr;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;

/// The `EntityMeta` constant.
pub(super) fn meta(g: &Gen<'_>) -> TokenStream {
    let (m, p) = (g.m, &g.p);
    let name = m.ident.unraw().to_string();
    let table = m.table.to_string();
    let schema = match &m.schema {
        Some(s) => {
            let s = s.to_string();
            quote!(::core::option::Option::Some(#s))
        }
        None => quote!(::core::option::Option::None),
    };
    let some = quote!(::core::option::Option::Some);
    let none = quote!(::core::option::Option::None);
    let opt_i64 = |v: Option<i64>| match v {
        Some(v) => quote!(#some(#v)),
        None => none.clone(),
    };
    let columns = m.columns.iter().enumerate().map(|(i, c)| {
        let ty = &c.ty;
        let cname = &c.name;
        let field = c.ident.unraw().to_string();
        let pk = c.primary_key;
        let ai = c.auto_increment;
        let gen = c.generated;
        let unique = c.unique;
        let indexed = c.indexed;
        let encrypted = c.encrypted.is_some();
        let subject = c.subject;
        let blind_index_of = match &c.blind_index_of {
            Some(source) => quote!(#some(#source)),
            None => none.clone(),
        };
        let role = format_ident!("{}", c.role.map_or("Data", |(r, _)| r.variant()));
        let default_sql = match &c.default_sql {
            Some(lit) => quote!(#some(#lit)),
            None => none.clone(),
        };
        let renamed_from = match &c.renamed_from {
            Some(lit) => quote!(#some(#lit)),
            None => none.clone(),
        };
        let check = match &c.check {
            Some(CheckAttr::Sql(lit)) => quote!(#some(#p::Check::Sql(#lit))),
            Some(CheckAttr::Range { min, max }) => {
                let (min, max) = (opt_i64(*min), opt_i64(*max));
                quote!(#some(#p::Check::Range { min: #min, max: #max }))
            }
            Some(CheckAttr::OneOf(values)) => quote!(#some(#p::Check::OneOf(&[#(#values),*]))),
            // Enums (and Option of them) allow only their stored names.
            None => quote! {
                match <#ty as #p::ColumnValue>::ALLOWED {
                    #some(allowed) => #some(#p::Check::OneOf(allowed)),
                    #none => #none,
                }
            },
        };
        let references = match &c.references {
            Some(fk) => {
                let parent = parent_alias(i);
                let on_delete = format_ident!("{}", fk.on_delete.variant());
                let on_update = format_ident!("{}", fk.on_update.variant());
                let cascade_fn = cascade_fn(i);
                quote! {
                    #some(#p::ForeignKey {
                        parent: #p::meta_of::<#parent>,
                        on_delete: #p::RefAction::#on_delete,
                        on_update: #p::RefAction::#on_update,
                        cascade: #some(#cascade_fn),
                    })
                }
            }
            None => none.clone(),
        };
        quote! {
            #p::ColumnMeta {
                name: #cname,
                field: #field,
                kind: <#ty as #p::ColumnValue>::KIND,
                nullable: <#ty as #p::ColumnValue>::NULLABLE,
                primary_key: #pk,
                auto_increment: #ai,
                generated: #gen,
                role: #p::ColumnRole::#role,
                unique: #unique,
                indexed: #indexed,
                default_sql: #default_sql,
                check: #check,
                references: #references,
                encrypted: #encrypted,
                subject: #subject,
                blind_index_of: #blind_index_of,
                renamed_from: #renamed_from,
                ..#p::ColumnMeta::PLAIN
            }
        }
    });
    let indexes = m.indexes.iter().map(|i| {
        let name = &i.name;
        let cols = &i.columns;
        let unique = i.unique;
        quote! {
            #p::IndexMeta {
                name: #name,
                columns: &[#(#cols),*],
                unique: #unique,
            }
        }
    });
    quote! {
        #p::EntityMeta {
            name: #name,
            table: #table,
            schema: #schema,
            columns: &[#(#columns,)*],
            indexes: &[#(#indexes,)*],
        }
    }
}
