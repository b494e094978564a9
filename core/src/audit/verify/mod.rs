//! Verification: one read-only snapshot of the trail, walked link by link, reporting the first
//! damage with its position and kind. Bad content is always reported as damage, never as an
//! error; errors are kept for what stops verification itself (no connection, the wrong key or
//! no key for a keyed trail, a checkpoint signed by a key nobody trusts).

mod fast;
mod unsealed;
mod walk;

use super::checkpoint::{Checkpoint, SignatureCheck};
use super::record::{AuditKey, ChainKey, GENESIS};
use super::store::{self, Read, HEAD_ROW, MARK_ROW, MODE_ROW, UNKEYED};
use super::witness::{Witness, WitnessEntry};
use crate::context::Context;
use crate::error::{Error, IntegrityKind, Result};
use crate::tx::{IsolationLevel, TxOptions};
use ed25519_dalek::VerifyingKey;
use std::collections::HashSet;
use std::time::Duration;
use unsealed::Unsealed;
use walk::Walk;

/// The kind of damage verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DamageKind {
    /// A record's content, a link, or the head was changed (or cannot be decoded).
    Modified,
    /// A record or a link was removed.
    Deleted,
    /// A record that custodian did not write was added.
    Inserted,
    /// A copy of a sealed record was added (a replay of an earlier change).
    Replayed,
    /// Records were moved to other positions.
    Reordered,
    /// The end of the chain was cut off (detected against the head or a checkpoint).
    Truncated,
    /// Records were left unsealed longer than the configured bound: sealing is not running, or
    /// was stopped.
    Unsealed,
}

/// The first damage found, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Sequence number of the first bad link (for unsealed records: the next one; for the head
    /// rows: the last link).
    pub seq: i64,
    /// What is wrong.
    pub kind: DamageKind,
    /// Details for a human.
    pub detail: String,
}

/// How a trail's records and links are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealMode {
    /// HMAC under the application's audit key: a forger without the key is detected.
    Keyed,
    /// Plain SHA-256, for tests and demos: detects accidents, not a forger with database access.
    Unkeyed,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How the trail is sealed.
    pub mode: SealMode,
    /// Links checked.
    pub links: u64,
    /// Sequence number of the last link.
    pub last_seq: i64,
    /// Hash of the last link.
    pub last_hash: String,
    /// Committed records not sealed yet (all with valid seals unless `damage` says otherwise).
    pub unsealed: u64,
    /// When the oldest unsealed record was written.
    pub oldest_unsealed: Option<chrono::NaiveDateTime>,
    /// The checkpoint checked against (given, or the witness's latest), if any.
    pub checkpoint_seq: Option<i64>,
    /// The first damage found; `None` if the chain is intact.
    pub damage: Option<Damage>,
}

impl VerifyReport {
    /// Whether the chain is intact.
    pub fn is_intact(&self) -> bool {
        self.damage.is_none()
    }

    /// `Ok` if intact, else [`Error::Integrity`] describing the first damage.
    pub fn into_result(self) -> Result<VerifyReport> {
        match &self.damage {
            None => Ok(self),
            Some(d) => Err(Error::integrity(
                IntegrityKind::AuditTrail,
                format!(
                    "audit chain damaged at sequence {}: {:?}: {}",
                    d.seq, d.kind, d.detail
                ),
            )),
        }
    }
}

/// What to verify against. The default checks the chain on its own.
#[derive(Clone, Default)]
pub struct VerifyOptions<'a> {
    checkpoint: Option<Checkpoint>,
    witness: Option<Witness>,
    trusted: Vec<VerifyingKey>,
    max_unsealed_age: Option<Duration>,
    progress: Option<crate::observe::ProgressFn<'a>>,
}

impl<'a> VerifyOptions<'a> {
    /// No checkpoint, no witness, no bound on unsealed records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks that the chain still holds `checkpoint` unchanged (and has not been cut below
    /// it). Its signature must be by a [trusted](VerifyOptions::trust) key.
    pub fn checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// Checks against the latest checkpoint in `witness` (when no checkpoint is given).
    pub fn witness(mut self, witness: Witness) -> Self {
        self.witness = Some(witness);
        self
    }

