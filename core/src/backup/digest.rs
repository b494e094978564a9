//! Order-independent table digests: each row's canonical values (text or NULL, columns in name
//! order) are encoded without ambiguity and hashed with SHA-256, and a table's digest is the
//! sum of its row hashes modulo 2^256 with the row count. A sum (unlike XOR) keeps duplicate
//! rows, and does not depend on the order rows are read in, so two engines that return the
//! same rows in different orders agree.

use sha2::{Digest, Sha256};

/// A running digest of one table's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableHasher {
    sum: [u8; 32],
    rows: u64,
}

/// The unambiguous encoding of one row: per value `N`, or `S<len>:<bytes>`.
pub fn encode_row(values: &[Option<String>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.iter().flatten().map(|v| v.len() + 8).sum());
    for v in values {
        match v {
            None => out.push(b'N'),
            Some(s) => {
                out.extend_from_slice(format!("S{}:", s.len()).as_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out
}

impl TableHasher {
    /// An empty digest.
    pub fn new() -> TableHasher {
        TableHasher::default()
    }

    /// Adds one row.
    pub fn add(&mut self, values: &[Option<String>]) {
        let hash = Sha256::digest(encode_row(values));
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let s = u16::from(self.sum[i]) + u16::from(hash[i]) + carry;
            self.sum[i] = (s & 0xff) as u8;
            carry = s >> 8;
        }
        self.rows += 1;
    }

    /// Rows added.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The digest, as 64 hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(rows: &[&[Option<&str>]]) -> (u64, String) {
        let mut h = TableHasher::new();
        for r in rows {
            let r: Vec<Option<String>> = r.iter().map(|v| v.map(str::to_string)).collect();
            h.add(&r);
        }
        (h.rows(), h.hex())
    }

    #[test]
    fn order_does_not_matter_content_does() {
        let a: &[Option<&str>] = &[Some("1"), Some("x")];
        let b: &[Option<&str>] = &[Some("2"), None];
        assert_eq!(digest(&[a, b]), digest(&[b, a]));
        assert_ne!(digest(&[a, b]), digest(&[a]));
        // A duplicated row is not cancelled out.
        assert_ne!(digest(&[a, a, b]), digest(&[b]));
        // NULL differs from the text "N", and values do not run into each other.
        assert_ne!(digest(&[&[None]]), digest(&[&[Some("N")]]));
        assert_ne!(
            digest(&[&[Some("ab"), Some("c")]]),
            digest(&[&[Some("a"), Some("bc")]])
        );
        assert_eq!(digest(&[]), (0, "0".repeat(64)));
    }
}
