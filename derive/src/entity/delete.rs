//! Deletes: by key (`raw_delete`), by key returning the deleted row where the backend has
//! `RETURNING` (`raw_delete_returning`, the audit record's before image in the same
//! statement, loaded on the connection's own backend as a read by key is), and for soft-delete entities setting or clearing `deleted_at`
//! (`raw_set_deleted`, behind `delete` and `restore`).

use super::find::built_row;
use super::keys::key_storage;
use super::Gen;
use crate::attrs::Role;
use proc_macro2::TokenStream;
use quote::quote;

/// `raw_delete`, `raw_delete_returning` and, for a soft-delete entity, `raw_set_deleted`.
pub(super) fn delete_fns(g: &Gen<'_>) -> TokenStream {
    let (p, d, tp) = (&g.p, &g.d, &g.tp);
    let key_storage = key_storage(g);
    let (columns, build) = built_row(g);
    let set_deleted = set_deleted_fn(g);
    quote! {
        fn raw_delete(_internal: #p::Internal, conn: &mut #p::AnyConnection, key: &Self::Key) -> #d::QueryResult<usize> {
            let key = #key_storage;
            #d::delete(#tp::table.find(key)).execute(conn)
        }

        fn raw_delete_returning(_internal: #p::Internal, conn: &mut #p::AnyConnection, key: &Self::Key, returns: #p::run::Returns) -> #d::QueryResult<::core::option::Option<::core::option::Option<Self>>> {
            #p::run::delete_returning(
                conn,
                returns,
                || {
                    let key = #key_storage;
                    #d::delete(#tp::table.find(key))
                },
                #columns,
                #build,
                |conn| <Self as #p::Entity>::raw_find_for_update(_internal, conn, key, true),
            )
        }

        #set_deleted
    }
}

/// Soft delete and restore: `deleted_at` set on a live row, or cleared on a deleted one.
fn set_deleted_fn(g: &Gen<'_>) -> Option<TokenStream> {
    let (p, d, tp) = (&g.p, &g.d, &g.tp);
    let c = g.m.role(Role::DeletedAt)?;
    let f = &c.ident;
    let at = g.stored_now(c, quote!(at));
    let key_storage = key_storage(g);
    Some(quote! {
        fn raw_set_deleted(
            _internal: #p::Internal,
            conn: &mut #p::AnyConnection,
            key: &Self::Key,
            deleted_at: ::core::option::Option<#p::chrono::NaiveDateTime>,
        ) -> #d::QueryResult<usize> {
            let key = #key_storage;
            match deleted_at {
                ::core::option::Option::Some(at) => #d::update(#tp::table.find(key).filter(#tp::#f.is_null()))
                    .set(#tp::#f.eq(#at))
                    .execute(conn),
                ::core::option::Option::None => #d::update(#tp::table.find(key).filter(#tp::#f.is_not_null()))
                    .set(#tp::#f.eq(::core::option::Option::None::<#p::sql_types::StoredDatetime>))
                    .execute(conn),
            }
        }
    })
}
