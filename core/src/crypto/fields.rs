//! Transparent encryption of `#[column(encrypted)]` fields.
//!
//! The write path hands the entity's image to [`seal_image`] before any SQL: encrypted columns
//! are sealed under the data key of the row's subject (the column marked by
//! `#[entity(subject = "field")]`) and `#[column(blind_index = "field")]` columns receive the
//! keyed hash of their field's plaintext. So the table, the audit images, history and every hash
//! hold ciphertext only. Every entity read path hands loaded images to [`open_image`], which
//! puts the plaintext back, or [`ERASED`] where the subject was crypto-shredded.

use super::{Crypto, Sealed};
use crate::entity::EntityMeta;
use crate::error::{Error, IntegrityKind, Result, ValidationErrors};
use serde_json::{Map, Value};

/// What an encrypted field reads as once its subject was erased
/// ([`Crypto::erase_subject`]): the data key is gone, so the value cannot be recovered.
pub const ERASED: &str = "[erased]";

type Image = Map<String, Value>;

/// The subject id of a row: the subject column's value as text (`None` when it is `NULL`).
fn subject_of(meta: &EntityMeta, image: &Image) -> Option<String> {
    let column = meta.subject_column()?;
    match image.get(column.name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The plaintext of a stored value, [`ERASED`] when its data key is gone.
fn open_stored(
    crypto: &Crypto,
    s: &mut impl super::KeyContext,
    meta: &EntityMeta,
    column: &str,
    subject: Option<&str>,
    stored: &str,
) -> Result<String> {
    let sealed = Sealed::<String>::from_stored(stored).map_err(|e| {
        Error::integrity(
            IntegrityKind::Ciphertext,
            format!(
                "{}.{column} is an encrypted column but holds a value that is not sealed: {e}",
                meta.table
            ),
        )
    })?;
    match crypto.open_checked(s, subject, &sealed) {
        Ok(plain) => Ok(plain),
        Err(Error::Forbidden(_)) => Ok(ERASED.to_string()),
        Err(e) => Err(e),
    }
}

/// Replaces the plaintext of the encrypted columns of `image` by ciphertext and fills its blind
/// indexes. `stored` is the row as it is in the database (updates): a value that did not change
/// keeps its ciphertext, so an update touching other fields does not rewrite it (and a field
/// read as [`ERASED`] is written back as it was). Fails with [`Error::Config`] when no master
/// key is configured and with a validation error on the subject field when a value must be
/// sealed but the subject is `NULL` or empty.
pub(crate) fn seal_image(
    s: &mut impl super::KeyContext,
    meta: &EntityMeta,
    image: &mut Image,
    stored: Option<&Image>,
) -> Result<()> {
    let crypto = s.crypto()?;
    for c in meta.columns {
        if let Some(source) = c.blind_index_of {
            let index = match image.get(source) {
                Some(Value::String(plain)) => Value::String(crypto.blind_index(source, plain)),
                _ => Value::Null,
            };
            image.insert(c.name.to_string(), index);
        }
    }
    let subject = subject_of(meta, image).filter(|s| !s.is_empty());
    let stored_subject = stored.and_then(|st| subject_of(meta, st));
    for c in meta.columns.iter().filter(|c| c.encrypted) {
        let Some(Value::String(plain)) = image.get(c.name) else {
            continue;
        };
        if let Some(Value::String(old)) = stored.and_then(|st| st.get(c.name)) {
            // Unchanged: the same ciphertext (a column kept by a mask) or the same plaintext
            // under the same subject.
            let same = old == plain
                || (stored_subject == subject
                    && open_stored(&crypto, s, meta, c.name, subject.as_deref(), old)? == *plain);
            if same {
                image.insert(c.name.to_string(), Value::String(old.clone()));
                continue;
            }
        }
        let Some(subject) = subject.as_deref() else {
            let field = meta.subject_column().map_or("subject", |c| c.field);
            let mut errors = ValidationErrors::default();
            errors.add(
                field,
                "subject_required",
                format!(
                    "{} is encrypted under the data subject named by `{field}`, which is empty",
                    c.field
                ),
            );
            return Err(Error::Validation(errors));
        };
        let sealed = crypto.seal(s, subject, &plain.clone())?;
        image.insert(
            c.name.to_string(),
            Value::String(sealed.as_stored().to_string()),
        );
    }
    Ok(())
}

/// Replaces the ciphertext of the encrypted columns of `image` by their plaintext, or
/// [`ERASED`] where the subject's data key was destroyed. A value that is not sealed, or that
/// does not authenticate (altered, or copied from another subject's row), is
/// [`Error::Integrity`].
pub(crate) fn open_image(
    s: &mut impl super::KeyContext,
    meta: &EntityMeta,
    image: &mut Image,
) -> Result<()> {
    let crypto = s.crypto()?;
    let subject = subject_of(meta, image);
    for c in meta.columns.iter().filter(|c| c.encrypted) {
        let Some(Value::String(stored)) = image.get(c.name) else {
            continue;
        };
        let plain = open_stored(&crypto, s, meta, c.name, subject.as_deref(), stored)?;
        image.insert(c.name.to_string(), Value::String(plain));
    }
    Ok(())
}

/// The encrypted columns' values of `plain`, written into `image` (the stored form of the
/// same row): what the caller's entity holds after a write.
pub(crate) fn restore_plaintext(meta: &EntityMeta, image: &mut Image, plain: &Image) {
    for c in meta.columns.iter().filter(|c| c.encrypted) {
        if let Some(v) = plain.get(c.name) {
            image.insert(c.name.to_string(), v.clone());
        }
    }
}
