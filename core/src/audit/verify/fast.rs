//! The seal check of verification's hot loop: the HMAC key schedule done once, the canonical
//! encoding written into a reused buffer, digests compared with the stored hex in place. Gives
//! the same answers as [`AuditRecord::seal_is_valid`] (the unit tests compare them).

use crate::audit::record::{AuditKey, AuditRecord, CANONICAL_TAG};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub(super) struct FastCheck {
    /// `None` without a key (plain SHA-256, as [`AuditRecord::compute_mac`]).
    hmac: Option<Hmac<Sha256>>,
    buf: Vec<u8>,
}

impl FastCheck {
    pub(super) fn new(key: Option<&AuditKey>) -> Self {
        let hmac = key.and_then(|k| {
            let bytes = hex::decode(k.to_hex()).ok()?;
            <Hmac<Sha256> as Mac>::new_from_slice(&bytes).ok()
        });
        FastCheck {
            hmac,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Whether `record`'s stored seal matches its content.
    pub(super) fn seal_is_valid(&mut self, record: &AuditRecord) -> bool {
        if !canonical_into(record, &mut self.buf) {
            self.buf = record.canonical();
        }
        let digest: [u8; 32] = match &self.hmac {
            Some(keyed) => {
                let mut mac = keyed.clone();
                mac.update(&self.buf);
                mac.finalize().into_bytes().into()
            }
            None => Sha256::digest(&self.buf).into(),
        };
        hex_matches(&digest, &record.mac)
    }
}

/// Whether `hex` is the lower-case hex of `digest` (what [`crate::hex::encode`] writes).
pub(super) fn hex_matches(digest: &[u8; 32], hex: &str) -> bool {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let hex = hex.as_bytes();
    hex.len() == 64
        && digest.iter().zip(hex.chunks_exact(2)).all(|(b, pair)| {
            pair[0] == DIGITS[usize::from(b >> 4)] && pair[1] == DIGITS[usize::from(b & 0x0f)]
        })
}

/// [`AuditRecord::canonical`] into `out` (cleared first), with the timestamp written by hand;
/// `false` (and `out` unspecified) for timestamps it does not handle (years outside 1000 to
/// 9999, leap seconds), which the caller encodes with [`AuditRecord::canonical`].
fn canonical_into(r: &AuditRecord, out: &mut Vec<u8>) -> bool {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (r.at.year(), r.at.nanosecond());
    if !(1000..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return false;
    }
    // "%Y-%m-%d %H:%M:%S%.6f"
    let mut at = [0u8; 26];
    let mut put = |from: usize, width: usize, mut v: u32| {
        for i in (from..from + width).rev() {
            at[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, r.at.month());
    put(8, 2, r.at.day());
    put(11, 2, r.at.hour());
    put(14, 2, r.at.minute());
    put(17, 2, r.at.second());
    put(20, 6, nanos / 1_000);
    for (i, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b' '),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        at[i] = sep;
    }
    out.clear();
    out.extend_from_slice(CANONICAL_TAG);
    out.extend_from_slice(&r.ordinal.to_be_bytes());
    for v in [
        Some(r.tx_id.as_bytes()),
        Some(&at[..]),
        Some(r.actor.as_bytes()),
        r.tenant.as_deref().map(str::as_bytes),
        Some(r.entity.as_bytes()),
        Some(r.entity_key.as_bytes()),
        Some(r.op.as_bytes()),
        r.before.as_deref().map(str::as_bytes),
        r.after.as_deref().map(str::as_bytes),
        r.reason.as_deref().map(str::as_bytes),
        r.request_id.as_deref().map(str::as_bytes),
    ] {
        match v {
            Some(v) => {
                let len = u32::try_from(v.len()).unwrap_or(u32::MAX - 1);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&v[..len as usize]);
            }
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{ChainKey, GENESIS};

    fn record(at: chrono::NaiveDateTime) -> AuditRecord {
        AuditRecord {
            id: 7,
            tx_id: "6f1c1c7e-8f3a-4c33-9e3b-1f0e2a9d4b10".into(),
            ordinal: 3,
            at,
            actor: "alice".into(),
            tenant: None,
            entity: "controls".into(),
            entity_key: "[1]".into(),
            op: "update".into(),
            before: Some(r#"{"code":"A","id":1}"#.into()),
            after: Some(String::new()),
            reason: None,
            request_id: Some("req-1".into()),
            mac: String::new(),
        }
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nano: u32) -> chrono::NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_nano_opt(h, mi, s, nano)
            .unwrap()
    }

    #[test]
    fn fast_checks_agree_with_the_record_checks() {
        let key = AuditKey::from_bytes([7; 32]);
        let times = [
            at(2026, 3, 1, 9, 30, 0, 120_000),
            at(1000, 1, 1, 0, 0, 0, 0),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(999, 12, 31, 23, 59, 59, 0),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000),
            at(-44, 3, 15, 12, 0, 0, 7),
        ];
        let mut handled = 0;
        for t in times {
            let mut buf = Vec::new();
            if canonical_into(&record(t), &mut buf) {
                assert_eq!(buf, record(t).canonical(), "{t}");
                handled += 1;
            }
            for k in [Some(&key), None] {
                let sealed = record(t).seal(k);
                let mut fast = FastCheck::new(k);
                assert!(sealed.seal_is_valid(k));
                assert!(fast.seal_is_valid(&sealed), "{t} {k:?}");
                let mut tampered = sealed.clone();
                tampered.tenant = Some(String::new());
                assert!(!fast.seal_is_valid(&tampered));
                let mut renumbered = sealed.clone();
                renumbered.ordinal = 4;
                assert!(!fast.seal_is_valid(&renumbered));
                let mut upper = sealed.clone();
                upper.mac = upper.mac.to_uppercase();
                assert_eq!(fast.seal_is_valid(&upper), upper.seal_is_valid(k));
                let mut other_key = FastCheck::new(Some(&AuditKey::from_bytes([8; 32])));
                assert!(!other_key.seal_is_valid(&sealed));
            }
        }
        assert_eq!(handled, 3, "the years 1000 to 9999 without leap seconds");
        let chain = ChainKey::new(Some(&key));
        let digest = chain.link_digest(GENESIS, "aa", 3, 9);
        assert!(hex_matches(&digest, &chain.link_hash(GENESIS, "aa", 3, 9)));
        assert!(!hex_matches(&digest, &chain.link_hash(GENESIS, "aa", 4, 9)));
        assert!(!hex_matches(
            &digest,
            &chain.link_hash(GENESIS, "aa", 3, 9).to_uppercase()
        ));
        assert!(!hex_matches(&digest, ""));
    }
}
