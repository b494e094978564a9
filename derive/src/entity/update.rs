//! Updates: the plain update (`raw_update`), the update returning the row as it was
//! (`raw_update_returning_old`, PostgreSQL), and the update guarded by the row being unchanged
//! since it was read (`raw_update_if_unchanged`, MariaDB).
//!
//! All three set the same changeset: data columns from the entity, `updated_at = now`,
//! `version = version + 1`; never `created_at` nor `deleted_at`. Only the live row of the
//! entity's version matches. The two last ones give the audit record its before image without
//! a separate locking read; see custodian's `before_image` module.

use super::keys::entity_key_storage;
use super::Gen;
use crate::attrs::Role;
use crate::types::SqlType;
use proc_macro2::TokenStream;
use quote::quote;

/// What the three update statements share.
struct Update {
    /// The `column.eq(value)` assignments; empty when there is nothing to set.
    set: Vec<TokenStream>,
    /// The generated changeset, as every update statement takes it.
    changeset: TokenStream,
    /// `let _ = now;` when nothing uses the time of the update.
    use_now: TokenStream,
    /// The row an update targets: key, and version and liveness where the entity has them.
    row_filter: TokenStream,
}

/// `raw_update` and, where they apply, `raw_update_returning_old` and
/// `raw_update_if_unchanged`.
pub(super) fn update_fns(g: &Gen<'_>) -> TokenStream {
    let (p, d) = (&g.p, &g.d);
    let set = set(g);
    let u = Update {
        changeset: quote!(#d::AsChangeset::as_changeset((#(#set,)*))),
        set,
        use_now: if g.m.role(Role::UpdatedAt).is_some() {
            quote!()
        } else {
            quote!(let _ = now;)
        },
        row_filter: row_filter(g),
    };
    let use_now = &u.use_now;
    let update_body = update_body(g, &u);
    let update_old_fn = update_old_fn(g, &u);
    let update_unchanged_fn = update_unchanged_fn(g, &u);
    quote! {
        fn raw_update(_internal: #p::Internal, conn: &mut #p::AnyConnection, entity: &Self, now: #p::chrono::NaiveDateTime) -> #d::QueryResult<usize> {
            #use_now
            #update_body
        }

        #update_old_fn

        #update_unchanged_fn
    }
}

/// The assignments of an update.
fn set(g: &Gen<'_>) -> Vec<TokenStream> {
    let tp = &g.tp;
    g.m.columns
        .iter()
        .filter(|c| c.updated() && !c.is(Role::CreatedAt) && !c.is(Role::DeletedAt))
        .map(|c| {
            let f = &c.ident;
            if c.is(Role::UpdatedAt) {
                let v = g.stored_now(c, quote!(now));
                quote!(#tp::#f.eq(#v))
            } else if c.is(Role::Version) {
                let one = match c.sql {
                    SqlType::BigInt => quote!(1i64),
                    _ => quote!(1i32),
                };
                quote!(#tp::#f.eq(#tp::#f + #one))
            } else {
                let v = g.bind(c, quote!(&entity.#f));
                quote!(#tp::#f.eq(#v))
            }
        })
        .collect()
}

/// The filter of an update: the key, the version read, the row being live.
fn row_filter(g: &Gen<'_>) -> TokenStream {
    let tp = &g.tp;
    let key_filter = g.keys.iter().map(|c| {
        let f = &c.ident;
        let v = g.bind(c, quote!(&entity.#f));
        quote!(#tp::#f.eq(#v))
    });
    let version_cond = g.m.role(Role::Version).map(|c| {
        let f = &c.ident;
        let v = g.to_storage(c, quote!(&entity.#f));
        quote!(#tp::#f.eq(#v))
    });
    let live_cond = g.m.role(Role::DeletedAt).map(|c| {
        let f = &c.ident;
        quote!(#tp::#f.is_null())
    });
    let conds: Vec<TokenStream> = key_filter.chain(version_cond).chain(live_cond).collect();
    match conds.split_first() {
        Some((first, rest)) => quote!(#first #(.and(#rest))*),
        // The model rejects entities without a primary key before this runs.
        None => quote!(::core::compile_error!("an entity needs a primary key")),
    }
}

/// The body of `raw_update` after `use_now`.
fn update_body(g: &Gen<'_>, u: &Update) -> TokenStream {
    let (p, d, tp) = (&g.p, &g.d, &g.tp);
    let (changeset, row_filter) = (&u.changeset, &u.row_filter);
    if u.set.is_empty() {
        // Nothing to set: report whether the row exists, as an update would.
        let entity_key_storage = entity_key_storage(g);
        let live = g.live();
        quote! {
            let key = #entity_key_storage;
            let found: i64 = #tp::table.find(key)#live.count().get_result(conn)?;
            ::core::result::Result::Ok(::core::convert::TryFrom::try_from(found).unwrap_or(0usize))
        }
    } else {
        // A statement diesel keeps prepared; see custodian's `cached_update` module.
        quote! {
            use #d::BoolExpressionMethods as _;
            #p::CachedUpdate {
                table: #tp::table,
                set: #changeset,
                filter: #row_filter,
            }
            .execute(conn)
        }
    }
}

/// MariaDB: the update of a row read earlier in the transaction, guarded by every column still
/// holding what was read (byte for byte, NULL = NULL), so that read is the audit record's
/// before image without a locking read.
fn update_unchanged_fn(g: &Gen<'_>, u: &Update) -> Option<TokenStream> {
    if u.set.is_empty() {
        return None;
    }
    let (p, d, tp) = (&g.p, &g.d, &g.tp);
    let (changeset, row_filter, use_now) = (&u.changeset, &u.row_filter, &u.use_now);
    let guard =
        g.m.columns
            .iter()
            .map(|c| {
                let f = &c.ident;
                let sql = c.sql.path_tokens();
                let v = g.bind(c, quote!(&seen.#f));
                let text = c.sql.is_text();
                quote! {
                    #p::Same::<_, _, #text> {
                        column: #tp::#f,
                        value: #d::expression::AsExpression::<#sql>::as_expression(#v),
                    }
                }
            })
            .reduce(|acc, next| quote!(#p::Both(#acc, #next)))
            .unwrap_or_else(|| quote!(::core::compile_error!("an entity needs columns")));
    Some(quote! {
        fn raw_update_if_unchanged(
            _internal: #p::Internal,
            conn: &mut #p::AnyConnection,
            entity: &Self,
            now: #p::chrono::NaiveDateTime,
            seen: &Self,
        ) -> #d::QueryResult<::core::option::Option<usize>> {
            #p::run::on_mysql(conn, |conn| {
                use #d::BoolExpressionMethods as _;
                #use_now
                #p::CachedUpdate {
                    table: #tp::table,
                    set: #changeset,
                    filter: #p::Both(#row_filter, #guard),
                }
                .execute(conn)
            })
        }
    })
}

/// PostgreSQL: the update returns the row as it was (the audit record's before image) in the
/// same statement. Tables in a schema keep the separate locking read (the statement aliases
/// the sub-select with the bare table name).
fn update_old_fn(g: &Gen<'_>, u: &Update) -> Option<TokenStream> {
    if u.set.is_empty() || g.m.schema.is_some() {
        return None;
    }
    let (p, d) = (&g.p, &g.d);
    let (changeset, row_filter, use_now) = (&u.changeset, &u.row_filter, &u.use_now);
    let table_name = g.m.table.to_string();
    let key_names = g.keys.iter().map(|c| &c.name);
    Some(quote! {
        fn raw_update_returning_old(
            _internal: #p::Internal,
            conn: &mut #p::AnyConnection,
            entity: &Self,
            now: #p::chrono::NaiveDateTime,
        ) -> #d::QueryResult<::core::option::Option<::core::option::Option<Self>>> {
            #p::run::on_postgres(conn, |conn| {
                use #d::BoolExpressionMethods as _;
                #use_now
                let statement = #p::UpdateReturningOld {
                    table: #table_name,
                    key: &[#(#key_names),*],
                    set: #changeset,
                    filter: #row_filter,
                    select: <Self as #d::Selectable<#p::MultiBackend>>::construct_selection(),
                };
                statement.get_result::<Self>(conn).optional()
            })
        }
    })
}
