//! The primary key as the generated code handles it: its Rust type (`Entity::Key`, the field
//! type or a tuple of them for a composite key), a clone of it out of the entity, and its stored
//! form for `find`, which a single key binds as the value and a composite key as a tuple.

use super::Gen;
use proc_macro2::TokenStream;
use quote::quote;

/// `Entity::Key`: the key field's type, or the tuple of the key fields' types.
pub(super) fn key_ty(g: &Gen<'_>) -> TokenStream {
    if let [k] = g.keys.as_slice() {
        let ty = &k.ty;
        quote!(#ty)
    } else {
        let tys = g.keys.iter().map(|c| &c.ty);
        quote!((#(#tys,)*))
    }
}

/// The body of `Entity::key`: the key cloned out of `self`.
pub(super) fn key_clone(g: &Gen<'_>) -> TokenStream {
    if let [k] = g.keys.as_slice() {
        let f = &k.ident;
        quote!(::core::clone::Clone::clone(&self.#f))
    } else {
        let key_idents = g.keys.iter().map(|c| &c.ident);
        quote!((#(::core::clone::Clone::clone(&self.#key_idents),)*))
    }
}

/// `key` (a `&Self::Key`) in stored form.
pub(super) fn key_storage(g: &Gen<'_>) -> TokenStream {
    if let [k] = g.keys.as_slice() {
        g.to_storage(k, quote!(key))
    } else {
        let stored = g.keys.iter().enumerate().map(|(i, c)| {
            let i = syn::Index::from(i);
            g.to_storage(c, quote!(&key.#i))
        });
        quote!((#(#stored,)*))
    }
}

/// The key of `entity` (a `&Self`) in stored form, bound by reference where possible.
pub(super) fn entity_key_storage(g: &Gen<'_>) -> TokenStream {
    if let [k] = g.keys.as_slice() {
        let f = &k.ident;
        g.bind(k, quote!(&entity.#f))
    } else {
        let from_entity = g.keys.iter().map(|c| {
            let f = &c.ident;
            g.bind(c, quote!(&entity.#f))
        });
        quote!((#(#from_entity,)*))
    }
}
