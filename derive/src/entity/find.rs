//! Finding rows by key: one row (`raw_find`), one row under a row lock
//! (`raw_find_for_update`, the before image of an update or delete), and many rows
//! (`raw_find_many`).
//!
//! A soft-delete entity finds live rows only unless asked `with_deleted`. Finding one row has
//! no `LIMIT` (a primary key matches at most one row), so SQLite keeps the prepared statement
//! instead of re-preparing it for every bound `LIMIT`.

use super::keys::key_storage;
use super::Gen;
use crate::attrs::Role;
use proc_macro2::TokenStream;
use quote::quote;

/// `raw_find_many`, `raw_find` and `raw_find_for_update`.
pub(super) fn find_fns(g: &Gen<'_>) -> TokenStream {
    let (p, d) = (&g.p, &g.d);
    let find_many_body = find_many_body(g);
    let find_body = find_with(g, quote!());
    let find_for_update_body = find_with(
        g,
        quote!(.with_lock(#p::RowLock).modify_lock(#p::NoLockModifier)),
    );
    quote! {
        fn raw_find_many(_internal: #p::Internal, conn: &mut #p::AnyConnection, keys: &[Self::Key]) -> #d::QueryResult<::std::vec::Vec<Self>> {
            #find_many_body
        }

        fn raw_find(_internal: #p::Internal, conn: &mut #p::AnyConnection, key: &Self::Key, with_deleted: bool) -> #d::QueryResult<::core::option::Option<Self>> {
            #find_body
        }

        fn raw_find_for_update(_internal: #p::Internal, conn: &mut #p::AnyConnection, key: &Self::Key, with_deleted: bool) -> #d::QueryResult<::core::option::Option<Self>> {
            use #d::query_dsl::methods::{LockingDsl as _, ModifyLockDsl as _};
            #find_for_update_body
        }
    }
}

/// The body of `raw_find_many`: one `IN` statement for a single-column key, one find per key
/// for a composite key.
fn find_many_body(g: &Gen<'_>) -> TokenStream {
    let (p, tp) = (&g.p, &g.tp);
    if let [k] = g.keys.as_slice() {
        let f = &k.ident;
        let key_storage = key_storage(g);
        let live = g.live();
        let (columns, build) = built_row(g);
        quote! {
            if keys.is_empty() {
                return ::core::result::Result::Ok(::std::vec::Vec::new());
            }
            let keys: ::std::vec::Vec<_> = keys.iter().map(|key| #key_storage).collect();
            #p::run::load_built(
                conn,
                #tp::table.filter(#tp::#f.eq_any(keys))#live.select(#columns),
                #build,
            )
        }
    } else {
        quote! {
            let mut out = ::std::vec::Vec::with_capacity(keys.len());
            for key in keys {
                if let ::core::option::Option::Some(found) = <Self as #p::Entity>::raw_find(_internal, conn, key, false)? {
                    out.push(found);
                }
            }
            ::core::result::Result::Ok(out)
        }
    }
}

/// The select clause of a row loaded as the tuple of its stored types, and the function that
/// builds the entity from that tuple (its `Queryable::build`): a read that runs on the concrete
/// connection (see `run::load_built`).
pub(super) fn built_row(g: &Gen<'_>) -> (TokenStream, TokenStream) {
    let (p, d, tp) = (&g.p, &g.d, &g.tp);
    let idents = g.m.columns.iter().map(|c| &c.ident);
    let sql_types = g.m.columns.iter().map(|c| c.sql.path_tokens());
    (
        quote!((#(#tp::#idents,)*)),
        quote!(<Self as #d::deserialize::Queryable<(#(#sql_types,)*), #p::MultiBackend>>::build),
    )
}

/// The body of a find of one row by key, with `lock` after the select: nothing for the plain
/// read, the row lock for the locking read of a before image (one statement; see custodian's
/// `before_image` module). Run on the concrete connection (see `run::find_built`).
fn find_with(g: &Gen<'_>, lock: TokenStream) -> TokenStream {
    let (p, tp) = (&g.p, &g.tp);
    let key_storage = key_storage(g);
    let (columns, build) = built_row(g);
    if g.m.role(Role::DeletedAt).is_some() {
        let live = g.live();
        quote! {
            let key = #key_storage;
            if with_deleted {
                #p::run::find_built(conn, #tp::table.find(key).select(#columns)#lock, #build)
            } else {
                #p::run::find_built(conn, #tp::table.find(key)#live.select(#columns)#lock, #build)
            }
        }
    } else {
        quote! {
            let _ = with_deleted;
            let key = #key_storage;
            #p::run::find_built(conn, #tp::table.find(key).select(#columns)#lock, #build)
        }
    }
}
