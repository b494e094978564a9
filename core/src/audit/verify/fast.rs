//! The seal check of verification's hot loop: the HMAC key schedule done once (by the key),
//! the canonical encoding fed to the digest without a buffer, digests compared with the stored
//! hex in place. Gives the same answers as [`AuditRecord::seal_is_valid`] (the unit tests
//! compare them).

use crate::audit::record::{AuditKey, AuditRecord};

pub(super) struct FastCheck {
    /// `None` without a key (plain SHA-256, as [`AuditRecord::compute_mac`]).
    key: Option<AuditKey>,
}

impl FastCheck {
    pub(super) fn new(key: Option<&AuditKey>) -> Self {
        FastCheck { key: key.cloned() }
    }

    /// Whether `record`'s stored seal matches its content.
    pub(super) fn seal_is_valid(&mut self, record: &AuditRecord) -> bool {
        hex_matches(&record.seal_digest(self.key.as_ref()), &record.mac)
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
        for t in times {
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
