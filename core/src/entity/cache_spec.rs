//! [`CacheSpec`]: the entity cache bounds `#[entity(cache(...))]` declares (see
//! [`crate::cache`]).

use std::time::Duration;

/// An entity's cache bounds, from `#[entity(cache(capacity = N, ttl_secs = S))]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSpec {
    /// Most rows kept (the least recently and frequently used go first).
    pub capacity: u64,
    /// How long a row is kept after it was loaded: the longest a write made outside
    /// custodian stays unseen.
    pub ttl: Duration,
}

impl CacheSpec {
    /// 10 000 rows for 60 seconds.
    pub const DEFAULT: CacheSpec = CacheSpec {
        capacity: 10_000,
        ttl: Duration::from_secs(60),
    };
}
