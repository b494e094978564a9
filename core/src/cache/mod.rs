//! The entity cache: an optional second-level cache of rows read by key.
//!
//! An entity opts in with `#[entity(cache)]` or `#[entity(cache(capacity = N, ttl_secs = S))]`;
//! the `[cache]` section of a database's configuration can turn caching off, change an
//! entity's bounds, and name a Redis server through which processes tell each other what
//! they wrote. With the `cache` cargo feature, [`Session::get`](crate::Session::get),
//! [`find`](crate::Session::find) and [`get_many`](crate::Session::get_many) outside a
//! transaction read through an in-process cache (moka: size and TTL bounds, one query per
//! cold key however many threads ask). Without the feature `#[entity(cache)]` changes nothing
//! and a `[cache]` section that asks for caching is refused at open ([`Error::Config`]).
//!
//! What the cache guarantees, and how:
//! - **Rows as stored.** The cache holds the row as the database returned it: encrypted
//!   fields as ciphertext, nothing masked. Access control (row filter, masks) and decryption
//!   run after the cache exactly as after a query. Where a tenant filter exists, the key
//!   includes the principal's tenant.
//! - **Committed data only.** Reads inside a transaction bypass the cache (neither served nor
//!   filled): a transaction may see its own uncommitted writes, or at `REPEATABLE READ` an
//!   older snapshot, neither of which may reach other sessions.
//! - **Invalidated at commit.** The write path records the keys it wrote (whole entities for
//!   set-based writes, cascades and erasure) and evicts them when the transaction commits (at
//!   once for a write outside a transaction); a rolled-back transaction evicts nothing
//!   because it changed nothing. Each entry carries the generation of its key when its load
//!   began; an eviction bumps the generation, so a load that raced with a commit is never
//!   served afterwards.
//! - **Across processes.** With `cache.redis`, commits publish what they evicted and a
//!   subscriber thread per [`Db`](crate::Db) evicts the same in its process. In sync mode
//!   (`invalidation = "sync"`, the default) the commit returns once every process subscribed
//!   when it published has evicted and acknowledged, or after `ack_timeout_ms`; a read that
//!   starts in any process after the commit returned does not see the old row. That holds
//!   after a timeout too: each subscriber pings Redis every quarter of `ack_timeout_ms`, and
//!   a process serves from its cache only while its last answered ping is younger than
//!   `ack_timeout_ms` (Redis answers in order, so the answer proves that everything published
//!   before the ping was applied). A process that did not apply the invalidation in time
//!   (stopped, starved, cut off from Redis) has therefore stopped using its cache when the
//!   writer gives up, until it catches up. While the subscriber is not connected the cache is
//!   bypassed, and it is cleared when it connects. What sync mode cannot cover: a writer that
//!   cannot reach Redis for `ack_timeout_ms` (counted, logged); processes that still reach it
//!   keep the old row until its TTL. In async mode the commit returns once the message is
//!   sent, and other processes see it when it arrives (milliseconds).
//! - **Writes made outside custodian** (raw SQL, other applications) are not seen until the
//!   entry's TTL runs out.

#[cfg(feature = "cache")]
mod redis;
#[cfg(feature = "cache")]
mod resp;
#[cfg(feature = "cache")]
mod store;

#[cfg(feature = "cache")]
pub(crate) use store::{Entry, Store, Table};

pub use crate::entity::CacheSpec;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// The cache of one [`Db`](crate::Db): the store, and the Redis publisher and subscriber
/// when configured. Without the `cache` feature it holds nothing and evicts nothing.
pub(crate) struct Caches {
    #[cfg(feature = "cache")]
    live: Option<Live>,
}

#[cfg(feature = "cache")]
struct Live {
    store: std::sync::Arc<Store>,
    config: CacheConfig,
    publisher: Option<redis::Publisher>,
    /// Stops (and joins) the subscriber thread when the `Db` goes.
    _subscriber: Option<redis::Subscriber>,
}

impl Caches {
    /// The cache `config` asks for. With Redis, waits up to two seconds for the subscriber
    /// to connect; until it has, the cache is bypassed.
    pub(crate) fn open(config: &CacheConfig) -> Result<Self> {
        #[cfg(feature = "cache")]
        {
            if !config.enabled {
                return Ok(Caches { live: None });
            }
            let ack_timeout = Duration::from_millis(config.ack_timeout_ms);
            let lease = config.redis.as_ref().map(|_| ack_timeout);
            let store = std::sync::Arc::new(Store::new(lease));
            let (publisher, subscriber) = match &config.redis {
                Some(url) => {
                    let address =
                        redis_address(url).map_err(|why| Error::config("cache.redis", why))?;
                    let settings = redis::Settings {
                        address,
                        channel: config.channel.clone(),
                        sync: config.invalidation == Invalidation::Sync,
                        ack_timeout,
                    };
                    let (p, s) = redis::start(settings, store.clone(), Duration::from_secs(2));
                    (Some(p), Some(s))
                }
                None => (None, None),
            };
            Ok(Caches {
                live: Some(Live {
                    store,
                    config: config.clone(),
                    publisher,
                    _subscriber: subscriber,
                }),
            })
        }
        #[cfg(not(feature = "cache"))]
        {
            let _ = config;
            Ok(Caches {})
        }
    }

