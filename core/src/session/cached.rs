//! The entity cache on the session's side: reads by key through the cache (outside
//! transactions only), and the record of what was written, evicted when it commits. See
//! [`crate::cache`] for the rules.

use super::*;
use crate::cache::{table_id, Touched};

impl Session {
    /// Whether a read may use the entity cache now: outside any transaction, custodian's or
    /// raw. Inside one, a read may see the transaction's own uncommitted writes or, at
    /// `REPEATABLE READ`, a snapshot older than the cache; neither may fill nor be served
    /// from it.
    #[cfg(feature = "cache")]
    fn reads_through_cache<E: Entity>(&mut self) -> bool {
        E::CACHE.is_some() && self.depth == 0 && !self.in_any_transaction()
    }

    /// The cache key of the row whose key image is `image`: with the principal's tenant in
    /// front where a tenant filter applies to `E`, so no entry is shared across tenants.
    #[cfg(feature = "cache")]
    fn cache_key<E: Entity>(&self, image: &str) -> String {
        match &self.access {
            Some(ac) if ac.has_row_scope(&E::META) => {
                let tenant = self
                    .principal
                    .as_deref()
                    .and_then(|p| p.tenant.as_deref())
                    .unwrap_or("");
                format!("{tenant}\u{1f}{image}")
            }
            _ => image.to_string(),
        }
    }

    /// The stored live row of `E` with `key` (no access control applied yet), through the
    /// entity cache when `E` is cached and no transaction is open.
    pub(super) fn find_stored<E: Entity>(&mut self, key: &E::Key) -> Result<Option<E>> {
        #[cfg(feature = "cache")]
        if self.reads_through_cache::<E>() {
            if let Some((table, _)) = self.db.cache.table(&E::META, E::CACHE) {
                return self.find_through::<E>(&table, key);
            }
        }
        self.read_again_elsewhere(|c| E::raw_find(Internal::new(), c, key, false))
    }

    /// [`Session::find_stored`] through `table`: a current entry, or one load for however
    /// many callers ask for the key at once.
    #[cfg(feature = "cache")]
    fn find_through<E: Entity>(
        &mut self,
        table: &crate::cache::Table,
        key: &E::Key,
    ) -> Result<Option<E>> {
        /// Why a load put nothing in the cache.
        enum NotCached {
            Absent,
            Failed,
        }
        let image = E::raw_key_image(key).map_err(image_error::<E>)?.to_string();
        let k = self.cache_key::<E>(&image);
        if let Some(row) = table.fresh(&k, &image).and_then(|e| e.row::<E>()) {
            crate::observe::cache_hit(E::META.name);
            return Ok(Some(row));
        }
        crate::observe::cache_miss(E::META.name);
        let mut mine: Option<Result<Option<E>>> = None;
        let loaded = table.get_or_load(k.clone(), || {
            // The generation before the query: an eviction while it runs makes the entry
            // fail the check on every later read.
            let stamp = table.stamp(&image);
            let found = self.read_again_elsewhere(|c| E::raw_find(Internal::new(), c, key, false));
            let entry = match &found {
                Ok(Some(row)) => row
                    .raw_cache_copy()
                    .map(|copy| crate::cache::Entry::new(stamp, copy))
                    .ok_or(NotCached::Failed),
                Ok(None) => Err(NotCached::Absent),
                Err(_) => Err(NotCached::Failed),
            };
            mine = Some(found);
            entry
        });
        if let Some(found) = mine {
            // Loaded by this caller: what the database returned just now.
            return found;
        }
        // Another caller's load, which this one waited for.
        match loaded {
            Ok(entry) if table.is_current(&entry, &image) => {
                if let Some(row) = entry.row::<E>() {
                    return Ok(Some(row));
                }
            }
            Ok(_) => table.drop_key(&k),
            Err(why) if matches!(*why, NotCached::Absent) => return Ok(None),
            Err(_) => {}
        }
        self.read_again_elsewhere(|c| E::raw_find(Internal::new(), c, key, false))
    }

    /// The stored live rows of `E` with these keys (any order, missing keys absent), through
    /// the entity cache when `E` is cached and no transaction is open: the keys not cached
    /// are read in one statement per chunk and cached.
    pub(super) fn find_many_stored<E: Entity>(&mut self, keys: &[E::Key]) -> Result<Vec<E>> {
        #[cfg(feature = "cache")]
        if self.reads_through_cache::<E>() {
            if let Some((table, _)) = self.db.cache.table(&E::META, E::CACHE) {
                return self.find_many_through::<E>(&table, keys);
            }
        }
        self.find_many_uncached::<E>(keys)
    }

