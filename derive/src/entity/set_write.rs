//! What set-based writes (`Session::update_where`, `delete_where`) need from an entity: a
//! filter selecting rows by their keys (`raw_keys_filter`), an update that returns the rows
//! as written where the backend has `RETURNING` (`raw_update_returning`), and one that returns
//! them as they were and as written (`raw_update_returning_both`, PostgreSQL).
//!
//! A single-column key filters with one `IN`; a composite key gives one key's filter at a time
//! (the write path then passes one key per statement).

use super::keys::key_storage;
use super::Gen;
use proc_macro2::TokenStream;
use quote::quote;

/// `raw_update_returning`, `raw_update_returning_both` and `raw_keys_filter`.
pub(super) fn set_write_fns(g: &Gen<'_>) -> TokenStream {
    let (p, d) = (&g.p, &g.d);
    let keys_filter_body = keys_filter_body(g);
    quote! {
        fn raw_update_returning(
            _internal: #p::Internal,
            conn: &mut #p::AnyConnection,
            statement: &dyn #d::query_builder::QueryFragment<#p::MultiBackend>,
        ) -> #d::QueryResult<::core::option::Option<::std::vec::Vec<Self>>> {
            if !#p::run::has_returning(conn) {
                return ::core::result::Result::Ok(::core::option::Option::None);
            }
            #p::Returning {
                statement: #p::DynStatement(statement),
                select: <Self as #d::Selectable<#p::MultiBackend>>::construct_selection(),
            }
            .load::<Self>(conn)
            .map(::core::option::Option::Some)
        }

        fn raw_update_returning_both(
            _internal: #p::Internal,
            conn: &mut #p::AnyConnection,
            statement: &dyn #d::query_builder::QueryFragment<#p::MultiBackend>,
        ) -> #d::QueryResult<::core::option::Option<::std::vec::Vec<(Self, Self)>>> {
            #p::run::on_postgres(conn, |conn| {
                #p::BothImages::<<Self as #d::Selectable<#p::MultiBackend>>::SelectExpression> {
                    statement: #p::DynStatement(statement),
                    select: ::core::marker::PhantomData,
                }
                .load::<(Self, Self)>(conn)
            })
        }

        fn raw_keys_filter(keys: &[Self::Key]) -> ::core::option::Option<#p::KeysFilter<Self>> {
            #keys_filter_body
        }
    }
}

/// The rows of a set-based write, by key: for a single-column key `=` for one key (a
/// statement diesel keeps prepared; an `IN` list is prepared again on every run) and one `IN`
/// for several; one key per statement for a composite key.
fn keys_filter_body(g: &Gen<'_>) -> TokenStream {
    let (d, tp) = (&g.d, &g.tp);
    if let [k] = g.keys.as_slice() {
        let f = &k.ident;
        let key_storage = key_storage(g);
        return quote! {
            if let [key] = keys {
                return ::core::option::Option::Some(::std::boxed::Box::new(#tp::#f.eq(#key_storage)));
            }
            let keys: ::std::vec::Vec<_> = keys.iter().map(|key| #key_storage).collect();
            ::core::option::Option::Some(::std::boxed::Box::new(#tp::#f.eq_any(keys)))
        };
    }
    let conds: Vec<TokenStream> = g
        .keys
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = &c.ident;
            let i = syn::Index::from(i);
            let v = g.to_storage(c, quote!(&key.#i));
            quote!(#tp::#f.eq(#v))
        })
        .collect();
    let Some((first, rest)) = conds.split_first() else {
        return quote!(::core::option::Option::None);
    };
    quote! {
        use #d::BoolExpressionMethods as _;
        match keys {
            [key] => ::core::option::Option::Some(::std::boxed::Box::new(#first #(.and(#rest))*)),
            _ => ::core::option::Option::None,
        }
    }
}