    /// Trusts checkpoints signed by `key`.
    pub fn trust(mut self, key: VerifyingKey) -> Self {
        self.trusted.push(key);
        self
    }

    /// Trusts checkpoints signed by any of `keys`.
    pub fn trust_all(mut self, keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        self.trusted.extend(keys);
        self
    }

    /// Reports records left unsealed longer than `age` as [`DamageKind::Unsealed`].
    pub fn max_unsealed_age(mut self, age: Option<Duration>) -> Self {
        self.max_unsealed_age = age;
        self
    }

    /// Calls `report` after each batch with the number of links checked (phase `"verify"`,
    /// total: the chain's length when verification started).
    pub fn progress(mut self, report: crate::observe::ProgressFn<'a>) -> Self {
        self.progress = Some(report);
        self
    }
}

impl std::fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("checkpoint", &self.checkpoint)
            .field("witness", &self.witness)
            .field("trusted", &self.trusted.len())
            .field("max_unsealed_age", &self.max_unsealed_age)
            .finish()
    }
}

/// The checkpoint to check against: `Ok(None)` for none, `Err(damage)` for a witness entry or
/// checkpoint that is itself damaged (unreadable, or its signature broken).
fn checkpoint_of(
    options: &VerifyOptions<'_>,
) -> Result<std::result::Result<Option<Checkpoint>, Damage>> {
    let cp = match (&options.checkpoint, &options.witness) {
        (Some(cp), _) => cp.clone(),
        (None, Some(w)) => match w.latest()? {
            None => return Ok(Ok(None)),
            Some(WitnessEntry::Checkpoint(cp)) => cp,
            Some(WitnessEntry::Unreadable { line, why }) => {
                return Ok(Err(Damage {
                    seq: 0,
                    kind: DamageKind::Modified,
                    detail: format!(
                        "witness {} line {line} is not a checkpoint: {why}",
                        w.path().display()
                    ),
                }))
            }
        },
        (None, None) => return Ok(Ok(None)),
    };
    if options.trusted.is_empty() {
        return Err(Error::config(
            "audit.trusted_keys",
            "a checkpoint is checked only against trusted public keys, and none is configured",
        ));
    }
    match cp.check_signature(&options.trusted) {
        SignatureCheck::Valid => Ok(Ok(Some(cp))),
        SignatureCheck::Untrusted => Err(Error::config(
            "audit.trusted_keys",
            format!(
                "the checkpoint at sequence {} is signed by {}, which is not a trusted key",
                cp.seq, cp.public_key
            ),
        )),
        SignatureCheck::Invalid(why) => Ok(Err(Damage {
            seq: cp.seq,
            kind: DamageKind::Modified,
            detail: format!("the checkpoint at sequence {}: {why}", cp.seq),
        })),
    }
}

/// Walks the whole trail in one read-only snapshot and reports the first bad position and the
/// kind of damage: every record's seal is recomputed under `key`, every link from its
/// predecessor under the chain key, the head rows are checked against the chain, and, when a
/// checkpoint is given or witnessed, the chain must still contain it unchanged. Unsealed
/// records are checked for valid seals and copies too. Writes nothing.
///
/// Errors (not damage): `key` differs from the key the trail was sealed with, or is missing for
/// a keyed trail ([`Error::Config`]); a checkpoint signed by an untrusted key; no connection.
pub fn verify(
    s: &mut impl Context,
    key: Option<&AuditKey>,
    options: &VerifyOptions<'_>,
) -> Result<VerifyReport> {
    s.flush_audit()?;
    let checkpoint = checkpoint_of(options)?;
    let snapshot = TxOptions::new()
        .isolation(IsolationLevel::RepeatableRead)
        .read_only()
        .no_retry();
    let mut report = s.transaction_with(&snapshot, |tx| {
        verify_snapshot(tx, key, options, &checkpoint)
    })?;
    if report.damage.is_none() {
        if let Err(d) = checkpoint {
            report.damage = Some(d);
        }
    }
    Ok(report)
}

