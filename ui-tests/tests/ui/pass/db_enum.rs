//! `#[derive(DbEnum)]`: default and renamed stored names, decoding errors.
use custodian::{ColumnKind, ColumnValue, DbEnum};

/// Lifecycle.
#[derive(DbEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Stored as `Draft`.
    Draft,
    /// Stored as `in_review`.
    #[db_enum(name = "in_review")]
    InReview,
    /// Explicit discriminants are fine.
    Retired = 10,
}

/// A raw identifier as variant name.
#[derive(DbEnum, Debug, PartialEq)]
enum Keyword {
    r#Type,
}

fn main() {
    assert_eq!(
        Lifecycle::VARIANTS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["Draft", "in_review", "Retired"]
    );
    assert_eq!(Lifecycle::InReview.as_str(), "in_review");
    assert_eq!(Lifecycle::from_name("Retired"), Some(Lifecycle::Retired));
    assert_eq!(Lifecycle::from_name("InReview"), None);
    assert_eq!(Lifecycle::InReview.to_storage(), "in_review");
    assert_eq!(Lifecycle::from_storage("Draft".into()).unwrap(), Lifecycle::Draft);
    let err = Lifecycle::from_storage("draft".into()).unwrap_err().to_string();
    assert!(err.contains("expected one of: Draft, in_review, Retired"), "{err}");
    assert_eq!(<Lifecycle as ColumnValue>::KIND, ColumnKind::Enum);
    assert_eq!(Keyword::r#Type.as_str(), "Type");
}
