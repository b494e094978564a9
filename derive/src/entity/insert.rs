//! Inserts: one row, many rows, many rows returning their generated keys, and setting a
//! generated key on the struct.
//!
//! Every inserted column (not `auto_increment`, not `generated`) is bound as
//! `column.eq(value)`, borrowed from the row where possible. An entity whose columns are all
//! filled by the database inserts `DEFAULT VALUES`, one statement per row.

use super::Gen;
use crate::model::Column;
use proc_macro2::TokenStream;
use quote::quote;

/// `raw_set_generated_key`, `raw_insert`, `raw_insert_one` and, for an auto-increment key,
/// `raw_insert_returning_keys`.
pub(super) fn insert_fns(g: &Gen<'_>) -> TokenStream {
    let (p, d) = (&g.p, &g.d);
    let inserted: Vec<&Column> = g.m.columns.iter().filter(|c| c.inserted()).collect();
    let row_values = row_values(g, &inserted);
    let set_key = set_generated_key(g);
    let insert_body = insert_body(g, &inserted, &row_values);
    let insert_one_body = insert_one_body(g, &inserted, &row_values);
    let insert_keys_fn = insert_keys_fn(g, &inserted, &row_values);
    quote! {
        fn raw_set_generated_key(&mut self, id: i64) -> ::core::result::Result<(), #p::DecodeError> {
            #set_key
        }

        fn raw_insert(_internal: #p::Internal, conn: &mut #p::AnyConnection, rows: &[Self]) -> #d::QueryResult<usize> {
            if rows.is_empty() {
                return ::core::result::Result::Ok(0);
            }
            #insert_body
        }

        fn raw_insert_one(_internal: #p::Internal, conn: &mut #p::AnyConnection, row: &Self, returns: #p::run::Returns) -> #d::QueryResult<::core::option::Option<i64>> {
            #insert_one_body
        }

        #insert_keys_fn
    }
}

/// One row's `(column.eq(value), ...)`, values borrowed from `row` where possible.
fn row_values(g: &Gen<'_>, inserted: &[&Column]) -> TokenStream {
    let tp = &g.tp;
    let values = inserted.iter().map(|c| {
        let f = &c.ident;
        let v = g.bind(c, quote!(&row.#f));
        quote!(#tp::#f.eq(#v))
    });
    quote!((#(#values,)*))
}

/// The body of `raw_set_generated_key`: the key the database generated, into the
/// auto-increment field (if it fits its type).
fn set_generated_key(g: &Gen<'_>) -> TokenStream {
    match g.m.auto_increment() {
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
    }
}

/// The body of `raw_insert` after the empty check: one multi-row statement.
fn insert_body(g: &Gen<'_>, inserted: &[&Column], row_values: &TokenStream) -> TokenStream {
    let (p, d, tp) = (&g.p, &g.d, &g.tp);
    if inserted.is_empty() {
        // Every column is filled by the database: one `DEFAULT VALUES` insert per row.
        quote! {
                let mut count = 0usize;
                for _ in rows {
                    count += #p::run::execute(conn, #d::insert_into(#tp::table).default_values())?;
                }
            ::core::result::Result::Ok(count)
        }
    } else {
        quote! {
            let values: ::std::vec::Vec<_> = rows
                .iter()
                .map(|row| #row_values)
                .collect();
            #p::run::execute(conn, #d::insert_into(#tp::table).values(values))
        }
    }
}

/// The body of `raw_insert_one`.
///
/// One row: a tuple (never a `Vec`, which diesel does not cache as a prepared statement).
/// An auto-increment key comes back from the same statement where the backend has
/// `RETURNING` (PostgreSQL, SQLite >= 3.35, MariaDB >= 10.5 as `returns` says); otherwise
/// `None` and the write path asks `LAST_INSERT_ID()`. The statement is built by a closure:
/// the runner may need it twice (see `run::insert_returning`).
fn insert_one_body(g: &Gen<'_>, inserted: &[&Column], row_values: &TokenStream) -> TokenStream {
    let (p, d, tp) = (&g.p, &g.d, &g.tp);
    let insert_one_stmt = if inserted.is_empty() {
        quote!(#d::insert_into(#tp::table).default_values())
    } else {
        quote!(#d::insert_into(#tp::table).values(#row_values))
    };
    match g.m.auto_increment() {
        Some(k) => {
            let f = &k.ident;
            let st = g.storage(k);
            quote! {
                let id: ::core::option::Option<#st> = #p::run::insert_returning(
                    conn,
                    returns,
                    || #insert_one_stmt,
                    #tp::#f,
                )?;
                ::core::result::Result::Ok(id.map(::core::convert::From::from))
            }
        }
        None => quote! {
            let _ = returns;
            #p::run::execute(conn, #insert_one_stmt)?;
            ::core::result::Result::Ok(::core::option::Option::None)
        },
    }
}

/// `raw_insert_returning_keys`, for an auto-increment key and at least one inserted column.
///
/// Bulk insert returning the auto-increment keys (PostgreSQL, SQLite), sorted: each
/// database hands out increasing keys in the order of the VALUES rows of one statement.
fn insert_keys_fn(g: &Gen<'_>, inserted: &[&Column], row_values: &TokenStream) -> TokenStream {
    let (p, d, tp) = (&g.p, &g.d, &g.tp);
    match g.m.auto_increment() {
        Some(k) if !inserted.is_empty() => {
            let f = &k.ident;
            let st = g.storage(k);
            quote! {
                fn raw_insert_returning_keys(_internal: #p::Internal, conn: &mut #p::AnyConnection, rows: &[Self]) -> #d::QueryResult<::core::option::Option<::std::vec::Vec<i64>>> {
                    if !#p::run::has_returning(conn) {
                        return ::core::result::Result::Ok(::core::option::Option::None);
                    }
                    let values: ::std::vec::Vec<_> = rows.iter().map(|row| #row_values).collect();
                    let keys: ::core::option::Option<::std::vec::Vec<#st>> = #p::run::insert_returning_all(
                        conn,
                        #d::insert_into(#tp::table).values(values).returning(#tp::#f),
                    )?;
                    ::core::result::Result::Ok(keys.map(|keys| {
                        let mut keys: ::std::vec::Vec<i64> =
                            keys.into_iter().map(::core::convert::From::from).collect();
                        keys.sort_unstable();
                        keys
                    }))
                }
            }
        }
        _ => quote!(),
    }
}
