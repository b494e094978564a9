//! Loading rows: diesel's `Queryable` and `Selectable` for the struct, and the entity's queries.
//!
//! A row is loaded as the tuple of the columns' stored types and converted field by field
//! (`__custodian_from_<i>`, see [`super::columns`]); skipped fields get their default. The
//! queries (`Entity::query`, `query_with_deleted`, `query_deleted`) select the struct; for a
//! soft-delete entity `query` sees live rows only.

use super::columns::from_fn;
use super::Gen;
use crate::attrs::Role;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

/// The `Queryable` and `Selectable` impls.
pub(super) fn queryable(g: &Gen<'_>) -> TokenStream {
    let (m, p, d, tp) = (g.m, &g.p, &g.d, &g.tp);
    let ident = &m.ident;
    let all_idents: Vec<&Ident> = m.columns.iter().map(|c| &c.ident).collect();
    let sql_types = m.columns.iter().map(|c| c.sql.path_tokens());
    let row_types = m.columns.iter().map(|c| g.storage(c));
    let vars: Vec<Ident> = (0..m.columns.len())
        .map(|i| format_ident!("__custodian_{}", i))
        .collect();
    let from_storage = m.columns.iter().zip(&vars).enumerate().map(|(i, (c, v))| {
        let f = &c.ident;
        let from = from_fn(i);
        quote!(#f: #from(#v)?)
    });
    let skipped = &m.skipped;
    quote! {
        impl #d::deserialize::Queryable<(#(#sql_types,)*), #p::MultiBackend> for #ident {
            type Row = (#(#row_types,)*);
            fn build(row: Self::Row) -> #d::deserialize::Result<Self> {
                let (#(#vars,)*) = row;
                ::core::result::Result::Ok(Self {
                    #(#from_storage,)*
                    #(#skipped: ::core::default::Default::default(),)*
                })
            }
        }
        impl #d::Selectable<#p::MultiBackend> for #ident {
            type SelectExpression = (#(#tp::#all_idents,)*);
            fn construct_selection() -> Self::SelectExpression {
                (#(#tp::#all_idents,)*)
            }
        }
    }
}

/// The query types and functions of the `Entity` impl (and its `META`): live rows, all rows,
/// deleted rows.
pub(super) fn queries(g: &Gen<'_>) -> TokenStream {
    let (p, d, tp, as_select) = (&g.p, &g.d, &g.tp, &g.as_select);
    let ident = &g.m.ident;
    let select_ty = quote!(#d::dsl::AsSelect<#ident, #p::MultiBackend>);
    match g.m.role(Role::DeletedAt) {
        Some(c) => {
            let f = &c.ident;
            quote! {
                type Query = #d::dsl::Select<#d::dsl::Filter<#tp::table, #d::dsl::IsNull<#tp::#f>>, #select_ty>;
                type QueryWithDeleted = #d::dsl::Select<#tp::table, #select_ty>;
                type QueryDeleted = #d::dsl::Select<#d::dsl::Filter<#tp::table, #d::dsl::IsNotNull<#tp::#f>>, #select_ty>;

                const META: #p::EntityMeta = __CUSTODIAN_META;

                fn query() -> Self::Query {
                    #tp::table.filter(#tp::#f.is_null()).select(#as_select)
                }

                fn query_with_deleted() -> Self::QueryWithDeleted {
                    #tp::table.select(#as_select)
                }

                fn query_deleted() -> Self::QueryDeleted {
                    #tp::table.filter(#tp::#f.is_not_null()).select(#as_select)
                }
            }
        }
        None => quote! {
            type Query = #d::dsl::Select<#tp::table, #select_ty>;
            type QueryWithDeleted = Self::Query;
            type QueryDeleted = #d::dsl::Filter<Self::Query, #d::dsl::AsExprOf<bool, #d::sql_types::Bool>>;

            const META: #p::EntityMeta = __CUSTODIAN_META;

            fn query() -> Self::Query {
                #tp::table.select(#as_select)
            }

            fn query_with_deleted() -> Self::QueryWithDeleted {
                <Self as #p::Entity>::query()
            }

            fn query_deleted() -> Self::QueryDeleted {
                use #d::IntoSql as _;
                <Self as #p::Entity>::query().filter(false.into_sql::<#d::sql_types::Bool>())
            }
        },
    }
}
