//! Relations: `#[belongs_to(Parent)]` on a field, `has_many(Child)` / `has_one(Child)` on the
//! entity.
//!
//! Each related entity gets a type alias spanned on its path as written, so an unknown entity
//! is reported once, there. A foreign key gives `custodian::BelongsTo<Parent>` (the key of the
//! parent, and loading the children of many parents), the `CascadeFn` the metadata names (the
//! rows a database cascade touches, for their audit records), and diesel's `JoinTo` from this
//! table to the parent's; a child gives `JoinTo` from this table to the child's. Mismatched key
//! types are stated as `where` bounds under the field or child, so they read as one error there
//! rather than as diesel errors.

use super::Gen;
use crate::types::SqlType;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::Ident;

/// Name of the alias of the parent entity of column `i` (its `#[belongs_to(...)]`).
pub(super) fn parent_alias(i: usize) -> Ident {
    format_ident!("__CustodianParent{}", i)
}

/// Name of the `CascadeFn` of the foreign key of column `i`, which the metadata names.
pub(super) fn cascade_fn(i: usize) -> Ident {
    format_ident!("__custodian_cascade_{}", i)
}

/// Name of the alias of the `j`-th `has_many`/`has_one` child entity.
fn child_alias(j: usize) -> Ident {
    format_ident!("__CustodianChild{}", j)
}

