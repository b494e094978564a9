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
//! list `diesel` (any 2.3 version, `default-features = false`) among its dependencies; without
//! it the expansion is the struct and one error saying so (see the `manifest` module).

use crate::attrs::{CheckAttr, EntityArgs, Role};
use crate::model::{snake_case, Column, EntityModel, Timestamp};
use crate::types::SqlType;
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
    if crate::manifest::lacks_diesel() {
        // One clear error instead of the dozen that diesel's `use ::diesel;` would cause.
        let message = crate::manifest::MISSING_DIESEL;
        return Ok(quote! {
            #item
            ::core::compile_error!(#message);
        });
    }
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
    let as_select = quote!(<Self as #d::SelectableHelper<#p::MultiBackend>>::as_select());

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
    // Columns stored as the field itself bind the field by reference (no clone); the helper
    // only checks the types agree, spanned on the field type like the conversions.
    let ref_fn = |i: usize| format_ident!("__custodian_ref_{}", i);
    let bind = |c: &Column, value: TokenStream| {
        if c.sql.stored_as_is(&c.ty) {
            let f = ref_fn(index(c));
            quote!(#f(#value))
        } else {
            to_storage(c, value)
        }
    };
    let helpers = m.columns.iter().enumerate().map(|(i, c)| {
        let ty = &c.ty;
        let st = storage(c);
        let to = to_fn(i);
        let from = from_fn(i);
        let by_ref = c.sql.stored_as_is(ty).then(|| {
            let r = ref_fn(i);
            quote_spanned! {ty.span()=>
                #[inline]
                fn #r(value: &#ty) -> &#st {
                    value
                }
            }
        });
        quote_spanned! {ty.span()=>
            #by_ref
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

    // Roles.
    let soft = m.role(Role::DeletedAt);
    let version = m.role(Role::Version);
    let updated_at = m.role(Role::UpdatedAt);
    let created_at = m.role(Role::CreatedAt);
    // `.filter(deleted_at IS NULL)` for soft-delete entities.
    let live = match soft {
        Some(c) => {
            let f = &c.ident;
            quote!(.filter(#tp::#f.is_null()))
        }
        None => quote!(),
    };

    // Insert.
    let inserted: Vec<&Column> = m.columns.iter().filter(|c| c.inserted()).collect();
    // One row's `(column.eq(value), ...)`, values borrowed from `row` where possible.
    let row_values = {
        let values = inserted.iter().map(|c| {
            let f = &c.ident;
            let v = bind(c, quote!(&row.#f));
            quote!(#tp::#f.eq(#v))
        });
        quote!((#(#values,)*))
    };
    let insert_body = if inserted.is_empty() {
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
    };
    // One row: a tuple (never a `Vec`, which diesel does not cache as a prepared statement).
    // An auto-increment key comes back from the same statement where the backend has
    // `RETURNING` (PostgreSQL, SQLite >= 3.35); MariaDB reports `None` and the write path asks
    // `LAST_INSERT_ID()`.
    let insert_one_stmt = if inserted.is_empty() {
        quote!(#d::insert_into(#tp::table).default_values())
    } else {
        quote!(#d::insert_into(#tp::table).values(#row_values))
    };
    let insert_one_body = match m.auto_increment() {
        Some(k) => {
            let f = &k.ident;
            let st = storage(k);
            quote! {
                let id: ::core::option::Option<#st> = #p::run::insert_returning(
                    conn,
                    #insert_one_stmt,
                    |insert| insert.returning(#tp::#f),
                )?;
                ::core::result::Result::Ok(id.map(::core::convert::From::from))
            }
        }
        None => quote! {
            #p::run::execute(conn, #insert_one_stmt)?;
            ::core::result::Result::Ok(::core::option::Option::None)
        },
    };

    // Bulk insert returning the auto-increment keys (PostgreSQL, SQLite), sorted: each
    // database hands out increasing keys in the order of the VALUES rows of one statement.
    let insert_keys_fn = match m.auto_increment() {
        Some(k) if !inserted.is_empty() => {
            let f = &k.ident;
            let st = storage(k);
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
            bind(k, quote!(&entity.#f)),
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
            bind(c, quote!(&entity.#f))
        });
        (
            quote!((#(#tys,)*)),
            quote!((#(::core::clone::Clone::clone(&self.#key_idents),)*)),
            quote!((#(#stored,)*)),
            quote!((#(#from_entity,)*)),
        )
    };

    // Find many: one `IN` statement for a single-column key.
    let find_many_body = if let [k] = keys.as_slice() {
        let f = &k.ident;
        quote! {
            if keys.is_empty() {
                return ::core::result::Result::Ok(::std::vec::Vec::new());
            }
            let keys: ::std::vec::Vec<_> = keys.iter().map(|key| #key_storage).collect();
            #tp::table
                .filter(#tp::#f.eq_any(keys))
                #live
                .select(#as_select)
                .load(conn)
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
    };

    // The rows of a set-based write, by key: one `IN` for a single-column key; one key per
    // statement for a composite key (the write path passes one key at a time then).
    let keys_filter_body = if let [k] = keys.as_slice() {
        let f = &k.ident;
        quote! {
            let keys: ::std::vec::Vec<_> = keys.iter().map(|key| #key_storage).collect();
            ::core::option::Option::Some(::std::boxed::Box::new(#tp::#f.eq_any(keys)))
        }
    } else {
        let conds: Vec<TokenStream> = keys
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let f = &c.ident;
                let i = syn::Index::from(i);
                let v = to_storage(c, quote!(&key.#i));
                quote!(#tp::#f.eq(#v))
            })
            .collect();
        let (first, rest) = conds.split_first().expect("a composite key has columns");
        quote! {
            use #d::BoolExpressionMethods as _;
            match keys {
                [key] => ::core::option::Option::Some(::std::boxed::Box::new(#first #(.and(#rest))*)),
                _ => ::core::option::Option::None,
            }
        }
    };

    // Find one: no LIMIT (a primary key matches at most one row), so SQLite keeps the prepared
    // statement instead of re-preparing it for every bound LIMIT.
    // `lock` goes after the select: nothing for the plain read, the row lock for the locking
    // read of a before image (one statement; see custodian's `before_image` module).
    let find_with = |lock: TokenStream| {
        if soft.is_some() {
            quote! {
                let key = #key_storage;
                if with_deleted {
                    #tp::table.find(key).select(#as_select)#lock.get_result(conn).optional()
                } else {
                    #tp::table.find(key)#live.select(#as_select)#lock.get_result(conn).optional()
                }
            }
        } else {
            quote! {
                let _ = with_deleted;
                let key = #key_storage;
                #tp::table.find(key).select(#as_select)#lock.get_result(conn).optional()
            }
        }
    };
    let find_body = find_with(quote!());
    let find_for_update_body =
        find_with(quote!(.with_lock(#p::RowLock).modify_lock(#p::NoLockModifier)));

    // The current time as the stored form of a timestamp column.
    let stored_now = |c: &Column, now: TokenStream| {
        let v = quote!(<#p::chrono::NaiveDateTime as #p::ColumnValue>::to_storage(&#now));
        if c.sql.is_nullable() {
            quote!(::core::option::Option::Some(#v))
        } else {
            v
        }
    };

    // Update: data columns from the entity, `updated_at = now`, `version = version + 1`;
    // never `created_at` nor `deleted_at`. Only the live row of the entity's version matches.
    let set: Vec<TokenStream> = m
        .columns
        .iter()
        .filter(|c| c.updated() && !c.is(Role::CreatedAt) && !c.is(Role::DeletedAt))
        .map(|c| {
            let f = &c.ident;
            if c.is(Role::UpdatedAt) {
                let v = stored_now(c, quote!(now));
                quote!(#tp::#f.eq(#v))
            } else if c.is(Role::Version) {
                let one = match c.sql {
                    SqlType::BigInt => quote!(1i64),
                    _ => quote!(1i32),
                };
                quote!(#tp::#f.eq(#tp::#f + #one))
            } else {
                let v = bind(c, quote!(&entity.#f));
                quote!(#tp::#f.eq(#v))
            }
        })
        .collect();
    // The generated changeset, as every update statement takes it.
    let changeset = quote!(#d::AsChangeset::as_changeset((#(#set,)*)));
    let use_now = if updated_at.is_some() {
        quote!()
    } else {
        quote!(let _ = now;)
    };
    // The row an update targets: key, and version and liveness where the entity has them.
    let row_filter = {
        let key_filter = keys.iter().map(|c| {
            let f = &c.ident;
            let v = bind(c, quote!(&entity.#f));
            quote!(#tp::#f.eq(#v))
        });
        let version_cond = version.map(|c| {
            let f = &c.ident;
            let v = to_storage(c, quote!(&entity.#f));
            quote!(#tp::#f.eq(#v))
        });
        let live_cond = soft.map(|c| {
            let f = &c.ident;
            quote!(#tp::#f.is_null())
        });
        let conds: Vec<TokenStream> = key_filter.chain(version_cond).chain(live_cond).collect();
        match conds.split_first() {
            Some((first, rest)) => quote!(#first #(.and(#rest))*),
            // The model rejects entities without a primary key before this runs.
            None => quote!(::core::compile_error!("an entity needs a primary key")),
        }
    };
    let update_body = if set.is_empty() {
        // Nothing to set: report whether the row exists, as an update would.
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
    };

    // MariaDB: the update of a row read earlier in the transaction, guarded by
    // every column still holding what was read (byte for byte, NULL = NULL), so that read is the
    // audit record's before image without a locking read; see custodian's `before_image` module.
    let update_unchanged_fn = (!set.is_empty()).then(|| {
        let guard = m
            .columns
            .iter()
            .map(|c| {
                let f = &c.ident;
                let sql = c.sql.path_tokens();
                let v = bind(c, quote!(&seen.#f));
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
        quote! {
            fn raw_update_if_unchanged(
                _internal: #p::Internal,
                conn: &mut #p::AnyConnection,
                entity: &Self,
                now: #p::chrono::NaiveDateTime,
                seen: &Self,
            ) -> #d::QueryResult<::core::option::Option<usize>> {
                use #d::BoolExpressionMethods as _;
                #use_now
                #p::CachedUpdate {
                    table: #tp::table,
                    set: #changeset,
                    filter: #p::Both(#row_filter, #guard),
                }
                .execute(conn)
                .map(::core::option::Option::Some)
            }
        }
    });

    // PostgreSQL: the update returns the row as it was (the audit record's before image) in
    // the same statement; see custodian's `before_image` module. Tables in a schema keep the
    // separate locking read (the statement aliases the sub-select with the bare table name).
    let update_old_fn = (!set.is_empty() && m.schema.is_none()).then(|| {
        let table_name = m.table.to_string();
        let key_names = keys.iter().map(|c| &c.name);
        quote! {
            fn raw_update_returning_old(
                _internal: #p::Internal,
                conn: &mut #p::AnyConnection,
                entity: &Self,
                now: #p::chrono::NaiveDateTime,
            ) -> #d::QueryResult<::core::option::Option<::core::option::Option<Self>>> {
                use #d::BoolExpressionMethods as _;
                #use_now
                if !#p::run::returns_old_row_on_update(conn) {
                    return ::core::result::Result::Ok(::core::option::Option::None);
                }
                let statement = #p::UpdateReturningOld {
                    table: #table_name,
                    key: &[#(#key_names),*],
                    set: #changeset,
                    filter: #row_filter,
                    select: <Self as #d::Selectable<#p::MultiBackend>>::construct_selection(),
                };
                statement.get_result::<Self>(conn).optional().map(::core::option::Option::Some)
            }
        }
    });

    // Soft delete and restore.
    let set_deleted = soft.map(|c| {
        let f = &c.ident;
        let at = stored_now(c, quote!(at));
        quote! {
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
        }
    });

    // Stamps: the values the write path stored, mirrored into the struct.
    let stamp_value = |c: &Column| {
        let t = c.timestamp.unwrap_or(Timestamp {
            utc: false,
            nullable: false,
        });
        let v = if t.utc {
            quote!(#p::chrono::DateTime::from_naive_utc_and_offset(now, #p::chrono::Utc))
        } else {
            quote!(now)
        };
        if t.nullable {
            quote!(::core::option::Option::Some(#v))
        } else {
            v
        }
    };
    let raw_stamp = if m.columns.iter().any(|c| c.role.is_some()) {
        let mut insert = Vec::new();
        let mut update = Vec::new();
        if let Some(c) = created_at {
            let f = &c.ident;
            let v = stamp_value(c);
            insert.push(quote!(self.#f = #v;));
        }
        if let Some(c) = updated_at {
            let f = &c.ident;
            let v = stamp_value(c);
            insert.push(quote!(self.#f = #v;));
            update.push(quote!(self.#f = #v;));
        }
        if let Some(c) = version {
            let f = &c.ident;
            insert.push(quote!(self.#f = 1;));
            update.push(quote!(self.#f += 1;));
        }
        let (soft_delete, restore) = match soft {
            Some(c) => {
                let f = &c.ident;
                let v = stamp_value(c);
                (
                    quote!(self.#f = #v;),
                    quote!(self.#f = ::core::option::Option::None;),
                )
            }
            None => (quote!(), quote!()),
        };
        quote! {
            fn raw_stamp(&mut self, op: #p::Stamp, now: #p::chrono::NaiveDateTime) {
                let _ = now;
                match op {
                    #p::Stamp::Insert => { #(#insert)* }
                    #p::Stamp::Update => { #(#update)* }
                    #p::Stamp::SoftDelete => { #soft_delete }
                    #p::Stamp::Restore => { #restore }
                }
            }
        }
    } else {
        quote!()
    };
    let version_fn = version.map(|c| {
        let f = &c.ident;
        quote! {
            fn version(&self) -> ::core::option::Option<i64> {
                ::core::option::Option::Some(::core::convert::From::from(self.#f))
            }
        }
    });

    // Hooks and validation.
    // Both hooks go through one function bounded by `Hooks`, so a missing impl is one error.
    let hooks = m.hooks.map(|span| {
        quote_spanned! {span=>
            const HOOKS: bool = true;

            fn raw_before(&mut self, kind: #p::WriteKind, session: &mut #p::Session) -> ::custodian::Result<()> {
                (__custodian_hooks::<Self>().0)(self, kind, session)
            }

            fn raw_after(&self, kind: #p::WriteKind, session: &mut #p::Session) -> ::custodian::Result<()> {
                (__custodian_hooks::<Self>().1)(self, kind, session)
            }
        }
    });
    let hooks_fn = m.hooks.map(|span| {
        quote_spanned! {span=>
            type __CustodianBefore<E> = fn(&mut E, #p::WriteKind, &mut #p::Session) -> ::custodian::Result<()>;
            type __CustodianAfter<E> = fn(&E, #p::WriteKind, &mut #p::Session) -> ::custodian::Result<()>;
            fn __custodian_hooks<E: #p::Hooks>() -> (__CustodianBefore<E>, __CustodianAfter<E>) {
                (#p::run_before::<E>, #p::run_after::<E>)
            }
        }
    });
    // With the `validate` flag or a `#[derive(Validate)]` below `#[entity]`, validator's rules
    // are called directly (a missing `Validate` impl is a compile error at that span). Otherwise
    // a `#[derive(Validate)]` above `#[entity]` may already have been expanded out of sight, so
    // the generated code asks the type itself: the rules run whenever it implements `Validate`.
    let validate = match m.validate {
        Some(span) => quote_spanned! {span=>
            fn validate(&self) -> ::core::result::Result<(), ::custodian::ValidationErrors> {
                #p::run_validator(self)
            }
        },
        None => quote! {
            fn validate(&self) -> ::core::result::Result<(), ::custodian::ValidationErrors> {
                #[allow(unused_imports)]
                use #p::{NoValidator as _, RunsValidator as _};
                (&#p::ValidatorProbe(self)).validate_if_derived()
            }
        },
    };

    let audit_fns = audit_fns(m);

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

    // Queries: live rows, all rows, deleted rows.
    let select_ty = quote!(#d::dsl::AsSelect<#ident, #p::MultiBackend>);
    let queries = match soft {
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
    };

    let aliases = related_aliases(m);
    let meta = meta(m);
    let relations = relations(m, &hidden, &live, &to_storage);

    quote! {
        #[doc(hidden)]
        #allow
        #table_mod

        #allow
        #vis use #hidden::#table;

        #allow
        const _: () = {
            use #d::{
                ExpressionMethods as _, NullableExpressionMethods as _, OptionalExtension as _,
                QueryDsl as _, RunQueryDsl as _, SelectableHelper as _,
            };
            use #d;

            #(#asserts)*
            #(#helpers)*
            #aliases
            #hooks_fn

            const __CUSTODIAN_META: #p::EntityMeta = #meta;

            #queryable

            impl #p::Entity for #ident {
                type Key = #key_ty;
                type Table = #tp::table;
                #queries

                #hooks

                fn key(&self) -> Self::Key {
                    #key_clone
                }

                #validate
                #version_fn
                #raw_stamp
                #audit_fns

                fn raw_set_generated_key(&mut self, id: i64) -> ::core::result::Result<(), #p::DecodeError> {
                    #set_key
                }

                fn raw_insert(_internal: #p::Internal, conn: &mut #p::AnyConnection, rows: &[Self]) -> #d::QueryResult<usize> {
                    if rows.is_empty() {
                        return ::core::result::Result::Ok(0);
                    }
                    #insert_body
                }

                fn raw_insert_one(_internal: #p::Internal, conn: &mut #p::AnyConnection, row: &Self) -> #d::QueryResult<::core::option::Option<i64>> {
                    #insert_one_body
                }

                #insert_keys_fn

                fn raw_find_many(_internal: #p::Internal, conn: &mut #p::AnyConnection, keys: &[Self::Key]) -> #d::QueryResult<::std::vec::Vec<Self>> {
                    #find_many_body
                }

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

                fn raw_keys_filter(keys: &[Self::Key]) -> ::core::option::Option<#p::KeysFilter<Self>> {
                    #keys_filter_body
                }

                fn raw_find(_internal: #p::Internal, conn: &mut #p::AnyConnection, key: &Self::Key, with_deleted: bool) -> #d::QueryResult<::core::option::Option<Self>> {
                    #find_body
                }

                fn raw_find_for_update(_internal: #p::Internal, conn: &mut #p::AnyConnection, key: &Self::Key, with_deleted: bool) -> #d::QueryResult<::core::option::Option<Self>> {
                    use #d::query_dsl::methods::{LockingDsl as _, ModifyLockDsl as _};
                    #find_for_update_body
                }

                fn raw_update(_internal: #p::Internal, conn: &mut #p::AnyConnection, entity: &Self, now: #p::chrono::NaiveDateTime) -> #d::QueryResult<usize> {
                    #use_now
                    #update_body
                }

                #update_old_fn

                #update_unchanged_fn

                fn raw_delete(_internal: #p::Internal, conn: &mut #p::AnyConnection, key: &Self::Key) -> #d::QueryResult<usize> {
                    let key = #key_storage;
                    #d::delete(#tp::table.find(key)).execute(conn)
                }

                fn raw_delete_returning(_internal: #p::Internal, conn: &mut #p::AnyConnection, key: &Self::Key) -> #d::QueryResult<::core::option::Option<::core::option::Option<Self>>> {
                    if !#p::run::has_returning(conn) {
                        return ::core::result::Result::Ok(::core::option::Option::None);
                    }
                    let key = #key_storage;
                    #p::Returning {
                        statement: #d::delete(#tp::table.find(key)),
                        select: <Self as #d::Selectable<#p::MultiBackend>>::construct_selection(),
                    }
                    .get_result::<Self>(conn)
                    .optional()
                    .map(::core::option::Option::Some)
                }

                #set_deleted
            }

            #relations
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

/// Name of the alias of the parent entity of column `i` (its `#[belongs_to(...)]`).
fn parent_alias(i: usize) -> Ident {
    format_ident!("__CustodianParent{}", i)
}

/// Name of the alias of the `j`-th `has_many`/`has_one` child entity.
fn child_alias(j: usize) -> Ident {
    format_ident!("__CustodianChild{}", j)
}

/// One type alias per related entity, spanned on the path as written, so an unknown entity is
/// reported once, there.
fn related_aliases(m: &EntityModel) -> TokenStream {
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
fn relations(
    m: &EntityModel,
    hidden: &Ident,
    live: &TokenStream,
    to_storage: &dyn Fn(&Column, TokenStream) -> TokenStream,
) -> TokenStream {
    let p = quote!(::custodian::__private);
    let d = quote!(::custodian::__private::diesel);
    let ident = &m.ident;
    let table = &m.table;
    let tp = quote!(#hidden::#table);
    let as_select = quote!(<Self as #d::SelectableHelper<#p::MultiBackend>>::as_select());
    let mut out = TokenStream::new();
    for (i, c) in m.columns.iter().enumerate() {
        let Some(fk) = &c.references else { continue };
        let parent = parent_alias(i);
        let f = &c.ident;
        let field = f.unraw().to_string();
        let key_ty = &fk.key_ty;
        let cascade_fn = format_ident!("__custodian_cascade_{}", i);
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
                to_storage(c, quote!(key)),
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
                session: &mut #p::Session,
                keys: &dyn ::core::any::Any,
                cascade: &mut #p::Cascade,
            ) -> ::custodian::Result<()> {
                let keys = #p::cascade_keys::<#key_ty>(keys, #field)?;
                let mut rows: ::std::vec::Vec<#ident> = ::std::vec::Vec::new();
                for chunk in keys.chunks(session.backend().max_bind_params().max(1)) {
                    let stored: ::std::vec::Vec<_> = chunk.iter().map(|key| #stored_key).collect();
                    rows.extend(session.run(|conn| {
                        #tp::table
                            .filter(#tp::#f.eq_any(stored))
                            .select(<#ident as #d::SelectableHelper<#p::MultiBackend>>::as_select())
                            .load::<#ident>(conn)
                    })?);
                }
                #p::cascade_rows::<#ident>(session, rows, #field, cascade)
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
                let cascade_fn = format_ident!("__custodian_cascade_{}", i);
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

/// What the audit trail needs: JSON images of the row and of the key, rebuilding a value from
/// an image, and the `unaudited` opt-out.
fn audit_fns(m: &EntityModel) -> TokenStream {
    let p = quote!(::custodian::__private);
    let json = quote!(#p::serde_json);
    let image_entries = m.columns.iter().map(|c| {
        let (f, ty, name) = (&c.ident, &c.ty, &c.name);
        quote!(image.insert(::std::string::String::from(#name), <#ty as #p::ColumnValue>::to_json(&self.#f));)
    });
    let from_image = m.columns.iter().map(|c| {
        let (f, ty, name) = (&c.ident, &c.ty, &c.name);
        quote! {
            #f: <#ty as #p::ColumnValue>::from_json(image.get(#name).ok_or_else(|| {
                ::std::format!("the image has no column `{}`", #name)
            })?)?
        }
    });
    let unstorable = m.columns.iter().enumerate().map(|(i, c)| {
        let (f, ty) = (&c.ident, &c.ty);
        quote! {
            if let ::core::option::Option::Some(why) = <#ty as #p::ColumnValue>::unstorable(&self.#f) {
                out.push((#i, why));
            }
        }
    });
    let skipped = &m.skipped;
    let keys: Vec<&crate::model::Column> = m.key_columns().collect();
    let key_image = if let [k] = keys.as_slice() {
        let ty = &k.ty;
        quote!(::std::vec![<#ty as #p::ColumnValue>::to_json(key)])
    } else {
        let parts = keys.iter().enumerate().map(|(i, c)| {
            let ty = &c.ty;
            let i = syn::Index::from(i);
            quote!(<#ty as #p::ColumnValue>::to_json(&key.#i))
        });
        quote!(::std::vec![#(#parts,)*])
    };
    let audited = m
        .unaudited
        .map(|span| quote_spanned!(span=> const AUDITED: bool = false;));
    quote! {
        #audited

        fn raw_image(&self) -> ::core::result::Result<#json::Map<::std::string::String, #json::Value>, #p::DecodeError> {
            let mut image = #json::Map::new();
            #(#image_entries)*
            ::core::result::Result::Ok(image)
        }

        fn raw_unstorable(&self) -> ::std::vec::Vec<(usize, &'static str)> {
            let mut out = ::std::vec::Vec::new();
            #(#unstorable)*
            out
        }

        fn raw_from_image(image: &#json::Map<::std::string::String, #json::Value>) -> ::core::result::Result<Self, #p::DecodeError> {
            ::core::result::Result::Ok(Self {
                #(#from_image,)*
                #(#skipped: ::core::default::Default::default(),)*
            })
        }

        fn raw_key_image(key: &Self::Key) -> ::core::result::Result<#json::Value, #p::DecodeError> {
            ::core::result::Result::Ok(#json::Value::Array(#key_image))
        }
    }
}
