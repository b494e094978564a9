//! [`Sealed<T>`]: an encrypted column value, and [`Sealable`]: the plaintext types it holds.

use super::keys::{self, NONCE_LEN, TAG_LEN};
use crate::error::{Error, IntegrityKind, Result};
use crate::value::{ColumnKind, ColumnValue, DecodeError};
use std::fmt;
use std::marker::PhantomData;
use zeroize::Zeroizing;

/// A plaintext type that can be sealed: its bytes, and back. `TYPE` is bound into the
/// ciphertext, so a sealed `i64` cannot be opened as a `String`.
pub trait Sealable: Sized {
    /// Name of the type in the authenticated data, e.g. `string`.
    const TYPE: &'static str;
    /// The plaintext bytes (wiped from memory when dropped).
    fn to_plaintext(&self) -> Zeroizing<Vec<u8>>;
    /// The value of plaintext bytes; fails on malformed bytes.
    fn from_plaintext(bytes: &[u8]) -> std::result::Result<Self, DecodeError>;
}

impl Sealable for String {
    const TYPE: &'static str = "string";
    fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.as_bytes().to_vec())
    }
    fn from_plaintext(bytes: &[u8]) -> std::result::Result<Self, DecodeError> {
        Ok(std::str::from_utf8(bytes)?.to_string())
    }
}

impl Sealable for i64 {
    const TYPE: &'static str = "i64";
    fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.to_be_bytes().to_vec())
    }
    fn from_plaintext(bytes: &[u8]) -> std::result::Result<Self, DecodeError> {
        Ok(i64::from_be_bytes(bytes.try_into().map_err(|_| {
            format!("a sealed i64 has 8 bytes, found {}", bytes.len())
        })?))
    }
}

impl Sealable for serde_json::Value {
    const TYPE: &'static str = "json";
    fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        // Serialising a `Value` cannot fail: its map keys are always strings.
        Zeroizing::new(serde_json::to_vec(self).unwrap_or_default())
    }
    fn from_plaintext(bytes: &[u8]) -> std::result::Result<Self, DecodeError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

impl Sealable for Vec<u8> {
    const TYPE: &'static str = "bytes";
    fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.clone())
    }
    fn from_plaintext(bytes: &[u8]) -> std::result::Result<Self, DecodeError> {
        Ok(bytes.to_vec())
    }
}

/// Version prefix of the stored form.
const PREFIX: &str = "v1";
const SEAL_TAG: &str = "custodian-sealed-v1";

/// An encrypted value of type `T`, stored in a text column as
/// `v1:<data key id>:<hex of nonce, ciphertext and tag>` (AES-256-GCM under the data key of the
/// value's subject). Make one with [`Crypto::seal`](super::Crypto::seal) and read it with
/// [`Crypto::open`](super::Crypto::open); it holds no plaintext, and `Debug` shows only the
/// data key id. Audit images, history and hashes see this ciphertext, never the plaintext.
pub struct Sealed<T> {
    stored: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> Sealed<T> {
    /// The stored text (`v1:…`), e.g. to compare with a raw column.
    pub fn as_stored(&self) -> &str {
        &self.stored
    }

    /// The stored text, checked for shape (not authenticity: that needs the key).
    pub fn from_stored(stored: impl Into<String>) -> std::result::Result<Self, DecodeError> {
        let stored = stored.into();
        parse(&stored)?;
        Ok(Sealed {
            stored,
            _type: PhantomData,
        })
    }

    /// Id of the data key (of one subject) this value is sealed under.
    pub fn key_id(&self) -> &str {
        // The shape was checked on construction.
        parse(&self.stored).map(|(id, _)| id).unwrap_or_default()
    }

    fn payload(&self) -> Result<Vec<u8>> {
        parse(&self.stored)
            .ok()
            .and_then(|(_, hex)| hex::decode(hex).ok())
            .ok_or_else(|| Error::integrity(IntegrityKind::Ciphertext, "sealed value is malformed"))
    }
}

fn parse(stored: &str) -> std::result::Result<(&str, &str), DecodeError> {
    let mut parts = stored.splitn(3, ':');
    let (Some(v), Some(id), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a sealed value has the form v1:<key id>:<hex>".into());
    };
    if v != PREFIX {
        return Err(format!("unknown sealed value version `{v}`").into());
    }
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err("a sealed value names a malformed data key id".into());
    }
    let hex_ok = hex.len() % 2 == 0
        && hex.len() >= 2 * (NONCE_LEN + TAG_LEN)
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_ok {
        return Err("a sealed value's ciphertext is not well-formed hex".into());
    }
    Ok((id, hex))
}

fn seal_aad<T: Sealable>(key_id: &str) -> Vec<u8> {
    keys::aad(SEAL_TAG, &[key_id, T::TYPE])
}

