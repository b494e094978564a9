//! Per-column type checks and storage conversions.
//!
//! Each field gets a compile-time `assert_column::<FieldTy, SqlTy>()`, and one pair of
//! conversion functions (`__custodian_to_<i>`, `__custodian_from_<i>`) between the field type and
//! the stored type of its SQL type; a column stored as the field itself also gets
//! `__custodian_ref_<i>`, which binds the field by reference (no clone). All are spanned on the
//! field type, so a field of the wrong type is reported there, once, rather than at every use.
//! The rest of the generator binds values only through [`Gen::to_storage`] and [`Gen::bind`].

use super::Gen;
use crate::model::Column;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Ident;

/// Name of the field-to-storage conversion of column `i`.
pub(super) fn to_fn(i: usize) -> Ident {
    format_ident!("__custodian_to_{}", i)
}

/// Name of the storage-to-field conversion of column `i`.
pub(super) fn from_fn(i: usize) -> Ident {
    format_ident!("__custodian_from_{}", i)
}

/// Name of the by-reference binding of column `i` (columns stored as the field itself).
fn ref_fn(i: usize) -> Ident {
    format_ident!("__custodian_ref_{}", i)
}

impl Gen<'_> {
    /// The index of `c` among the entity's columns.
    fn index(&self, c: &Column) -> usize {
        self.m
            .columns
            .iter()
            .position(|x| std::ptr::eq(x, c))
            .unwrap_or_default()
    }

    /// The stored (Rust-side) type of `c`.
    pub(super) fn storage(&self, c: &Column) -> TokenStream {
        c.sql.storage_tokens(&c.ty)
    }

    /// `value` (a `&FieldTy`) converted to the stored type of `c`.
    pub(super) fn to_storage(&self, c: &Column, value: TokenStream) -> TokenStream {
        let f = to_fn(self.index(c));
        quote!(#f(#value))
    }

    /// `value` (a `&FieldTy`) as a bind of `c`: by reference when stored as is, converted
    /// otherwise.
    pub(super) fn bind(&self, c: &Column, value: TokenStream) -> TokenStream {
        if c.sql.stored_as_is(&c.ty) {
            let f = ref_fn(self.index(c));
            quote!(#f(#value))
        } else {
            self.to_storage(c, value)
        }
    }

    /// The current time `now` (a `NaiveDateTime`) as the stored form of timestamp column `c`.
    pub(super) fn stored_now(&self, c: &Column, now: TokenStream) -> TokenStream {
        let p = &self.p;
        let v = quote!(<#p::chrono::NaiveDateTime as #p::ColumnValue>::to_storage(&#now));
        if c.sql.is_nullable() {
            quote!(::core::option::Option::Some(#v))
        } else {
            v
        }
    }
}

/// One `assert_column::<FieldTy, SqlTy>()` per column, spanned on the field type.
pub(super) fn asserts(g: &Gen<'_>) -> TokenStream {
    let p = &g.p;
    g.m.columns
        .iter()
        .map(|c| {
            let ty = &c.ty;
            let sql = c.sql.path_tokens();
            quote_spanned! {ty.span()=>
                const _: () = #p::assert_column::<#ty, #sql>();
            }
        })
        .collect()
}

/// The conversion functions of every column, spanned on the field type.
pub(super) fn helpers(g: &Gen<'_>) -> TokenStream {
    let p = &g.p;
    g.m.columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = &c.ty;
            let st = g.storage(c);
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
        })
        .collect()
}
