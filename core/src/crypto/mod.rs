//! Field encryption and crypto-shredding.
//!
//! Mark personal fields `#[column(encrypted)]` and name the entity's data subject with
//! `#[entity(subject = "field")]`: the write path seals those fields (`String` or
//! `Option<String>`) under the subject's data key before any SQL, and every entity read path
//! (`get`, `find`, `select`, relations, history, as-of) opens them, or reads [`ERASED`] once the
//! subject was erased. `#[column(blind_index = "field")]` on another text field keeps a keyed
//! hash of the plaintext for equality lookups ([`Crypto::blind_index`] with the field's column
//! name). `Session::load` and the raw connection return ciphertext.
//!
//! For other types, or to seal explicitly, a field of type [`Sealed<T>`] holds AES-256-GCM ciphertext of a `T` under the *data key* of
//! one data subject (a customer, a patient: whatever must be erasable as a unit). Data keys are
//! random, one per subject, and stored only *wrapped* (encrypted) under a master key in
//! `custodian_subject_keys`; master keys come from configuration and never touch the database.
//!
//! - [`Crypto::seal`] / [`Crypto::open`]: encrypt and decrypt a value of a subject. Sealing is
//!   explicit, in application code, because only the application knows the subject and holds
//!   the keys; the write path stores, audits and hashes the ciphertext like any text.
//! - [`Crypto::erase_subject`]: crypto-shredding. The subject's data key is deleted and the
//!   erasure recorded in the audit trail; every value sealed under it, in live rows, in history
//!   and in audit images, is unreadable from then on, and the audit chain still verifies
//!   because it hashed the ciphertext.
//! - [`Crypto::rotate`]: re-wraps data keys from older master keys to the active one, in
//!   batches, each its own transaction; resumable and idempotent. Values are not re-encrypted.
//! - [`Crypto::blind_index`]: a keyed hash of a value for equality lookups on an indexed column
//!   stored next to the sealed one.
//!
//! ```
//! use custodian_core::crypto::{KeyRing, Sealed};
//! let ring = KeyRing::new([("k1".to_string(), [7u8; 32])], "k1", None).unwrap();
//! assert_eq!(format!("{ring:?}"), r#"KeyRing { ids: ["k1"], active: "k1", index_key: "k1" }"#);
//! ```
//!
//! The README's "Field encryption and crypto-shredding" section states the guarantees and their
//! limits, for developers and for auditors.

pub(crate) mod fields;
mod keys;
mod sealed;
pub mod store;

pub use crate::config::CryptoConfig;
pub use fields::ERASED;
pub use keys::KeyRing;
pub use sealed::{Sealable, Sealed};

use crate::audit::AuditOp;
use crate::context::Context;
use crate::error::{Error, IntegrityKind, Result};
use crate::principal::Principal;
use crate::sql_types::StoredDatetime;
use crate::tx::TxOptions;
use hmac::{Hmac, Mac};
use keys::KeyBytes;
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::KeyRow;

/// What key management needs from a session beyond SQL: the database's keys, who acts,
/// whether they may erase, and the audit trail of refusals and key changes.
/// Implemented by [`Session`](crate::Session) only.
pub trait KeyContext: Context {
    /// The field-encryption handle of the session's database ([`Error::Config`] when no
    /// master key is configured).
    fn crypto(&self) -> Result<Crypto>;
    /// The acting principal, if any.
    fn principal(&self) -> Option<&Principal>;
    /// Whether the access policy (if any) lets the principal erase data subjects.
    fn may_erase(&self) -> bool;
    /// A `Forbidden` error for `action` on `what`, after recording the refusal in the audit
    /// trail (`entity` and `entity_key` as the trail names them).
    fn refuse(
        &mut self,
        what: &str,
        entity: String,
        entity_key: String,
        action: &str,
        why: &str,
    ) -> Error;
    /// Records, in the open transaction, that the principal changed the row `entity_key` of
    /// `entity` (images as JSON text).
    fn record_change(
        &mut self,
        entity: String,
        entity_key: String,
        op: AuditOp,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<()>;
    /// A subject's data key was destroyed: rows of entities with encrypted fields leave the
    /// entity cache when the erasure commits.
    fn subject_erased(&mut self);
}

/// The crypto handle of a database: the master key ring and a short-lived cache of unwrapped
/// data keys. Cheap to clone. Get it from [`Db::crypto`](crate::Db::crypto) or
/// [`Session::crypto`](crate::Session::crypto).
#[derive(Clone)]
pub struct Crypto {
    inner: Arc<Inner>,
}

struct Inner {
    ring: KeyRing,
    cache_ttl: Duration,
    /// Unwrapped data keys by data key id, with their subject and when they were loaded.
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    subject: String,
    key: KeyBytes,
    loaded: Instant,
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypto")
            .field("ring", &self.inner.ring)
            .field("cache_ttl", &self.inner.cache_ttl)
            .finish()
    }
}