/// Seals `value` under `data_key` (whose id is `key_id`).
pub(crate) fn seal_with<T: Sealable>(
    data_key: &[u8; 32],
    key_id: &str,
    value: &T,
) -> Result<Sealed<T>> {
    let plain = value.to_plaintext();
    let bytes = keys::encrypt(data_key, &seal_aad::<T>(key_id), &plain)?;
    Ok(Sealed {
        stored: format!("{PREFIX}:{key_id}:{}", hex::encode(&bytes)),
        _type: PhantomData,
    })
}

/// Opens `sealed` with `data_key`; [`Error::Integrity`] when it does not authenticate.
pub(crate) fn open_with<T: Sealable>(data_key: &[u8; 32], sealed: &Sealed<T>) -> Result<T> {
    let id = sealed.key_id();
    let plain =
        keys::decrypt(data_key, &seal_aad::<T>(id), &sealed.payload()?).ok_or_else(|| {
            Error::integrity(
                IntegrityKind::Ciphertext,
                format!(
                    "sealed value under data key {id} does not authenticate: it was altered, or \
                     is not a sealed {}",
                    T::TYPE
                ),
            )
        })?;
    T::from_plaintext(&plain).map_err(|e| {
        Error::integrity_caused_by(
            IntegrityKind::Ciphertext,
            format!("sealed {} under data key {id}: {e}", T::TYPE),
            e,
        )
    })
}

impl<T> Clone for Sealed<T> {
    fn clone(&self) -> Self {
        Sealed {
            stored: self.stored.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> PartialEq for Sealed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.stored == other.stored
    }
}

impl<T> Eq for Sealed<T> {}

impl<T> std::hash::Hash for Sealed<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.stored.hash(state);
    }
}

impl<T> fmt::Debug for Sealed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(key {}, ***)", self.key_id())
    }
}

impl<T: Sealable> ColumnValue for Sealed<T> {
    type SqlType = diesel::sql_types::Text;
    type Storage = String;
    const KIND: ColumnKind = ColumnKind::Text;
    fn to_storage(&self) -> Self::Storage {
        self.stored.clone()
    }
    fn from_storage(stored: Self::Storage) -> std::result::Result<Self, DecodeError> {
        Sealed::from_stored(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::IntegrityKind;

    #[test]
    fn round_trip_and_tamper() {
        let k = [5u8; 32];
        let s = seal_with(&k, "d1", &"123-45-6789".to_string()).unwrap();
        assert!(s.as_stored().starts_with("v1:d1:"));
        assert!(!s.as_stored().contains("123-45"));
        assert_eq!(open_with(&k, &s).unwrap(), "123-45-6789");
        assert_eq!(format!("{s:?}"), "Sealed(key d1, ***)");
        // Two seals of one value differ (random nonce).
        assert_ne!(
            seal_with(&k, "d1", &"x".to_string()).unwrap(),
            seal_with(&k, "d1", &"x".to_string()).unwrap()
        );

        // One flipped digit of the ciphertext.
        let mut t = s.as_stored().to_string();
        let last = t.pop().unwrap();
        t.push(if last == '0' { '1' } else { '0' });
        let t = Sealed::<String>::from_stored(t).unwrap();
        assert!(matches!(
            open_with(&k, &t),
            Err(Error::Integrity {
                kind: IntegrityKind::Ciphertext,
                ..
            })
        ));
        // Relabelled to another data key id.
        let moved =
            Sealed::<String>::from_stored(s.as_stored().replacen("v1:d1:", "v1:d2:", 1)).unwrap();
        assert!(matches!(
            open_with(&k, &moved),
            Err(Error::Integrity {
                kind: IntegrityKind::Ciphertext,
                ..
            })
        ));
        // Opened as another type.
        let as_int = Sealed::<i64>::from_stored(s.as_stored()).unwrap();
        assert!(matches!(
            open_with(&k, &as_int),
            Err(Error::Integrity {
                kind: IntegrityKind::Ciphertext,
                ..
            })
        ));
        // Wrong key.
        assert!(open_with(&[6u8; 32], &s).is_err());
    }

    #[test]
    fn types_round_trip() {
        let k = [1u8; 32];
        let n = seal_with(&k, "d", &-42i64).unwrap();
        assert_eq!(open_with(&k, &n).unwrap(), -42);
        let j = serde_json::json!({"a": [1, "b"]});
        assert_eq!(open_with(&k, &seal_with(&k, "d", &j).unwrap()).unwrap(), j);
        let b = vec![0u8, 255];
        assert_eq!(open_with(&k, &seal_with(&k, "d", &b).unwrap()).unwrap(), b);
    }

    #[test]
    fn malformed_stored_values_are_errors() {
        for bad in [
            "",
            "v1",
            "v1:d",
            "v2:d:00",
            "v1::00",
            "v1:d:zz",
            "v1:d:00",
            "v1:d e:00",
        ] {
            assert!(Sealed::<String>::from_stored(bad).is_err(), "{bad}");
            assert!(<Sealed<String> as ColumnValue>::from_storage(bad.into()).is_err());
        }
    }
}
