//! Reads: diesel queries through the session, entity look-ups by key with the access policy
//! applied, and the rows of audited entities kept for later guarded updates (MariaDB).

use super::*;
use diesel::query_builder::AsQuery;

impl Session {
    /// Loads every row of a diesel query, e.g. `Control::query().filter(...).order(...)`.
    /// Raw: no access policy applies (use [`Session::select`] for entities). On a replica,
    /// outside a transaction, a read cut off with its connection runs again on another host
    /// within the same call.
    #[track_caller]
    pub fn load<T, Q>(&mut self, query: Q) -> Result<Vec<T>>
    where
        Q: AsQuery,
        Rerunnable<Q::Query>: for<'a> LoadQuery<'a, AnyConnection, T>,
    {
        let caller = std::panic::Location::caller();
        let query = Rerunnable::new(query.as_query());
        self.observed(None, "load", caller, |this| {
            this.read_again_elsewhere(|c| query.again().load(c))
        })
    }

    /// [`Session::load`] for callers whose query type is only known to load (a bound of their
    /// own): it runs once, and a read cut off on a replica is not run again.
    #[track_caller]
    pub(super) fn load_once<T, Q>(&mut self, query: Q) -> Result<Vec<T>>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, T>,
    {
        let caller = std::panic::Location::caller();
        self.observed(None, "load", caller, |this| {
            this.run_rows(|c| query.load(c))
        })
    }