    /// Whether writes must be recorded for eviction at commit.
    pub(crate) fn records_writes(&self) -> bool {
        #[cfg(feature = "cache")]
        {
            self.live.is_some()
        }
        #[cfg(not(feature = "cache"))]
        {
            false
        }
    }

    /// The table cache of `meta` for a read now, made on first use; `None` when the entity
    /// is not cached or the cache is bypassed (subscriber not connected).
    #[cfg(feature = "cache")]
    pub(crate) fn table(
        &self,
        meta: &crate::entity::EntityMeta,
        spec: Option<CacheSpec>,
    ) -> Option<(std::sync::Arc<Table>, String)> {
        let live = self.live.as_ref()?;
        let spec = live.config.spec_for(meta.name, spec)?;
        if !live.store.is_live() {
            return None;
        }
        let id = table_id(meta);
        Some((live.store.table(&id, meta, spec), id))
    }

    /// Evicts what a committed transaction wrote, here and (with Redis) in every process; in
    /// sync mode, returns once every process applied it or the acknowledgement timeout
    /// passed.
    pub(crate) fn evict(&self, touched: &[Touched]) {
        #[cfg(feature = "cache")]
        if let Some(live) = &self.live {
            live.store.evict(touched);
            if let Some(p) = &live.publisher {
                p.publish(touched);
            }
        }
        #[cfg(not(feature = "cache"))]
        let _ = touched;
    }
}

/// The `[databases.NAME.cache]` section.
///
/// ```toml
/// [databases.main.cache]
/// redis = "redis://127.0.0.1:6379"   # evictions reach the other processes
/// invalidation = "sync"              # a commit returns once they applied them (default)
/// ack_timeout_ms = 1000
/// [databases.main.cache.entities.Control]
/// capacity = 50000
/// ttl_secs = 30
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `false` turns every entity cache of this database off.
    pub enabled: bool,
    /// A Redis server (`redis://host:port`) for invalidation across processes.
    pub redis: Option<String>,
    /// The pub/sub channel every process of this database uses.
    pub channel: String,
    /// With `redis`: whether a commit waits until the other processes applied its
    /// invalidation ([`Invalidation::Sync`], the default) or only sends it.
    pub invalidation: Invalidation,
    /// With `redis`: how long a sync commit waits for acknowledgements, and how long a process
    /// keeps using its cache without proof from Redis that it has applied every invalidation
    /// (its lease, in both modes).
    pub ack_timeout_ms: u64,
    /// Bounds per entity name, overriding the entity's own.
    pub entities: BTreeMap<String, EntityCacheConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            redis: None,
            channel: "custodian-cache".into(),
            invalidation: Invalidation::Sync,
            ack_timeout_ms: 1000,
            entities: BTreeMap::new(),
        }
    }
}

/// How a commit's invalidation reaches the other processes ([`CacheConfig::invalidation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Invalidation {
    /// The commit returns once every process subscribed when it was published has evicted
    /// what it wrote, or after `ack_timeout_ms` (when a process that did not has stopped
    /// serving from its cache): a read that starts in any process after the commit returned
    /// does not see the old row. Costs one Redis round trip plus the other processes' work
    /// per commit that wrote a cached entity.
    Sync,
    /// The commit returns once the invalidation is sent: another process may serve the old row
    /// until the message arrives (milliseconds).
    Async,
}

/// One entity's bounds in [`CacheConfig::entities`]; unset values keep the entity's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntityCacheConfig {
    /// Most rows kept; 0 turns this entity's cache off.
    pub capacity: Option<u64>,
    /// Seconds a row is kept.
    pub ttl_secs: Option<u64>,
}

