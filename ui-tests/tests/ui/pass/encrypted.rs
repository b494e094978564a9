//! `#[column(encrypted)]` with a subject and a blind index: the metadata says what is sealed.
#![deny(missing_docs)]

use custodian::{entity, Entity};

/// A client with personal fields.
#[entity(subject = "client_ref")]
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// Key.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Whose data key seals the personal fields.
    pub client_ref: String,
    /// Sealed.
    #[column(encrypted)]
    pub full_name: String,
    /// Sealed, optional.
    #[column(encrypted)]
    pub email: Option<String>,
    /// Keyed hash of `email`, unique.
    #[column(blind_index = "email", unique)]
    pub email_index: Option<String>,
}

fn main() {
    let meta = Client::META;
    let col = |f: &str| meta.column(f).unwrap();
    assert!(meta.has_encrypted());
    assert_eq!(meta.subject_column().unwrap().field, "client_ref");
    assert!(col("full_name").encrypted && col("email").encrypted);
    assert!(!col("client_ref").encrypted && !col("email_index").encrypted);
    assert_eq!(col("email_index").blind_index_of, Some("email"));
    assert!(col("email_index").unique);
}
