//! `cache` and `cache(capacity, ttl_secs)` set the entity's cache bounds; without `cache` an
//! entity has none.
#![deny(missing_docs)]

use custodian::cache::CacheSpec;
use custodian::{entity, Entity};
use std::time::Duration;

/// Cached with the default bounds.
#[entity(cache)]
#[derive(Debug, Clone)]
pub struct Plain {
    /// Key.
    #[column(primary_key)]
    pub id: i64,
}

/// Cached with its own bounds, encrypted fields included (cached as ciphertext).
#[entity(subject = "owner", cache(capacity = 500, ttl_secs = 5))]
#[derive(Debug, Clone)]
pub struct Bounded {
    /// Key.
    #[column(primary_key)]
    pub id: i64,
    /// Data subject.
    pub owner: String,
    /// Sealed.
    #[column(encrypted)]
    pub body: String,
}

/// Not cached.
#[entity]
#[derive(Debug, Clone)]
pub struct Uncached {
    /// Key.
    #[column(primary_key)]
    pub id: i64,
}

fn main() {
    assert_eq!(Plain::CACHE, Some(CacheSpec::DEFAULT));
    assert_eq!(
        Bounded::CACHE,
        Some(CacheSpec {
            capacity: 500,
            ttl: Duration::from_secs(5)
        })
    );
    assert_eq!(Uncached::CACHE, None);
}
