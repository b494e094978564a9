//! What the audit trail needs from an entity: JSON images of a row and of a key, the row
//! rebuilt from an image (history, restore), the fields whose value cannot be stored as is
//! (`raw_unstorable`), and the `unaudited` opt-out (`AUDITED = false`).

use super::Gen;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

/// What the audit trail needs: JSON images of the row and of the key, rebuilding a value from
/// an image, and the `unaudited` opt-out.
pub(super) fn audit_fns(g: &Gen<'_>) -> TokenStream {
    let (m, p) = (g.m, &g.p);
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
    let key_image = if let [k] = g.keys.as_slice() {
        let ty = &k.ty;
        quote!(::std::vec![<#ty as #p::ColumnValue>::to_json(key)])
    } else {
        let parts = g.keys.iter().enumerate().map(|(i, c)| {
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
