//! The records of the trail that no link names yet: each checked for a valid seal, a readable
//! row and a seal not seen before (a copy), and the oldest one's age noted.

use super::walk::{seal_id, BATCH};
use super::{Damage, DamageKind};
use crate::audit::record::AuditKey;
use crate::audit::store::{self, Read};
use crate::context::Context;
use crate::error::Result;
use std::collections::HashSet;

/// The records of the trail that are not in the chain, as verification finds them.
pub(super) struct Unsealed<'k> {
    pub key: Option<&'k AuditKey>,
    /// Where a bad one is reported: after the last link.
    pub next_seq: i64,
    /// Seals seen so far (chained, then unsealed): a repeat is a copy.
    pub seals: HashSet<u128>,
    pub count: u64,
    pub oldest: Option<chrono::NaiveDateTime>,
    /// The first bad one.
    pub damage: Option<Damage>,
}

impl Unsealed<'_> {
    pub(super) fn check(&mut self, read: &Read) {
        self.count += 1;
        let record = match read {
            Read::Undecodable(id) => {
                self.found(
                    DamageKind::Modified,
                    format!("unsealed record {id} cannot be decoded"),
                );
                return;
            }
            Read::Record(r) => r,
        };
        self.oldest = Some(self.oldest.map_or(record.at, |o| o.min(record.at)));
        if !record.seal_is_valid(self.key) {
            self.found(
                DamageKind::Inserted,
                format!(
                    "unsealed record {} ({} {} {}) does not match its seal",
                    record.id, record.op, record.entity, record.entity_key
                ),
            );
        } else if !self.seals.insert(seal_id(&record.mac).unwrap_or_default()) {
            self.found(
                DamageKind::Replayed,
                format!(
                    "unsealed record {} ({} {} {}) is a copy of another record",
                    record.id, record.op, record.entity, record.entity_key
                ),
            );
        }
    }

    fn found(&mut self, kind: DamageKind, detail: String) {
        if self.damage.is_none() {
            self.damage = Some(Damage {
                seq: self.next_seq,
                kind,
                detail,
            });
        }
    }

    /// Checks the records with ids above `high`.
    pub(super) fn above(&mut self, s: &mut impl Context, high: i64) -> Result<()> {
        let mut after = high;
        loop {
            let batch = store::read_range(s, after.saturating_add(1), i64::MAX, BATCH)?;
            let Some(last) = batch.last().map(Read::id) else {
                return Ok(());
            };
            after = last;
            batch.iter().for_each(|r| self.check(r));
        }
    }

    /// Checks every record without a link, found by joining the whole trail with the chain.
    pub(super) fn unchained(&mut self, s: &mut impl Context) -> Result<()> {
        let mut after = i64::MIN;
        loop {
            let batch = store::read_unchained(s, after, BATCH)?;
            let Some(last) = batch.last().map(Read::id) else {
                return Ok(());
            };
            after = last;
            batch.iter().for_each(|r| self.check(r));
        }
    }
}