/// Checks the mode row against `key`: the trail's mode, or damage at the head if the row was
/// changed, or an error when the key is wrong or missing.
fn check_mode(tx: &mut impl Context, key: Option<&AuditKey>) -> Result<(SealMode, Option<Damage>)> {
    let row = store::head_row(tx, MODE_ROW)?;
    let configured = if key.is_some() {
        SealMode::Keyed
    } else {
        SealMode::Unkeyed
    };
    let matches = match (&row, key) {
        (Some((1, check)), Some(k)) => *check == k.check_value(),
        (Some((0, check)), None) => check == UNKEYED,
        _ => false,
    };
    if matches {
        return Ok((configured, None));
    }
    // The row disagrees with the key: either the row was changed, or the key is wrong. The
    // first record tells which: its seal holds under the right key only.
    let first: Vec<Read> = store::read_range(tx, i64::MIN, i64::MAX, 1)?;
    let fits = match first.first() {
        Some(Read::Record(r)) => r.seal_is_valid(key),
        _ => false,
    };
    if fits {
        let detail = match row {
            None => "the trail's mode row (head row 3) is missing".to_string(),
            Some(_) => "the trail's mode row (head row 3) was changed".to_string(),
        };
        return Ok((
            configured,
            Some(Damage {
                seq: 0,
                kind: DamageKind::Modified,
                detail,
            }),
        ));
    }
    Err(match (row.map(|r| r.0), key) {
        (Some(1), None) => Error::config(
            "audit.key",
            "this trail is sealed with an audit key and none is configured: set CUSTODIAN_AUDIT_KEY",
        ),
        (Some(0), Some(_)) => Error::config(
            "audit.key",
            "this trail is sealed without a key (unkeyed) but an audit key is configured",
        ),
        (None, _) => Error::config(
            "audit.key",
            "the trail's mode row is missing and no record verifies under the configured key",
        ),
        _ => Error::config(
            "audit.key",
            "the configured audit key is not the key this trail was sealed with",
        ),
    })
}

fn verify_snapshot(
    tx: &mut impl Context,
    key: Option<&AuditKey>,
    options: &VerifyOptions<'_>,
    checkpoint: &std::result::Result<Option<Checkpoint>, Damage>,
) -> Result<VerifyReport> {
    let (mode, mode_damage) = check_mode(tx, key)?;
    let checkpoint = checkpoint.as_ref().ok().and_then(Option::as_ref);
    let mut state = Walk {
        fast: fast::FastCheck::new(key),
        chain: ChainKey::new(key),
        checkpoint_seq: checkpoint.map(|cp| cp.seq),
        running: GENESIS.to_string(),
        expected: 1,
        links: 0,
        last_record: 0,
        at_checkpoint: None,
        damage: None,
        seals: HashSet::new(),
        ids: HashSet::new(),
        others: Vec::new(),
    };
    let total = match options.progress {
        Some(_) => Some(u64::try_from(crate::audit::seal::last_link(tx)?.0).unwrap_or(0)),
        None => None,
    };
    let (covered, bad_link) = walk::walk(tx, &mut state, options.progress.map(|p| (p, total)))?;
    let Walk {
        chain,
        running,
        expected,
        links,
        at_checkpoint,
        mut damage,
        seals,
        ids,
        others,
        ..
    } = state;
    let last_seq = expected - 1;
    if damage.is_none() && bad_link {
        damage = Some(Damage {
            seq: last_seq + 1,
            kind: DamageKind::Modified,
            detail: format!(
                "link {} cannot be decoded (a value of the wrong type)",
                last_seq + 1
            ),
        });
    }
    let whole_chain = damage.is_none();
    if damage.is_none() {
        damage = check_head(tx, &chain, last_seq, &running)?;
    }
    if damage.is_none() {
        damage = mode_damage;
    }
    if let (None, Some(cp)) = (&damage, checkpoint) {
        if cp.seq > last_seq {
            damage = Some(Damage {
                seq: last_seq + 1,
                kind: DamageKind::Truncated,
                detail: format!(
                    "the checkpoint covers {} links, the chain ends at {last_seq}",
                    cp.seq
                ),
            });
        } else if at_checkpoint.as_deref() != Some(cp.hash.as_str()) {
            damage = Some(Damage {
                seq: cp.seq,
                kind: DamageKind::Modified,
                detail: "history up to the checkpoint was rewritten: its hash differs".into(),
            });
        }
    }
    let mut unsealed = Unsealed {
        key,
        next_seq: last_seq + 1,
        seals,
        count: 0,
        oldest: None,
        damage: None,
    };
    if whole_chain {
        let max_id = ids.iter().copied().max().unwrap_or(0);
        if covered.is_some_and(|c| c >= max_id) {
            // Every record up to the highest one in the chain was read: those no link named
            // are the unsealed ones below it.
            let mut below: Vec<Read> = others
                .into_iter()
                .filter(|r| !ids.contains(&r.id()))
                .collect();
            below.sort_unstable_by_key(Read::id);
            below.dedup_by_key(|r| r.id());
            for r in &below {
                unsealed.check(r);
            }
            unsealed.above(tx, max_id)?;
        } else {
            unsealed.unchained(tx)?;
        }
    }
    if damage.is_none() {
        damage = unsealed.damage.take();
    }
    if let (None, Some(bound), Some(oldest)) = (&damage, options.max_unsealed_age, unsealed.oldest)
    {
        let age = (crate::audit::now_utc() - oldest)
            .to_std()
            .unwrap_or_default();
        if age > bound {
            damage = Some(Damage {
                seq: last_seq + 1,
                kind: DamageKind::Unsealed,
                detail: format!(
                    "{} records are not sealed, the oldest written {} s ago (bound {} s): sealing is not running, or was stopped",
                    unsealed.count,
                    age.as_secs(),
                    bound.as_secs()
                ),
            });
        }
    }
    Ok(VerifyReport {
        mode,
        links,
        last_seq,
        last_hash: running,
        unsealed: unsealed.count,
        oldest_unsealed: unsealed.oldest,
        checkpoint_seq: checkpoint.map(|cp| cp.seq),
        damage,
    })
}

