//! The in-process store: one moka cache per table, with the generations that keep a load
//! which raced with a commit from ever being served.

use super::{CacheSpec, Touched};
use crate::entity::EntityMeta;
use moka::notification::RemovalCause;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Generation counters per table; a key's generation is its stripe's.
const STRIPES: usize = 256;

/// A cached row: the generation of its key when its load began, and the row (a
/// `std::sync::Mutex<E>`, so that any `Send` entity can be shared between threads).
#[derive(Clone)]
pub(crate) struct Entry {
    stamp: (u64, u64),
    row: Arc<dyn Any + Send + Sync>,
}

impl Entry {
    /// A row loaded when its key's generation was `stamp`.
    pub(crate) fn new<E: Send + 'static>(stamp: (u64, u64), row: E) -> Self {
        Entry {
            stamp,
            row: Arc::new(std::sync::Mutex::new(row)),
        }
    }

    /// A copy of the row, when it is an `E` (another entity type mapped to the same table is
    /// not served this one's rows).
    pub(crate) fn row<E: crate::entity::Entity>(&self) -> Option<E> {
        let cell = self.row.downcast_ref::<std::sync::Mutex<E>>()?;
        let row = cell.lock().unwrap_or_else(|e| e.into_inner());
        row.raw_cache_copy()
    }
}

/// One table's cache.
pub(crate) struct Table {
    cache: moka::sync::Cache<String, Entry>,
    /// Bumped by every eviction of the whole table.
    epoch: AtomicU64,
    /// Bumped by every eviction of a key hashing to the stripe.
    stripes: Vec<AtomicU64>,
}

impl Table {
    fn new(meta: &EntityMeta, spec: CacheSpec) -> Self {
        let entity = meta.name;
        let cache = moka::sync::Cache::builder()
            .max_capacity(spec.capacity)
            .time_to_live(spec.ttl)
            .eviction_listener(move |_key, _value, cause| {
                // Replaced entries are not gone; every other cause is an eviction.
                if cause != RemovalCause::Replaced {
                    crate::observe::cache_eviction(entity);
                }
            })
            .build();
        Table {
            cache,
            epoch: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn stripe(&self, key_image: &str) -> &AtomicU64 {
        // FNV-1a: cheap, stable, and good enough to spread keys over the stripes.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key_image.as_bytes() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.stripes[(h % STRIPES as u64) as usize]
    }

    /// The current generation of the key whose image is `key_image`.
    pub(crate) fn stamp(&self, key_image: &str) -> (u64, u64) {
        (
            self.epoch.load(Ordering::Acquire),
            self.stripe(key_image).load(Ordering::Acquire),
        )
    }

    /// The entry under `key`, if it was loaded at the key's current generation; an entry
    /// from an older generation is dropped.
    pub(crate) fn fresh(&self, key: &str, key_image: &str) -> Option<Entry> {
        let entry = self.cache.get(key)?;
        if self.is_current(&entry, key_image) {
            Some(entry)
        } else {
            self.cache.invalidate(key);
            None
        }
    }

    /// Whether `entry` was loaded at the current generation of its key.
    pub(crate) fn is_current(&self, entry: &Entry, key_image: &str) -> bool {
        entry.stamp == self.stamp(key_image)
    }

    /// The entry under `key`, loaded by `load` when absent; concurrent callers for one key
    /// wait for a single load. `Err` when `load` failed (or found no row), for this caller
    /// and every caller that waited for it.
    pub(crate) fn get_or_load<X: Send + Sync + 'static>(
        &self,
        key: String,
        load: impl FnOnce() -> std::result::Result<Entry, X>,
    ) -> std::result::Result<Entry, Arc<X>> {
        self.cache.try_get_with(key, load)
    }

    /// Caches `entry` under `key` (a row read with others, by `get_many`).
    pub(crate) fn insert(&self, key: String, entry: Entry) {
        self.cache.insert(key, entry);
    }

    /// Drops the entry under `key`.
    pub(crate) fn drop_key(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Evicts the key whose image is `key_image` (and its tenant-qualified variants, which
    /// fail the generation check from now on), or the whole table.
    fn evict(&self, key_image: Option<&str>) {
        match key_image {
            Some(image) => {
                self.stripe(image).fetch_add(1, Ordering::AcqRel);
                self.cache.invalidate(image);
            }
            None => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                self.cache.invalidate_all();
            }
        }
    }
}

/// Every table cache of one [`Db`](crate::Db).
pub(crate) struct Store {
    tables: RwLock<HashMap<String, Arc<Table>>>,
    /// `false` while invalidations from other processes cannot arrive (Redis configured, its
    /// subscriber not connected): the cache is bypassed then.
    live: AtomicBool,
    /// With Redis: the cache is used only while the subscriber's last proof of having
    /// applied everything published (see [`Store::synced`]) is younger than this.
    lease: Option<Duration>,
    /// The origin of the times in `synced`.
    base: Instant,
    /// Nanoseconds after `base` up to which every invalidation published has been applied.
    synced: AtomicU64,
}

impl Store {
    /// An empty store: live at once without Redis; with Redis (`lease`), once its subscriber
    /// has subscribed, and while it keeps proving that it is up to date.
    pub(crate) fn new(lease: Option<Duration>) -> Self {
        Store {
            tables: RwLock::new(HashMap::new()),
            live: AtomicBool::new(lease.is_none()),
            lease,
            base: Instant::now(),
            synced: AtomicU64::new(0),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the cache may be used now: without Redis always; with Redis while the
    /// subscriber is connected and its lease runs. A process that stopped hearing from Redis
    /// (stopped, starved, cut off) stops serving from its cache within the lease, before a
    /// writer that waited for it gives up.
    pub(crate) fn is_live(&self) -> bool {
        if !self.live.load(Ordering::Acquire) {
            return false;
        }
        match self.lease {
            None => true,
            Some(lease) => {
                let since = self.nanos(Instant::now());
                let synced = self.synced.load(Ordering::Acquire);
                since.saturating_sub(synced) < u64::try_from(lease.as_nanos()).unwrap_or(u64::MAX)
            }
        }
    }

    /// Records that every invalidation published before `at` has been applied (`at`: when
    /// the `PING` Redis just answered, or the `SUBSCRIBE`, was sent).
    pub(crate) fn synced(&self, at: Instant) {
        self.synced.fetch_max(self.nanos(at), Ordering::AcqRel);
    }

    /// Marks the subscriber connected (after clearing everything: evictions may have been
    /// missed) or disconnected.
    pub(crate) fn set_live(&self, live: bool) {
        if live {
            self.evict_everything();
        }
        self.live.store(live, Ordering::Release);
        if !live {
            self.evict_everything();
        }
    }

    /// The cache of `meta`'s table, made on first use with `spec`.
    pub(crate) fn table(&self, id: &str, meta: &EntityMeta, spec: CacheSpec) -> Arc<Table> {
        if let Some(t) = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return t.clone();
        }
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        tables
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Table::new(meta, spec)))
            .clone()
    }

    /// Evicts what a committed transaction wrote.
    pub(crate) fn evict(&self, touched: &[Touched]) {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        for t in touched {
            if let Some(table) = tables.get(&t.table) {
                table.evict(t.key.as_deref());
            }
        }
    }

    /// Evicts every table.
    pub(crate) fn evict_everything(&self) {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        for table in tables.values() {
            table.evict(None);
        }
    }
}