    /// [`Session::select`] for callers whose query type is only known to load, as
    /// [`Session::load_once`].
    #[track_caller]
    pub(super) fn select_once<E: Entity, Q>(&mut self, query: Q) -> Result<Vec<E>>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        let caller = std::panic::Location::caller();
        self.observed(Some(&E::META), "select", caller, |this| {
            this.authorize::<E>(Action::Read, None)?;
            let rows: Vec<E> = this.run_rows(|c| query.load(c))?;
            this.visible_all(rows)
        })
    }

    /// Loads the first row of a diesel query, if any. Raw: no access policy applies.
    #[track_caller]
    pub fn first<T, Q>(&mut self, query: Q) -> Result<Option<T>>
    where
        Q: LimitDsl + RunQueryDsl<AnyConnection>,
        diesel::dsl::Limit<Q>: for<'a> LoadQuery<'a, AnyConnection, T>,
    {
        let caller = std::panic::Location::caller();
        self.observed(None, "first", caller, |this| {
            this.run_rows(|c| query.first(c).optional())
        })
    }

    /// Runs a counting query, e.g. `controls::table.filter(...).count()`. Raw: no access
    /// policy applies (use [`Session::count_visible`] for entities).
    #[track_caller]
    pub fn count<Q>(&mut self, query: Q) -> Result<i64>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, i64>,
    {
        let caller = std::panic::Location::caller();
        self.observed(None, "count", caller, |this| {
            this.run(|c| query.get_result(c))
        })
    }

    /// The live entity with this primary key, if it exists (and the principal may see it).
    /// Outside a transaction, a cached entity (`#[entity(cache)]`) is read through the entity
    /// cache; access control and decryption apply to the cached row as to a fresh one.
    #[track_caller]
    pub fn find<E: Entity>(&mut self, key: &E::Key) -> Result<Option<E>> {
        let caller = std::panic::Location::caller();
        self.observed(Some(&E::META), "find", caller, |this| {
            this.find_observed(key)
        })
    }

    /// [`Session::find`] inside its observed context (a `get`'s, or its own).
    fn find_observed<E: Entity>(&mut self, key: &E::Key) -> Result<Option<E>> {
        self.authorize::<E>(Action::Read, Some(key))?;
        let found = self.find_stored::<E>(key)?;
        if let Some(row) = &found {
            self.remember(row);
        }
        Ok(self.visible(found)?.flatten())
    }

    /// Whether this transaction keeps rows read of `E` for guarded updates: audited entities
    /// without encrypted fields, where the backend asks for it
    /// ([`Backend::keeps_rows_for_guarded_updates`](crate::backend::Backend::keeps_rows_for_guarded_updates):
    /// MariaDB; PostgreSQL's update returns the old row itself, and on SQLite a locking read
    /// costs no round trip, less than remembering every read row).
    pub(super) fn guards_updates<E: Entity>(&self) -> bool {
        self.depth > 0
            && E::AUDITED
            && !const { E::META.has_encrypted() }
            && self.db.backend.keeps_rows_for_guarded_updates()
    }

    /// Where a row of `E` with `key` is kept in `seen`.
    pub(super) fn seen_key<E: Entity>(key: &E::Key) -> Option<(&'static str, String)> {
        let key = E::raw_key_image(key).ok()?;
        Some((std::any::type_name::<E>(), key.to_string()))
    }

    /// Keeps `row` as read, for a guarded update of it later in the transaction.
    pub(super) fn keep<E: Entity>(&mut self, row: &E) {
        if let (Some(key), Ok(image)) = (Self::seen_key::<E>(&row.key()), row.raw_image()) {
            self.seen.insert(key, image);
        }
    }

    /// Keeps a row read by key (up to [`SEEN_ROWS`] per transaction).
    pub(super) fn remember<E: Entity>(&mut self, row: &E) {
        if self.guards_updates::<E>() && self.seen.len() < SEEN_ROWS {
            self.keep(row);
        }
    }

    /// Before a bulk update on MariaDB: reads the rows in one statement per chunk of keys and
    /// keeps them (beyond the cap), so that each row's update is a guarded one instead of a
    /// locking read plus the update. The guard, not this read, proves each before image: a row
    /// changed in between (by a hook, a trigger, another writer) falls back to the locking read.
    pub(super) fn prefetch_before_images<E: Entity>(&mut self, rows: &[E]) -> Result<()> {
        if !self.guards_updates::<E>() {
            return Ok(());
        }
        let keys: Vec<E::Key> = rows.iter().map(Entity::key).collect();
        for chunk in keys.chunks(self.db.backend.max_bind_params().max(1)) {
            for row in self.run(|c| E::raw_find_many(Internal::new(), c, chunk))? {
                self.keep(&row);
            }
        }
        Ok(())
    }

    /// The row kept for `key` in this transaction, if any (taken out: an update replaces it).
    pub(super) fn recall<E: Entity>(&mut self, key: &E::Key) -> Option<Image> {
        if self.seen.is_empty() {
            return None;
        }
        self.seen.remove(&Self::seen_key::<E>(key)?)
    }

    /// The entity with this primary key, soft-deleted or not.
    #[track_caller]
    pub fn find_with_deleted<E: Entity>(&mut self, key: &E::Key) -> Result<Option<E>> {
        let caller = std::panic::Location::caller();
        self.observed(Some(&E::META), "find", caller, |this| {
            this.authorize::<E>(Action::Read, Some(key))?;
            let found =
                this.read_again_elsewhere(|c| E::raw_find(Internal::new(), c, key, true))?;
            Ok(this.visible(found)?.flatten())
        })
    }

    /// Loads entities with a diesel query, e.g. `Control::query().filter(...).limit(50)`,
    /// applying access control (tenant scope drops rows, masks apply). Prefer it to
    /// [`Session::load`] for entities when policies are in force. On a replica, outside a
    /// transaction, a read cut off with its connection runs again on another host within the
    /// same call.
    #[track_caller]
    pub fn select<E: Entity, Q>(&mut self, query: Q) -> Result<Vec<E>>
    where
        Q: AsQuery,
        Rerunnable<Q::Query>: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        let caller = std::panic::Location::caller();
        let query = Rerunnable::new(query.as_query());
        self.observed(Some(&E::META), "select", caller, |this| {
            this.authorize::<E>(Action::Read, None)?;
            let rows: Vec<E> = this.read_again_elsewhere(|c| query.again().load(c))?;
            this.visible_all(rows)
        })
    }

    /// The live entity with this primary key; [`Error::NotFound`] if it does not exist.
    #[track_caller]
    pub fn get<E: Entity>(&mut self, key: &E::Key) -> Result<E> {
        let caller = std::panic::Location::caller();
        self.observed(Some(&E::META), "get", caller, |this| {
            this.find_observed::<E>(key)?
                .ok_or_else(|| not_found::<E>(key))
        })
    }

    /// The live entities with these primary keys, in one statement per 30 000 keys (any order;
    /// missing keys are absent). Outside a transaction, a cached entity's rows are taken from
    /// the entity cache where it has them, and the others read and cached.
    #[track_caller]
    pub fn get_many<E: Entity>(&mut self, keys: &[E::Key]) -> Result<Vec<E>> {
        let caller = std::panic::Location::caller();
        self.observed(Some(&E::META), "get_many", caller, |this| {
            this.authorize::<E>(Action::Read, None)?;
            let out = this.find_many_stored::<E>(keys)?;
            this.visible_all(out)
        })
    }
}
