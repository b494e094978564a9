//! Lifecycle hooks (`#[entity(hooks)]`) and validation.
//!
//! Both hooks go through one function bounded by `custodian::Hooks`, so a missing impl is one
//! error, at the `hooks` flag. With the `validate` flag or a `#[derive(Validate)]` below
//! `#[entity]`, validator's rules are called directly (a missing `Validate` impl is a compile
//! error at that span). Otherwise a `#[derive(Validate)]` above `#[entity]` may already have been
//! expanded out of sight, so the generated code asks the type itself: the rules run whenever it
//! implements `Validate`.

use super::Gen;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

/// `HOOKS`, `raw_before` and `raw_after` of the `Entity` impl, with the `hooks` flag.
pub(super) fn hooks(g: &Gen<'_>) -> Option<TokenStream> {
    let p = &g.p;
    g.m.hooks.map(|span| {
        quote_spanned! {span=>
            const HOOKS: bool = true;

            fn raw_before(&mut self, kind: #p::WriteKind, session: &mut #p::HookSession<'_>) -> ::custodian::Result<()> {
                (__custodian_hooks::<Self>().0)(self, kind, session)
            }

            fn raw_after(&self, kind: #p::WriteKind, session: &mut #p::HookSession<'_>) -> ::custodian::Result<()> {
                (__custodian_hooks::<Self>().1)(self, kind, session)
            }
        }
    })
}

/// The one function bounded by `Hooks` that both hooks go through, with the `hooks` flag.
pub(super) fn hooks_fn(g: &Gen<'_>) -> Option<TokenStream> {
    let p = &g.p;
    g.m.hooks.map(|span| {
        quote_spanned! {span=>
            type __CustodianBefore<E> = fn(&mut E, #p::WriteKind, &mut #p::HookSession<'_>) -> ::custodian::Result<()>;
            type __CustodianAfter<E> = fn(&E, #p::WriteKind, &mut #p::HookSession<'_>) -> ::custodian::Result<()>;
            fn __custodian_hooks<E: #p::Hooks>() -> (__CustodianBefore<E>, __CustodianAfter<E>) {
                (#p::run_before::<E>, #p::run_after::<E>)
            }
        }
    })
}

/// `Entity::validate`.
pub(super) fn validate(g: &Gen<'_>) -> TokenStream {
    let p = &g.p;
    match g.m.validate {
        Some(span) => quote_spanned! {span=>
            fn validate(&self) -> ::core::result::Result<(), ::custodian::ValidationErrors> {
                #p::run_validator(self)
            }

            fn raw_validates() -> bool {
                true
            }
        },
        None => quote! {
            fn validate(&self) -> ::core::result::Result<(), ::custodian::ValidationErrors> {
                #[allow(unused_imports)]
                use #p::{NoValidator as _, RunsValidator as _};
                (&#p::ValidatorProbe(self)).validate_if_derived()
            }

            fn raw_validates() -> bool {
                #[allow(unused_imports)]
                use #p::{HasValidator as _, LacksValidator as _};
                (&#p::ValidatesProbe::<Self>(::core::marker::PhantomData)).validates()
            }
        },
    }
}