impl CacheConfig {
    /// A configuration with invalidation through the Redis server at `url`.
    pub fn with_redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(url.into());
        self
    }

    /// Whether the section asks for more than the defaults (which a build without the
    /// `cache` feature cannot give).
    pub fn asks_for_caching(&self) -> bool {
        self.redis.is_some() || !self.entities.is_empty()
    }

    /// The bounds of the entity `name` whose own are `spec`; `None`: not cached.
    pub fn spec_for(&self, name: &str, spec: Option<CacheSpec>) -> Option<CacheSpec> {
        let mut spec = spec.filter(|_| self.enabled)?;
        if let Some(over) = self.entities.get(name) {
            if let Some(capacity) = over.capacity {
                spec.capacity = capacity;
            }
            if let Some(ttl) = over.ttl_secs {
                spec.ttl = Duration::from_secs(ttl);
            }
        }
        (spec.capacity > 0 && !spec.ttl.is_zero()).then_some(spec)
    }

    /// Checks the section: a Redis URL custodian can use, and a build that has the cache.
    pub fn validate(&self, at: &str) -> Result<()> {
        let at = if at.is_empty() {
            "cache".to_string()
        } else {
            format!("{at}.cache")
        };
        if !cfg!(feature = "cache") && self.enabled && self.asks_for_caching() {
            return Err(Error::config(
                at,
                "this build has no entity cache: enable custodian's `cache` cargo feature, or \
                 remove the section (or set `enabled = false`)",
            ));
        }
        if let Some(url) = &self.redis {
            redis_address(url).map_err(|why| Error::config(format!("{at}.redis"), why))?;
        }
        if !(1..=60_000).contains(&self.ack_timeout_ms) {
            return Err(Error::config(
                format!("{at}.ack_timeout_ms"),
                "must be between 1 and 60000 (milliseconds)",
            ));
        }
        if self.channel.is_empty() || self.channel.contains(char::is_whitespace) {
            return Err(Error::config(
                format!("{at}.channel"),
                "the channel name must be non-empty and without spaces",
            ));
        }
        Ok(())
    }
}

/// `host:port` of a `redis://host[:port][/]` URL (no password, no database number: the
/// channel carries only table names and keys).
pub(crate) fn redis_address(url: &str) -> std::result::Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if parsed.scheme() != "redis" {
        return Err("the URL must start with redis://".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the Redis URL are not supported".into());
    }
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
        return Err("the Redis URL takes only a host and a port".into());
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the Redis URL has no host")?;
    Ok(format!("{host}:{}", parsed.port().unwrap_or(6379)))
}

/// What a transaction must evict when it commits: rows of one table by key image, or every
/// row of the table (`key: None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Touched {
    /// `schema.table` (or `table`), as [`table_id`] names it.
    pub table: String,
    /// The key image (JSON text), or `None` for the whole table.
    pub key: Option<String>,
}

/// The name the cache and the invalidation messages give a table.
pub(crate) fn table_id(meta: &crate::entity::EntityMeta) -> String {
    match meta.schema {
        Some(schema) => format!("{schema}.{}", meta.table),
        None => meta.table.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_section_parses_and_overrides_bounds() {
        let c: CacheConfig = toml::from_str(
            "redis = \"redis://127.0.0.1:6379\"\n[entities.Control]\ncapacity = 5\nttl_secs = 2\n\
             [entities.Off]\ncapacity = 0\n",
        )
        .unwrap();
        assert_eq!(c.redis.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(
            (c.invalidation, c.ack_timeout_ms),
            (Invalidation::Sync, 1000)
        );
        let a: CacheConfig =
            toml::from_str("invalidation = \"async\"\nack_timeout_ms = 50\n").unwrap();
        assert_eq!(
            (a.invalidation, a.ack_timeout_ms),
            (Invalidation::Async, 50)
        );
        assert!(toml::from_str::<CacheConfig>("invalidation = \"eventually\"").is_err());
        let zero = CacheConfig {
            ack_timeout_ms: 0,
            ..CacheConfig::default()
        };
        let err = zero.validate("databases.main").unwrap_err().to_string();
        assert!(err.contains("ack_timeout_ms"), "{err}");
        let spec = c.spec_for("Control", Some(CacheSpec::DEFAULT)).unwrap();
        assert_eq!((spec.capacity, spec.ttl), (5, Duration::from_secs(2)));
        assert_eq!(c.spec_for("Off", Some(CacheSpec::DEFAULT)), None);
        assert_eq!(
            c.spec_for("Control", None),
            None,
            "config alone does not opt in"
        );
        let off = CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        };
        assert_eq!(off.spec_for("Control", Some(CacheSpec::DEFAULT)), None);
        assert!(toml::from_str::<CacheConfig>("size = 3").is_err());
    }

    #[test]
    fn redis_urls_are_checked() {
        assert_eq!(
            redis_address("redis://127.0.0.1").unwrap(),
            "127.0.0.1:6379"
        );
        assert_eq!(redis_address("redis://cache:7000/").unwrap(), "cache:7000");
        for bad in [
            "http://x",
            "redis://u:p@x",
            "redis://x/3",
            "not a url",
            "redis://x?a=1",
        ] {
            assert!(redis_address(bad).is_err(), "{bad}");
        }
    }

    /// Without the `cache` feature a section that asks for caching is refused at open; with
    /// it, accepted.
    #[test]
    fn a_build_without_the_cache_refuses_a_section_that_asks_for_it() {
        let asks = CacheConfig::default().with_redis("redis://127.0.0.1:6379");
        let checked = asks.validate("databases.main");
        if cfg!(feature = "cache") {
            checked.unwrap();
        } else {
            let err = checked.unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{err:?}");
            assert!(err.to_string().contains("`cache` cargo feature"), "{err}");
        }
        CacheConfig::default().validate("databases.main").unwrap();
    }
}
