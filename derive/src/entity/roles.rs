//! The role columns the write path maintains (`version`, `created_at`, `updated_at`,
//! `deleted_at`), mirrored into the struct: `raw_stamp` writes into the struct the values the
//! write path stored, and `version` reads the optimistic-locking version.

use super::Gen;
use crate::attrs::Role;
use crate::model::{Column, Timestamp};
use proc_macro2::TokenStream;
use quote::quote;

/// `Entity::version`, for an entity with a `version` column.
pub(super) fn version_fn(g: &Gen<'_>) -> Option<TokenStream> {
    g.m.role(Role::Version).map(|c| {
        let f = &c.ident;
        quote! {
            fn version(&self) -> ::core::option::Option<i64> {
                ::core::option::Option::Some(::core::convert::From::from(self.#f))
            }
        }
    })
}

/// `Entity::raw_stamp`, for an entity with at least one role column.
pub(super) fn raw_stamp(g: &Gen<'_>) -> TokenStream {
    let (m, p) = (g.m, &g.p);
    if !m.columns.iter().any(|c| c.role.is_some()) {
        return quote!();
    }
    let mut insert = Vec::new();
    let mut update = Vec::new();
    if let Some(c) = m.role(Role::CreatedAt) {
        let f = &c.ident;
        let v = stamp_value(g, c);
        insert.push(quote!(self.#f = #v;));
    }
    if let Some(c) = m.role(Role::UpdatedAt) {
        let f = &c.ident;
        let v = stamp_value(g, c);
        insert.push(quote!(self.#f = #v;));
        update.push(quote!(self.#f = #v;));
    }
    if let Some(c) = m.role(Role::Version) {
        let f = &c.ident;
        insert.push(quote!(self.#f = 1;));
        update.push(quote!(self.#f += 1;));
    }
    let (soft_delete, restore) = match m.role(Role::DeletedAt) {
        Some(c) => {
            let f = &c.ident;
            let v = stamp_value(g, c);
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
}

/// `now` (a `NaiveDateTime`) as the value of timestamp field `c`: in UTC and in `Some` as the
/// field's type says.
fn stamp_value(g: &Gen<'_>, c: &Column) -> TokenStream {
    let p = &g.p;
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
}