/// One type alias per related entity, spanned on the path as written, so an unknown entity is
/// reported once, there.
pub(super) fn related_aliases(g: &Gen<'_>) -> TokenStream {
    let m = g.m;
    let parents = m.columns.iter().enumerate().filter_map(|(i, c)| {
        let fk = c.references.as_ref()?;
        let alias = parent_alias(i);
        let parent = &fk.parent;
        Some(quote_spanned!(parent.span()=> type #alias = #parent;))
    });
    let children = m.children.iter().enumerate().map(|(j, child)| {
        let alias = child_alias(j);
        quote_spanned!(child.span()=> type #alias = #child;)
    });
    quote! {
        #(#parents)*
        #(#children)*
    }
}

/// The `BelongsTo` and `JoinTo` impls of `#[belongs_to(...)]`, and the `JoinTo` impls of
/// `has_many(...)` / `has_one(...)`.
pub(super) fn relations(g: &Gen<'_>) -> TokenStream {
    let (m, p, d, tp, as_select) = (g.m, &g.p, &g.d, &g.tp, &g.as_select);
    let ident = &m.ident;
    let live = g.live();
    let mut out = TokenStream::new();
    for (i, c) in m.columns.iter().enumerate() {
        let Some(fk) = &c.references else { continue };
        let parent = parent_alias(i);
        let f = &c.ident;
        let field = f.unraw().to_string();
        let key_ty = &fk.key_ty;
        let cascade_fn = cascade_fn(i);
        // The field must hold the parent's key: checked once, under the field type.
        let key_bound = quote_spanned! {key_ty.span()=>
            #parent: #p::Entity<Key = #key_ty>
        };
        let (parent_key, stored_key) = if c.sql.is_nullable() {
            (
                quote!(::core::clone::Clone::clone(&self.#f)),
                quote!(::core::option::Option::Some(<#key_ty as #p::ColumnValue>::to_storage(key))),
            )
        } else {
            (
                quote!(::core::option::Option::Some(::core::clone::Clone::clone(&self.#f))),
                g.to_storage(c, quote!(key)),
            )
        };
        out.extend(quote! {
            impl #p::BelongsTo<#parent> for #ident
            where
                #key_bound,
            {
                const FOREIGN_KEY: &'static str = #field;
                type ForeignKeyColumn = #tp::#f;

                fn parent_key(&self) -> ::core::option::Option<<#parent as #p::Entity>::Key> {
                    #parent_key
                }

                fn raw_children_of(
                    conn: &mut #p::AnyConnection,
                    keys: &[<#parent as #p::Entity>::Key],
                ) -> #d::QueryResult<::std::vec::Vec<Self>> {
                    if keys.is_empty() {
                        return ::core::result::Result::Ok(::std::vec::Vec::new());
                    }
                    let keys: ::std::vec::Vec<_> = keys.iter().map(|key| #stored_key).collect();
                    #tp::table
                        .filter(#tp::#f.eq_any(keys))
                        #live
                        .select(#as_select)
                        .load(conn)
                }
            }

            // The foreign key's `CascadeFn` (named by the metadata): every row referencing the
            // parent keys, soft-deleted ones included, handed to the cascade. Free of bounds on
            // the parent, so a mismatched key type is reported once, under the field.
            fn #cascade_fn(
                cx: &mut dyn #p::Cascading,
                keys: &dyn ::core::any::Any,
            ) -> ::custodian::Result<()> {
                let keys = #p::cascade_keys::<#key_ty>(keys, #field)?;
                let mut rows: ::std::vec::Vec<#ident> = ::std::vec::Vec::new();
                for chunk in keys.chunks(cx.max_bind_params().max(1)) {
                    let mut stored: ::core::option::Option<::std::vec::Vec<_>> =
                        ::core::option::Option::Some(chunk.iter().map(|key| #stored_key).collect());
                    cx.run(&mut |conn| {
                        let ::core::option::Option::Some(stored) = stored.take() else {
                            return ::core::result::Result::Ok(());
                        };
                        rows.extend(
                            #tp::table
                                .filter(#tp::#f.eq_any(stored))
                                .select(<#ident as #d::SelectableHelper<#p::MultiBackend>>::as_select())
                                .load::<#ident>(conn)?,
                        );
                        ::core::result::Result::Ok(())
                    })?;
                }
                #p::cascade_rows::<#ident>(cx, rows, #field)
            }
        });
        if !fk.self_ref {
            // The parent's key column must have the foreign key's SQL type; stated as a bound
            // under the field type, so a mismatch reads as one, not as a diesel error.
            let key_sql = respan(
                match &c.sql {
                    SqlType::Nullable(inner) => inner.path_tokens(),
                    other => other.path_tokens(),
                },
                key_ty.span(),
            );
            let sql_bound = quote_spanned! {key_ty.span()=>
                <<#parent as #p::Entity>::Table as #d::Table>::PrimaryKey: #d::Expression<SqlType = #key_sql>
            };
            out.extend(quote! {
                impl #d::JoinTo<<#parent as #p::Entity>::Table> for #tp::table
                where
                    #key_bound,
                    #sql_bound,
                {
                    type FromClause = <#parent as #p::Entity>::Table;
                    type OnClause = #d::dsl::Eq<
                        #d::dsl::Nullable<#tp::#f>,
                        #d::dsl::Nullable<<<#parent as #p::Entity>::Table as #d::Table>::PrimaryKey>,
                    >;

                    fn join_target(rhs: <#parent as #p::Entity>::Table) -> (Self::FromClause, Self::OnClause) {
                        let on = #tp::#f.nullable().eq(#d::Table::primary_key(&rhs).nullable());
                        (rhs, on)
                    }
                }
            });
        }
    }
    for (j, child) in m.children.iter().enumerate() {
        if child.is_ident(ident) {
            continue;
        }
        let alias = child_alias(j);
        let fk = quote!(<#alias as #p::BelongsTo<#ident>>::ForeignKeyColumn);
        // Stated as bounds under the child's name, so a child that does not belong to this
        // entity is reported once, there.
        let bound = respan(
            quote! {
                #alias: #p::BelongsTo<#ident>,
                #d::dsl::Nullable<#fk>: #d::Expression<
                    SqlType = #d::sql_types::Nullable<<<#tp::table as #d::Table>::PrimaryKey as #d::Expression>::SqlType>,
                >
            },
            child.span(),
        );
        out.extend(quote! {
            impl #d::JoinTo<<#alias as #p::Entity>::Table> for #tp::table
            where
                #bound,
            {
                type FromClause = <#alias as #p::Entity>::Table;
                type OnClause = #d::dsl::Eq<
                    #d::dsl::Nullable<#fk>,
                    #d::dsl::Nullable<<#tp::table as #d::Table>::PrimaryKey>,
                >;

                fn join_target(rhs: <#alias as #p::Entity>::Table) -> (Self::FromClause, Self::OnClause) {
                    let on = <#fk as ::core::default::Default>::default()
                        .nullable()
                        .eq(#d::Table::primary_key(&#tp::table).nullable());
                    (rhs, on)
                }
            }
        });
    }
    out
}

/// `tokens` with every span replaced by `span`, so errors about them point at `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let proc_macro2::TokenTree::Group(g) = &t {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                t = proc_macro2::TokenTree::Group(group);
            } else {
                t.set_span(span);
            }
            t
        })
        .collect()
}
