//! The entity cache opt-in: `CACHE` (the bounds) and `raw_cache_copy`, which needs the struct
//! to be `Clone` (a missing `Clone` is reported at the `cache` keyword).

use super::Gen;
use proc_macro2::TokenStream;
use quote::quote_spanned;

/// Bounds used when `cache` gives none: 10 000 rows for 60 seconds.
const DEFAULT_CAPACITY: u64 = 10_000;
const DEFAULT_TTL_SECS: u64 = 60;

/// `CACHE` and `raw_cache_copy` for `#[entity(cache(...))]`; nothing otherwise.
pub(super) fn cache_fns(g: &Gen<'_>) -> TokenStream {
    let Some(cache) = &g.m.cache else {
        return TokenStream::new();
    };
    let p = &g.p;
    let capacity = cache.capacity.unwrap_or(DEFAULT_CAPACITY);
    let ttl = cache.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    quote_spanned! {cache.span=>
        const CACHE: ::core::option::Option<#p::CacheSpec> =
            ::core::option::Option::Some(#p::CacheSpec {
                capacity: #capacity,
                ttl: ::core::time::Duration::from_secs(#ttl),
            });

        fn raw_cache_copy(&self) -> ::core::option::Option<Self> {
            ::core::option::Option::Some(::core::clone::Clone::clone(self))
        }
    }
}
