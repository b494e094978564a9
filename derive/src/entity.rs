//! Code generation for `#[entity]`.
//!
//! For `struct Control` mapped to table `controls` the expansion is:
//!
//! - the struct itself, with `#[column]` and `#[skip]` removed;
//! - `mod __custodian_control` holding the `diesel::table!` for `controls`, and
//!   `use __custodian_control::controls;` with the struct's visibility;
//! - `const _: () = { ... }` holding a compile-time `assert_column` check per field, one pair of
//!   storage conversion functions per column (spanned on the field type, so a wrong type is
//!   reported there once), and the `Queryable`, `Selectable` and `Entity` impls. Inserts and
//!   updates bind tuples of `column.eq(storage)`; the SQL-side types are concrete, chosen from
//!   the column's SQL type.
//!
//! Generated code names custodian's runtime only as `::custodian::__private`, and diesel only
//! through it. diesel's `table!` itself expands to `use ::diesel;`, so the user crate must still
//! list `diesel` (any 2.3 version, `default-features = false`) among its dependencies.

use crate::attrs::EntityArgs;
use crate::model::{snake_case, Column, EntityModel};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, Item};

/// Expands `#[entity(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = EntityArgs::parse(attr)?;
    let mut item = match syn::parse2::<Item>(item)? {
        Item::Struct(s) => s,
        Item::Enum(e) => {
            return Err(syn::Error::new_spanned(
                e.enum_token,
                "`#[entity]` can only be applied to a struct with named fields; \
                 to store an enum in a column, use #[derive(DbEnum)]",
            ))
        }
        Item::Union(u) => {
            return Err(syn::Error::new_spanned(
                u.union_token,
                "`#[entity]` can only be applied to a struct with named fields",
            ))
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "`#[entity]` can only be applied to a struct with named fields",
            ))
        }
    };
    let model = EntityModel::from_struct(args, &mut item)?;
    let generated = generate(&model);
    Ok(quote! {
        #item
        #generated
    })
}

/// Lints that generated code must not trigger in user crates.
fn allow_lints() -> TokenStream {
    quote! {
        #[allow(
            missing_docs,
            missing_debug_implementations,
            non_snake_case,
            non_camel_case_types,
            unused_imports,
            unused_qualifications,
            unreachable_pub,
            dead_code,
            clippy::all,
            clippy::pedantic,
            clippy::nursery
        )]
    }
}

