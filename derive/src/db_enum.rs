//! Code generation for `#[derive(DbEnum)]`: a field-less enum stored as the name of its variant.
//!
//! Each variant is stored under its identifier as written, or under
//! `#[db_enum(name = "...")]`. The derive implements `DbEnum` (the name table) and
//! `ColumnValue` (a `Text` column holding the name, restricted by `ALLOWED` to the stored names,
//! which `#[entity]` turns into a check constraint).

use crate::attrs::{combine, variant_name};
use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields};

/// Expands `#[derive(DbEnum)]` on `input`.
pub(crate) fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let data = match &input.data {
        Data::Enum(e) => e,
        Data::Struct(s) => {
            return Err(syn::Error::new_spanned(
                s.struct_token,
                "`DbEnum` can only be derived for an enum whose variants have no fields",
            ))
        }
        Data::Union(u) => {
            return Err(syn::Error::new_spanned(
                u.union_token,
                "`DbEnum` can only be derived for an enum whose variants have no fields",
            ))
        }
    };
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "`DbEnum` cannot be derived for an enum with generic parameters or lifetimes",
        ));
    }
    let ident = &input.ident;
    if data.variants.is_empty() {
        return Err(syn::Error::new_spanned(
            ident,
            format!("`{ident}` has no variants: a `DbEnum` needs at least one"),
        ));
    }

    let mut errors: Option<syn::Error> = None;
    let mut names: Vec<(String, proc_macro2::Span)> = Vec::new();
    let mut variants = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            combine(
                &mut errors,
                syn::Error::new_spanned(
                    &v.fields,
                    format!(
                        "variant `{}` has fields: a `DbEnum` variant must be a plain name",
                        v.ident
                    ),
                ),
            );
            continue;
        }
        let (name, span) = match variant_name(&v.attrs) {
            Ok(Some(lit)) => (lit.value(), lit.span()),
            Ok(None) => (v.ident.unraw().to_string(), v.ident.span()),
            Err(e) => {
                combine(&mut errors, e);
                continue;
            }
        };
        if let Some((_, _)) = names.iter().find(|(n, _)| *n == name) {
            combine(
                &mut errors,
                syn::Error::new(
                    span,
                    format!("duplicate stored name `{name}`: another variant is already stored under it"),
                ),
            );
            continue;
        }
        names.push((name.clone(), span));
        variants.push((&v.ident, name));
    }
    if let Some(e) = errors {
        return Err(e);
    }

    let p = quote!(::custodian::__private);
    let paths: Vec<TokenStream> = variants.iter().map(|(v, _)| quote!(#ident::#v)).collect();
    let strs: Vec<&String> = variants.iter().map(|(_, n)| n).collect();
    Ok(quote! {
        #[automatically_derived]
        #[allow(clippy::all, clippy::pedantic, clippy::nursery)]
        impl #p::DbEnum for #ident {
            const VARIANTS: &'static [(&'static str, Self)] = &[#((#strs, #paths),)*];

            fn as_str(&self) -> &'static str {
                match self {
                    #(#paths => #strs,)*
                }
            }

            fn from_name(name: &str) -> ::core::option::Option<Self> {
                match name {
                    #(#strs => ::core::option::Option::Some(#paths),)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        #[automatically_derived]
        #[allow(clippy::all, clippy::pedantic, clippy::nursery)]
        impl #p::ColumnValue for #ident {
            type SqlType = #p::diesel::sql_types::Text;
            type Storage = ::std::string::String;
            const KIND: #p::ColumnKind = #p::ColumnKind::Enum;
            const ALLOWED: ::core::option::Option<&'static [&'static str]> =
                ::core::option::Option::Some(&[#(#strs),*]);

            fn to_storage(&self) -> Self::Storage {
                ::std::borrow::ToOwned::to_owned(<Self as #p::DbEnum>::as_str(self))
            }

            fn from_storage(stored: Self::Storage) -> ::core::result::Result<Self, #p::DecodeError> {
                #p::decode_enum::<Self>(&stored)
            }
        }
    })
}