    fn find_many_uncached<E: Entity>(&mut self, keys: &[E::Key]) -> Result<Vec<E>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(self.db.backend.max_bind_params().max(1)) {
            out.extend(self.run_rows(|c| E::raw_find_many(Internal::new(), c, chunk))?);
        }
        Ok(out)
    }

    #[cfg(feature = "cache")]
    fn find_many_through<E: Entity>(
        &mut self,
        table: &crate::cache::Table,
        keys: &[E::Key],
    ) -> Result<Vec<E>> {
        let mut out = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        // Key image -> (cache key, generation before the query).
        let mut pending: HashMap<String, (String, (u64, u64))> = HashMap::new();
        for key in keys {
            let image = E::raw_key_image(key).map_err(image_error::<E>)?.to_string();
            if pending.contains_key(&image) {
                continue;
            }
            let k = self.cache_key::<E>(&image);
            match table.fresh(&k, &image).and_then(|e| e.row::<E>()) {
                Some(row) => {
                    crate::observe::cache_hit(E::META.name);
                    out.push(row);
                    pending.insert(image, (String::new(), (u64::MAX, u64::MAX)));
                }
                None => {
                    crate::observe::cache_miss(E::META.name);
                    let stamp = table.stamp(&image);
                    pending.insert(image, (k, stamp));
                    missing.push(key.clone());
                }
            }
        }
        for row in self.find_many_uncached::<E>(&missing)? {
            let image = E::raw_key_image(&row.key())
                .map_err(image_error::<E>)?
                .to_string();
            if let (Some((k, stamp)), Some(copy)) = (pending.get(&image), row.raw_cache_copy()) {
                if !k.is_empty() {
                    table.insert(k.clone(), crate::cache::Entry::new(*stamp, copy));
                }
            }
            out.push(row);
        }
        Ok(out)
    }

    /// Records that rows of `E` with these keys were written: evicted from the entity cache
    /// when the transaction commits, or now when no transaction is open.
    pub(super) fn touch_keys<'k, E: Entity>(&mut self, keys: impl IntoIterator<Item = &'k E::Key>) {
        if E::CACHE.is_none() || !self.db.cache.records_writes() {
            return;
        }
        let table = table_id(&E::META);
        for key in keys {
            let key = E::raw_key_image(key).ok().map(|k| k.to_string());
            let whole = key.is_none();
            self.touched.push(Touched {
                table: table.clone(),
                key,
            });
            if whole {
                break;
            }
        }
        self.evict_if_committed();
    }

    /// Records that any row of `meta`'s table may have been written (set-based writes,
    /// cascades, erasure).
    pub(super) fn touch_table(&mut self, meta: &EntityMeta) {
        if !self.db.cache.records_writes() {
            return;
        }
        self.touched.push(Touched {
            table: table_id(meta),
            key: None,
        });
        self.evict_if_committed();
    }

    /// Records a hard delete of `E` rows: the tables whose rows the database deletes or
    /// changes with them (cascading foreign keys, transitively) are evicted too.
    pub(super) fn touch_dependents<E: Entity>(&mut self) {
        if !self.db.cache.records_writes() {
            return;
        }
        for meta in super::cascade::dependents(&self.known_entities(), &E::META) {
            self.touch_table(&meta);
        }
    }

    /// Records an erasure: every table with encrypted fields is evicted.
    pub(super) fn touch_encrypted(&mut self) {
        if !self.db.cache.records_writes() {
            return;
        }
        for meta in self.known_entities() {
            if meta.has_encrypted() {
                self.touch_table(&meta);
            }
        }
    }

    /// Evicts what was recorded when no transaction is open (the write committed by itself).
    fn evict_if_committed(&mut self) {
        if self.depth == 0 && !self.in_any_transaction() {
            self.evict_touched();
        }
    }

    /// Evicts what the transaction that just committed wrote, here and in every process.
    pub(super) fn evict_touched(&mut self) {
        if self.touched.is_empty() {
            return;
        }
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_by(|a, b| (&a.table, &a.key).cmp(&(&b.table, &b.key)));
        touched.dedup();
        self.db.cache.evict(&touched);
    }
}