/// What [`Crypto::rotate`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Data keys re-wrapped under the active master key by this call.
    pub rewrapped: usize,
    /// Transactions committed (one per batch that found work).
    pub batches: usize,
}

fn now_utc() -> chrono::NaiveDateTime {
    crate::value::ColumnValue::to_storage(&chrono::Utc::now()).0
}

impl Crypto {
    /// A handle over `ring`. Unwrapped data keys are reused for opening values for
    /// `cache_ttl`. (Key-change records are sealed by the session that records them, with the
    /// database's audit key.)
    pub fn new(ring: KeyRing, cache_ttl: Duration) -> Crypto {
        Crypto {
            inner: Arc::new(Inner {
                ring,
                cache_ttl,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The handle configured by `config` (`crypto` section); `None` when no
    /// master key is configured.
    pub fn from_config(config: &crate::config::DatabaseConfig) -> Result<Option<Crypto>> {
        let Some(ring) = KeyRing::from_config(&config.crypto)? else {
            return Ok(None);
        };
        Ok(Some(Crypto::new(
            ring,
            Duration::from_millis(config.crypto.cache_ttl_ms),
        )))
    }

    /// The master key ring (ids only are visible).
    pub fn key_ring(&self) -> &KeyRing {
        &self.inner.ring
    }

    /// Forgets every cached data key (the next open reads keys from the database again).
    pub fn clear_cache(&self) {
        self.cache().clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // A panic while holding the lock cannot leave the map inconsistent: use it anyway.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, key_id: &str) -> Option<(String, KeyBytes)> {
        let ttl = self.inner.cache_ttl;
        if ttl.is_zero() {
            return None;
        }
        let mut cache = self.cache();
        match cache.get(key_id) {
            Some(c) if c.loaded.elapsed() < ttl => Some((c.subject.clone(), c.key.clone())),
            Some(_) => {
                cache.remove(key_id);
                None
            }
            None => None,
        }
    }

    fn remember(&self, row: &KeyRow, key: &KeyBytes) {
        if self.inner.cache_ttl.is_zero() {
            return;
        }
        self.cache().insert(
            row.data_key_id.clone(),
            Cached {
                subject: row.subject.clone(),
                key: key.clone(),
                loaded: Instant::now(),
            },
        );
    }

    /// Unwraps the data key of `row` (from the cache when fresh).
    fn unwrap_row(&self, row: &KeyRow) -> Result<KeyBytes> {
        if let Some((subject, key)) = self.cached(&row.data_key_id) {
            if subject == row.subject {
                return Ok(key);
            }
        }
        let key = self.unwrap_stored(row)?;
        self.remember(row, &key);
        Ok(key)
    }

    /// Unwraps the data key of `row` with its master key from the ring (never from the cache).
    fn unwrap_stored(&self, row: &KeyRow) -> Result<KeyBytes> {
        let master = self.inner.ring.get(&row.master_key_id)?;
        keys::unwrap(
            master,
            &row.master_key_id,
            &row.data_key_id,
            &row.subject,
            &row.wrapped,
        )
    }

    /// The data key of `subject`, created (and wrapped under the active master key) if the
    /// subject has none yet. Runs in the session's transaction, or a transaction of its own.
    fn subject_key(&self, s: &mut impl KeyContext, subject: &str) -> Result<(String, KeyBytes)> {
        if let Some(row) = s.run(|c| store::by_subject(c, subject, false))? {
            return Ok((row.data_key_id.clone(), self.unwrap_row(&row)?));
        }
        if s.principal().is_none() {
            return Err(needs_principal("creating a data subject's key"));
        }
        let key: KeyBytes = zeroize::Zeroizing::new(keys::random::<32>()?);
        let data_key_id = hex::encode(keys::random::<16>()?);
        let ring = &self.inner.ring;
        let row = KeyRow {
            subject: subject.to_string(),
            wrapped: keys::wrap(
                ring.active_key(),
                ring.active_id(),
                &data_key_id,
                subject,
                &key,
            )?,
            data_key_id,
            master_key_id: ring.active_id().to_string(),
            created_at: StoredDatetime(now_utc()),
        };
        // A savepoint inside a transaction, so a lost race does not abort the caller's.
        let inserted = s.transaction_with(&TxOptions::new().immediate().no_retry(), |tx| {
            tx.run(|c| store::insert(c, &row))?;
            self.record_key_change(tx, AuditOp::Insert, subject, None, Some(&row))
        });
        match inserted {
            Ok(_) => {
                self.remember(&row, &key);
                Ok((row.data_key_id, key))
            }
            // Another writer created the subject's key first: use theirs.
            Err(Error::Conflict { .. }) | Err(Error::Constraint { .. }) => {
                let row = s
                    .run(|c| store::by_subject(c, subject, true))?
                    .ok_or_else(|| {
                        Error::integrity(
                            IntegrityKind::Crypto,
                            format!(
                                "the data key of a subject could not be created or found ({})",
                                store::SUBJECT_KEYS.table
                            ),
                        )
                    })?;
                Ok((row.data_key_id.clone(), self.unwrap_row(&row)?))
            }
            Err(e) => Err(e),
        }
    }

    /// Encrypts `value` under the data key of `subject`, creating the key on the subject's
    /// first value; the creation is an audited `insert` of the key row and needs an acting
    /// principal ([`Error::Forbidden`] otherwise). Use an opaque subject id (a customer number,
    /// a UUID), never personal data itself: the id stays in the key table while the subject
    /// exists and in the audit records of its key.
    pub fn seal<T: Sealable>(
        &self,
        s: &mut impl KeyContext,
        subject: &str,
        value: &T,
    ) -> Result<Sealed<T>> {
        if subject.is_empty() {
            return Err(Error::config(
                "subject",
                "a data subject id cannot be empty",
            ));
        }
        let (id, key) = self.subject_key(s, subject)?;
        sealed::seal_with(&key, &id, value)
    }

    /// Decrypts a sealed value. [`Error::Forbidden`] when its subject was erased (the data key
    /// is gone), [`Error::Integrity`] when the value or its wrapped key was altered or the
    /// master key is wrong, [`Error::Config`] when the master key that wrapped it is not in the
    /// ring.
    pub fn open<T: Sealable>(&self, s: &mut impl KeyContext, sealed: &Sealed<T>) -> Result<T> {
        self.open_checked(s, None, sealed)
    }

    /// [`Crypto::open`] that also checks the value belongs to `subject`: a ciphertext copied
    /// from another subject's row is [`Error::Integrity`].
    pub fn open_for<T: Sealable>(
        &self,
        s: &mut impl KeyContext,
        subject: &str,
        sealed: &Sealed<T>,
    ) -> Result<T> {
        self.open_checked(s, Some(subject), sealed)
    }

    fn open_checked<T: Sealable>(
        &self,
        s: &mut impl KeyContext,
        expected: Option<&str>,
        sealed: &Sealed<T>,
    ) -> Result<T> {
        let id = sealed.key_id();
        let (subject, key) = match self.cached(id) {
            Some(hit) => hit,
            None => {
                let row = s.run(|c| store::by_key_id(c, id))?.ok_or_else(|| {
                    Error::Forbidden(format!(
                        "the value cannot be opened: its data key {id} was erased \
                         (crypto-shredded), or the value belongs to another database"
                    ))
                })?;
                (row.subject.clone(), self.unwrap_row(&row)?)
            }
        };
        if let Some(expected) = expected {
            if expected != subject {
                return Err(Error::integrity(
                    IntegrityKind::Ciphertext,
                    format!("the value sealed under data key {id} belongs to another subject"),
                ));
            }
        }
        sealed::open_with(&key, sealed)
    }

    /// The keyed hash of `value` for `column` (hex HMAC-SHA-256 under a key derived from the
    /// ring's index key): deterministic, so an indexed text column holding it supports equality
    /// lookups on a sealed value. Normalise the value first (case, spaces) if lookups should
    /// ignore such differences. It does not depend on the subject and survives erasure.
    pub fn blind_index(&self, column: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.inner.ring.index_key())
            .expect("HMAC takes any key");
        mac.update(&keys::aad("custodian-blind-index-v1", &[column, value]));
        hex::encode(mac.finalize().into_bytes())
    }

    /// Crypto-shredding: destroys the data key of `subject` (a hard delete of its row in
    /// `custodian_subject_keys`) and records an `erase` audit record (entity
    /// `custodian_subject_keys`, key `["<subject>"]`, actor the session's principal, the
    /// deleted row without its wrapped key as the before image), in one transaction (a
    /// savepoint inside the caller's). Returns whether a key existed; erasing an unknown or
    /// already erased subject changes nothing. Needs an acting principal
    /// ([`Error::Forbidden`] otherwise). An erasure outside a transaction also rewrites the key
    /// table's storage, so the deleted row is not left in the database's files (`VACUUM FULL`
    /// on PostgreSQL, `OPTIMIZE TABLE` on MariaDB, a truncating WAL checkpoint on SQLite, whose
    /// `secure_delete` zeroes deleted rows).
    pub fn erase_subject(&self, s: &mut impl KeyContext, subject: &str) -> Result<bool> {
        match s.principal() {
            None => return Err(needs_principal("erasing a subject")),
            Some(principal) => principal.check()?,
        }
        if !s.may_erase() {
            // Refused, and recorded as a `denied` record naming the subject.
            return Err(s.refuse(
                "data subjects",
                crate::schema::display_name(&store::SUBJECT_KEYS),
                key_of(subject),
                "erase",
                "only roles named by AccessControl::erase_for may erase data subjects",
            ));
        }
        let erased = s.transaction_with(&TxOptions::new().immediate(), |tx| {
            let Some(row) = tx.run(|c| store::by_subject(c, subject, true))? else {
                return Ok(None);
            };
            tx.run(|c| store::delete(c, subject))?;
            self.record_key_change(tx, AuditOp::Erase, subject, Some(&row), None)?;
            Ok(Some(row.data_key_id))
        })?;
        if erased.is_some() {
            s.subject_erased();
        }
        // Forget the key here too (other processes forget it within the cache TTL).
        self.cache().retain(|_, c| c.subject != subject);
        if erased.is_some() {
            flush_erasure(s)?;
        }
        Ok(erased.is_some())
    }

    /// Records a change of `custodian_subject_keys` (creation, re-wrap, erasure) in `tx`'s
    /// transaction: entity `custodian_subject_keys`, key `["<subject>"]`, images without the
    /// wrapped key. Rolled back with the change.
    fn record_key_change(
        &self,
        tx: &mut impl KeyContext,
        op: AuditOp,
        subject: &str,
        before: Option<&KeyRow>,
        after: Option<&KeyRow>,
    ) -> Result<()> {
        tx.principal()
            .ok_or_else(|| needs_principal("changing a data subject's key"))?
            .check()?;
        tx.record_change(
            crate::schema::display_name(&store::SUBJECT_KEYS),
            key_of(subject),
            op,
            before.map(key_image),
            after.map(key_image),
        )
    }

    /// How many data keys are still wrapped under a master key other than the active one.
    pub fn pending_rotation(&self, s: &mut impl KeyContext) -> Result<i64> {
        let active = self.inner.ring.active_id();
        s.run(|c| store::count_not_under(c, active))
    }

    /// Re-wraps up to `batch_size` data keys from older master keys to the active one, in one
    /// transaction; returns how many were re-wrapped (0: nothing left). Values stay as they are
    /// (the data keys do not change). Each re-wrap is an audited `update` of the key row, so it
    /// needs an acting principal ([`Error::Forbidden`] otherwise).
    pub fn rotate_batch(&self, s: &mut impl KeyContext, batch_size: usize) -> Result<usize> {
        if s.principal().is_none() {
            return Err(needs_principal("re-wrapping data keys"));
        }
        let limit = i64::try_from(batch_size.max(1)).unwrap_or(i64::MAX);
        let ring = &self.inner.ring;
        let active = ring.active_id();
        s.transaction_with(&TxOptions::new().immediate(), |tx| {
            let rows = tx.run(|c| store::not_under(c, active, limit))?;
            let mut n = 0;
            for row in &rows {
                let key = self.unwrap_stored(row)?;
                let wrapped = keys::wrap(
                    ring.active_key(),
                    active,
                    &row.data_key_id,
                    &row.subject,
                    &key,
                )?;
                let m = tx.run(|c| {
                    store::rewrap(c, &row.subject, &row.master_key_id, active, &wrapped)
                })?;
                if m > 0 {
                    let after = KeyRow {
                        master_key_id: active.to_string(),
                        wrapped,
                        ..row.clone()
                    };
                    self.record_key_change(
                        tx,
                        AuditOp::Update,
                        &row.subject,
                        Some(row),
                        Some(&after),
                    )?;
                }
                n += m;
            }
            Ok(n)
        })
    }

    /// Master key rotation: re-wraps every data key not under the active master key, in batches
    /// of `batch_size`, each batch its own transaction (run it outside a transaction; inside
    /// one, batches are savepoints). Progress is the data itself (rows whose master key is not
    /// the active one), so after a crash simply run it again; running it when nothing is left
    /// does nothing. A master key missing from the ring stops it with [`Error::Config`]; keys
    /// re-wrapped until then stay re-wrapped. Retire an old master key from the ring only when
    /// [`Crypto::pending_rotation`] is 0.
    pub fn rotate(&self, s: &mut impl KeyContext, batch_size: usize) -> Result<RotationReport> {
        self.rotate_with_progress(s, batch_size, None)
    }

    /// [`Crypto::rotate`], reporting [`Progress`](crate::observe::Progress) (phase
    /// `"rotate keys"`, one unit per data key, the total counted before the first batch) to
    /// `progress` after each batch.
    pub fn rotate_with_progress(
        &self,
        s: &mut impl KeyContext,
        batch_size: usize,
        progress: Option<crate::observe::ProgressFn<'_>>,
    ) -> Result<RotationReport> {
        let total = match progress {
            Some(_) => Some(u64::try_from(self.pending_rotation(s)?).unwrap_or(0)),
            None => None,
        };
        let mut report = RotationReport::default();
        loop {
            let n = self.rotate_batch(s, batch_size)?;
            if n == 0 {
                return Ok(report);
            }
            report.rewrapped += n;
            report.batches += 1;
            if let Some(show) = progress {
                show(crate::observe::Progress {
                    done: report.rewrapped as u64,
                    total,
                    phase: "rotate keys",
                });
            }
        }
    }
}

/// Creates `custodian_subject_keys` if it does not exist yet (see [`store::install`]).
pub fn install(s: &mut impl KeyContext) -> Result<()> {
    store::install(s)
}

/// The audit record key of a subject's key row: `["<subject>"]`.
fn key_of(subject: &str) -> String {
    serde_json::Value::Array(vec![subject.into()]).to_string()
}

/// What the audit trail shows of a key row: everything but the wrapped key, so erasure leaves
/// no copy of it in the trail.
fn key_image(row: &KeyRow) -> String {
    let mut image = serde_json::Map::new();
    image.insert("subject".into(), row.subject.clone().into());
    image.insert("data_key_id".into(), row.data_key_id.clone().into());
    image.insert("master_key_id".into(), row.master_key_id.clone().into());
    image.insert(
        "created_at".into(),
        crate::value::StoredJson::to_json(&row.created_at),
    );
    serde_json::Value::Object(image).to_string()
}

/// Once an erasure has committed (the session is outside a transaction), rewrites the key
/// table's storage so that the erased row is gone from the database's own files (see
/// [`Backend::rewrite_table_storage`](crate::backend::Backend::rewrite_table_storage)). Inside
/// the caller's transaction nothing is committed yet, so nothing is done here (the README says
/// what to run after commit, and what remains on disk).
fn flush_erasure(s: &mut impl KeyContext) -> Result<()> {
    if s.transaction_depth() > 0 {
        return Ok(());
    }
    let backend = s.backend();
    s.run(|c| backend.rewrite_table_storage(c, store::SUBJECT_KEYS.table))
}

/// Key changes are audited: without an acting principal they fail closed.
fn needs_principal(what: &str) -> Error {
    Error::Forbidden(format!(
        "{what} is audited and needs an acting principal: use Db::acting_as or Session::act_as"
    ))
}

/// The error of `Db::crypto` and `Session::crypto` without master keys.
pub(crate) fn not_configured() -> Error {
    Error::config(
        "crypto.keys",
        "field encryption needs master keys: set [databases.NAME.crypto] keys and active, or \
         CUSTODIAN_CRYPTO_KEYS",
    )
}