/// The head rows against the chain walked (`last_seq` links ending in `running`): the head row
/// must name the last link, and the sealers' mark must carry its MAC.
fn check_head(
    tx: &mut impl Context,
    chain: &ChainKey,
    last_seq: i64,
    running: &str,
) -> Result<Option<Damage>> {
    let head = store::head_row(tx, HEAD_ROW)?;
    let damage = |kind, detail: String| {
        Ok(Some(Damage {
            seq: last_seq,
            kind,
            detail,
        }))
    };
    let Some((head_seq, head_hash)) = head else {
        return damage(
            DamageKind::Deleted,
            "the chain's head row is missing".into(),
        );
    };
    if head_seq > last_seq {
        return Ok(Some(Damage {
            seq: last_seq + 1,
            kind: DamageKind::Truncated,
            detail: format!("the head says {head_seq} links, the chain ends at {last_seq}"),
        }));
    }
    if head_seq < last_seq || head_hash != running {
        return damage(
            DamageKind::Modified,
            format!("the head ({head_seq}, {head_hash}) is not the last link ({last_seq})"),
        );
    }
    let mark = store::head_row(tx, MARK_ROW)?;
    let Some((high, note)) = mark else {
        // Every seal writes the mark: a chain without one lost it.
        if last_seq > 0 {
            return damage(
                DamageKind::Deleted,
                "the sealers' high-water mark row is missing".into(),
            );
        }
        return Ok(None);
    };
    {
        let gaps = super::seal::read_gaps(tx)?;
        if note != super::seal::mark_note(chain, high, last_seq, running, &gaps) {
            return damage(
                DamageKind::Modified,
                "the sealers' high-water mark or gaps were changed without the key".into(),
            );
        }
    }
    Ok(None)
}

/// Up to `limit` links from sequence number `from` on, each with its record (`None` when it is
/// missing or cannot be decoded): the read verification does.
pub fn read_links(s: &mut impl Context, from: i64, limit: i64) -> Result<Vec<StoredLink>> {
    Ok(walk::read_batch(s, from, limit, i64::MAX)?
        .links
        .into_iter()
        .map(|l| {
            let record = match l.record {
                walk::Slot::Record(r) => Some(r),
                _ => None,
            };
            (l.seq, l.record_id, l.prev_hash, l.hash, record)
        })
        .collect())
}

/// One link of the chain with its record, as stored: `(seq, record_id, prev_hash, hash,
/// record)`.
pub type StoredLink = (i64, i64, String, String, Option<crate::audit::AuditRecord>);