fn generate(m: &EntityModel) -> TokenStream {
    let p = quote!(::custodian::__private);
    let d = quote!(::custodian::__private::diesel);
    let ident = &m.ident;
    let vis = &m.vis;
    let table = &m.table;
    let hidden = format_ident!(
        "__custodian_{}",
        snake_case(&ident.unraw().to_string()),
        span = Span::call_site()
    );
    let tp = quote!(#hidden::#table);
    let allow = allow_lints();

    let table_mod = table_macro(m, &hidden);
    let asserts = m.columns.iter().map(|c| {
        let ty = &c.ty;
        let sql = c.sql.path_tokens();
        quote_spanned! {ty.span()=>
            const _: () = #p::assert_column::<#ty, #sql>();
        }
    });

    let all_idents: Vec<&Ident> = m.columns.iter().map(|c| &c.ident).collect();
    let storage = |c: &Column| c.sql.storage_tokens(&c.ty);
    // Conversions go through one helper per column and direction, spanned on the field type,
    // so a wrong field type is reported there rather than in every use.
    let to_fn = |i: usize| format_ident!("__custodian_to_{}", i);
    let from_fn = |i: usize| format_ident!("__custodian_from_{}", i);
    let index = |c: &Column| {
        m.columns
            .iter()
            .position(|x| std::ptr::eq(x, c))
            .unwrap_or_default()
    };
    let to_storage = |c: &Column, value: TokenStream| {
        let f = to_fn(index(c));
        quote!(#f(#value))
    };
    let helpers = m.columns.iter().enumerate().map(|(i, c)| {
        let ty = &c.ty;
        let st = storage(c);
        let to = to_fn(i);
        let from = from_fn(i);
        quote_spanned! {ty.span()=>
            #[inline]
            fn #to(value: &#ty) -> #st {
                <#ty as #p::ColumnValue>::to_storage(value)
            }
            #[inline]
            fn #from(stored: #st) -> ::core::result::Result<#ty, #p::DecodeError> {
                <#ty as #p::ColumnValue>::from_storage(stored)
            }
        }
    });

    // Queryable + Selectable.
    let sql_types = m.columns.iter().map(|c| c.sql.path_tokens());
    let row_types = m.columns.iter().map(storage);
    let vars: Vec<Ident> = (0..m.columns.len())
        .map(|i| format_ident!("__custodian_{}", i))
        .collect();
    let from_storage = m.columns.iter().zip(&vars).enumerate().map(|(i, (c, v))| {
        let f = &c.ident;
        let from = from_fn(i);
        quote!(#f: #from(#v)?)
    });
    let skipped = &m.skipped;
    let queryable = quote! {
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
    };

    // Insert.
    let inserted: Vec<&Column> = m.columns.iter().filter(|c| c.inserted()).collect();
    let insert_body = if inserted.is_empty() {
        // Every column is filled by the database: one `DEFAULT VALUES` insert per row.
        quote! {
                let mut count = 0usize;
                for _ in rows {
                    count += #p::dispatch!(conn, c => #d::insert_into(#tp::table).default_values().execute(c))?;
                }
            ::core::result::Result::Ok(count)
        }
    } else {
        let values = inserted.iter().map(|c| {
            let f = &c.ident;
            let v = to_storage(c, quote!(&row.#f));
            quote!(#tp::#f.eq(#v))
        });
        quote! {
            let values: ::std::vec::Vec<_> = rows
                .iter()
                .map(|row| (#(#values,)*))
                .collect();
            #p::dispatch!(conn, c => #d::insert_into(#tp::table).values(values).execute(c))
        }
    };

    // Keys.
    let keys: Vec<&Column> = m.key_columns().collect();
    let key_idents: Vec<&Ident> = keys.iter().map(|c| &c.ident).collect();
    let (key_ty, key_clone, key_storage, entity_key_storage) = if let [k] = keys.as_slice() {
        let ty = &k.ty;
        let f = &k.ident;
        (
            quote!(#ty),
            quote!(::core::clone::Clone::clone(&self.#f)),
            to_storage(k, quote!(key)),
            to_storage(k, quote!(&entity.#f)),
        )
    } else {
        let tys = keys.iter().map(|c| &c.ty);
        let idx = (0..keys.len()).map(syn::Index::from);
        let stored = keys
            .iter()
            .zip(idx)
            .map(|(c, i)| to_storage(c, quote!(&key.#i)));
        let from_entity = keys.iter().map(|c| {
            let f = &c.ident;
            to_storage(c, quote!(&entity.#f))
        });
        (
            quote!((#(#tys,)*)),
            quote!((#(::core::clone::Clone::clone(&self.#key_idents),)*)),
            quote!((#(#stored,)*)),
            quote!((#(#from_entity,)*)),
        )
    };

    // Update.
    let updated: Vec<&Column> = m.columns.iter().filter(|c| c.updated()).collect();
    let update_body = if updated.is_empty() {
        // Nothing to set: report whether the row exists, as an update would.
        quote! {
            let found: i64 = #tp::table.find(key).count().get_result(conn)?;
            ::core::result::Result::Ok(::core::convert::TryFrom::try_from(found).unwrap_or(0usize))
        }
    } else {
        let values = updated.iter().map(|c| {
            let f = &c.ident;
            let v = to_storage(c, quote!(&entity.#f));
            quote!(#tp::#f.eq(#v))
        });
        quote! {
            #d::update(#tp::table.find(key)).set((#(#values,)*)).execute(conn)
        }
    };

    let set_key = match m.auto_increment() {
        Some(c) => {
            let f = &c.ident;
            let ty = &c.ty;
            let ty_name = quote!(#ty).to_string().replace(' ', "");
            quote! {
                self.#f = <#ty as ::core::convert::TryFrom<i64>>::try_from(id).map_err(|e| {
                    ::std::format!("generated key {} does not fit in `{}`: {}", id, #ty_name, e)
                })?;
                ::core::result::Result::Ok(())
            }
        }
        None => quote! {
            let _ = id;
            ::core::result::Result::Ok(())
        },
    };

    let meta = meta(m);

    quote! {
        #[doc(hidden)]
        #allow
        #table_mod

        #allow
        #vis use #hidden::#table;

        #allow
        const _: () = {
            use #d::{
                ExpressionMethods as _, OptionalExtension as _, QueryDsl as _, RunQueryDsl as _,
                SelectableHelper as _,
            };
            use #d;

            #(#asserts)*
            #(#helpers)*

            #queryable

            impl #p::Entity for #ident {
                type Key = #key_ty;
                type Table = #tp::table;
                type Query = #d::dsl::Select<#tp::table, #d::dsl::AsSelect<#ident, #p::MultiBackend>>;
                type QueryWithDeleted = Self::Query;
                type QueryDeleted = #d::dsl::Filter<Self::Query, #d::dsl::AsExprOf<bool, #d::sql_types::Bool>>;

                const META: #p::EntityMeta = #meta;

                fn query() -> Self::Query {
                    #tp::table.select(<Self as #d::SelectableHelper<#p::MultiBackend>>::as_select())
                }

                fn query_with_deleted() -> Self::QueryWithDeleted {
                    <Self as #p::Entity>::query()
                }

                fn query_deleted() -> Self::QueryDeleted {
                    use #d::IntoSql as _;
                    <Self as #p::Entity>::query().filter(false.into_sql::<#d::sql_types::Bool>())
                }

                fn key(&self) -> Self::Key {
                    #key_clone
                }

                fn raw_set_generated_key(&mut self, id: i64) -> ::core::result::Result<(), #p::DecodeError> {
                    #set_key
                }

                fn raw_insert(conn: &mut #p::AnyConnection, rows: &[Self]) -> #d::QueryResult<usize> {
                    if rows.is_empty() {
                        return ::core::result::Result::Ok(0);
                    }
                    #insert_body
                }

                fn raw_find_many(conn: &mut #p::AnyConnection, keys: &[Self::Key]) -> #d::QueryResult<::std::vec::Vec<Self>> {
                    let mut out = ::std::vec::Vec::with_capacity(keys.len());
                    for key in keys {
                        if let ::core::option::Option::Some(found) = <Self as #p::Entity>::raw_find(conn, key, false)? {
                            out.push(found);
                        }
                    }
                    ::core::result::Result::Ok(out)
                }

                fn raw_find(conn: &mut #p::AnyConnection, key: &Self::Key, with_deleted: bool) -> #d::QueryResult<::core::option::Option<Self>> {
                    let _ = with_deleted;
                    let key = #key_storage;
                    #tp::table
                        .find(key)
                        .select(<Self as #d::SelectableHelper<#p::MultiBackend>>::as_select())
                        .first(conn)
                        .optional()
                }

                fn raw_update(conn: &mut #p::AnyConnection, entity: &Self, now: #p::chrono::NaiveDateTime) -> #d::QueryResult<usize> {
                    let _ = now;
                    let key = #entity_key_storage;
                    #update_body
                }

                fn raw_delete(conn: &mut #p::AnyConnection, key: &Self::Key) -> #d::QueryResult<usize> {
                    let key = #key_storage;
                    #d::delete(#tp::table.find(key)).execute(conn)
                }
            }
        };
    }
}

/// The hidden module holding the `diesel::table!` invocation.
fn table_macro(m: &EntityModel, hidden: &Ident) -> TokenStream {
    let table = &m.table;
    let (decl, qualified) = match &m.schema {
        Some(s) => (quote!(#s.#table), format!("{s}.{table}")),
        None => (quote!(#table), table.to_string()),
    };
    let table_doc = format!(
        "The `{qualified}` table of entity `{}`, generated by `#[entity]`.",
        m.ident.unraw()
    );
    let keys = m.key_columns().map(|c| &c.ident);
    let columns = m.columns.iter().map(|c| {
        let f = &c.ident;
        let ty = c.sql.table_tokens();
        let doc = format!(
            "Column `{}` (field `{}::{}`).",
            c.name,
            m.ident.unraw(),
            f.unraw()
        );
        let rename = if c.renamed() {
            let name = &c.name;
            quote!(#[sql_name = #name])
        } else {
            quote!()
        };
        quote! {
            #[doc = #doc]
            #rename
            #f -> #ty,
        }
    });
    quote! {
        mod #hidden {
            use ::custodian::__private::diesel;
            diesel::table! {
                #[doc = #table_doc]
                #decl (#(#keys),*) {
                    #(#columns)*
                }
            }
        }
    }
}

/// The `EntityMeta` constant.
fn meta(m: &EntityModel) -> TokenStream {
    let p = quote!(::custodian::__private);
    let name = m.ident.unraw().to_string();
    let table = m.table.to_string();
    let schema = match &m.schema {
        Some(s) => {
            let s = s.to_string();
            quote!(::core::option::Option::Some(#s))
        }
        None => quote!(::core::option::Option::None),
    };
    let columns = m.columns.iter().map(|c| {
        let ty = &c.ty;
        let cname = &c.name;
        let field = c.ident.unraw().to_string();
        let pk = c.primary_key;
        let ai = c.auto_increment;
        let gen = c.generated;
        quote! {
            #p::ColumnMeta {
                name: #cname,
                field: #field,
                kind: <#ty as #p::ColumnValue>::KIND,
                nullable: <#ty as #p::ColumnValue>::NULLABLE,
                primary_key: #pk,
                auto_increment: #ai,
                generated: #gen,
                ..#p::ColumnMeta::PLAIN
            }
        }
    });
    quote! {
        #p::EntityMeta {
            name: #name,
            table: #table,
            schema: #schema,
            columns: &[#(#columns,)*],
            indexes: &[],
        }
    }
}
