//! Column values: how a Rust field type is stored so that it round-trips on every backend.
//!
//! Each supported field type implements [`ColumnValue`]: it names the diesel SQL type the column
//! uses on all three backends, the owned *storage* value bound to and read from SQL, and the
//! conversions between the two. Types that the three databases do not share natively are stored in
//! a portable form:
//!
//! | Rust type | SQL type (diesel) | stored as |
//! |---|---|---|
//! | `i16`, `i32`, `i64` | `SmallInt`, `Integer`, `BigInt` | the integer |
//! | `f32`, `f64` | `Float`, `Double` | the float (NaN and infinities are not portable: MariaDB refuses them) |
//! | `bool` | `Bool` | the boolean |
//! | `String` | `Text` | the text (UTF-8) |
//! | `Vec<u8>` | `Binary` | the bytes |
//! | `chrono::NaiveDate` | `Date` | the date |
//! | `chrono::NaiveDateTime` | [`Datetime`](crate::sql_types::Datetime) | the timestamp, truncated to microseconds |
//! | `chrono::DateTime<Utc>` | [`Datetime`](crate::sql_types::Datetime) | the UTC timestamp, truncated to microseconds |
//! | `uuid::Uuid` | `Text` | the hyphenated lower-case form (36 characters) |
//! | `serde_json::Value` | `Text` | compact JSON |
//! | [`Decimal`] | `Text` | the exact decimal in plain notation |
//! | enums with `#[derive(DbEnum)]` | `Text` | the variant's name |
//! | `Option<T>` | `Nullable<T's type>` | `NULL` for `None` |
//!
//! Timestamps are truncated to microseconds on the way in, so a value reads back identically from
//! PostgreSQL, MariaDB (`DATETIME(6)`) and SQLite.

use crate::sql_types::StoredDatetime;
use diesel::sql_types;

/// An exact decimal number for money and other amounts (re-export of `bigdecimal::BigDecimal`).
///
/// Stored as text in its plain notation on every backend, so it round-trips exactly (SQLite
/// would otherwise go through a lossy `f64`). Do arithmetic in Rust, or keep amounts as `i64`
/// minor units when SQL must sum them.
pub type Decimal = bigdecimal::BigDecimal;

/// The error returned when a stored value cannot be turned back into its Rust type.
pub type DecodeError = Box<dyn std::error::Error + Send + Sync>;

/// The portable kind of a column, used to write DDL for each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ColumnKind {
    /// 16-bit signed integer.
    SmallInt,
    /// 32-bit signed integer.
    Integer,
    /// 64-bit signed integer.
    BigInt,
    /// 32-bit float.
    Float,
    /// 64-bit float.
    Double,
    /// Boolean.
    Bool,
    /// Unbounded UTF-8 text.
    Text,
    /// Bytes.
    Binary,
    /// Calendar date.
    Date,
    /// Date and time without zone (UTC by convention), microsecond precision.
    Timestamp,
    /// UUID in its 36-character text form.
    Uuid,
    /// JSON document as text.
    Json,
    /// Exact decimal as text.
    Decimal,
    /// Rust enum stored as the variant's name.
    Enum,
}

/// A Rust type that custodian can store in a column on PostgreSQL, MariaDB and SQLite alike.
///
/// Implemented for the types listed in the [module documentation](self); derive it for a
/// field-less enum with `#[derive(DbEnum)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a custodian column",
    label = "unsupported column type",
    note = "supported: i16, i32, i64, f32, f64, bool, String, Vec<u8>, chrono::NaiveDate, chrono::NaiveDateTime, chrono::DateTime<Utc>, uuid::Uuid, serde_json::Value, custodian::Decimal, enums with #[derive(DbEnum)], and Option of each"
)]
pub trait ColumnValue: Sized {
    /// The diesel SQL type of the column.
    type SqlType: sql_types::SqlType;
    /// The owned value bound to SQL and read back from it.
    type Storage;
    /// The kind of column, for DDL.
    const KIND: ColumnKind;
    /// Whether the column accepts `NULL`.
    const NULLABLE: bool = false;
    /// The only stored values allowed, if restricted (enums): becomes a check constraint.
    const ALLOWED: Option<&'static [&'static str]> = None;
    /// Converts the value to its stored form.
    fn to_storage(&self) -> Self::Storage;
    /// Converts a stored value back; fails (never panics) on malformed data.
    fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError>;
}

/// The stored form of a value, for comparing columns in hand-written diesel filters.
///
/// ```
/// # use custodian_core::stored;
/// let id = uuid::Uuid::nil();
/// assert_eq!(stored(&id), "00000000-0000-0000-0000-000000000000");
/// ```
pub fn stored<T: ColumnValue>(value: &T) -> T::Storage {
    value.to_storage()
}

macro_rules! identity_value {
    ($($ty:ty => $sql:ident, $kind:ident;)*) => {$(
        impl ColumnValue for $ty {
            type SqlType = sql_types::$sql;
            type Storage = $ty;
            const KIND: ColumnKind = ColumnKind::$kind;
            #[inline]
            fn to_storage(&self) -> Self::Storage {
                self.clone()
            }
            #[inline]
            fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError> {
                Ok(stored)
            }
        }
    )*};
}

identity_value! {
    i16 => SmallInt, SmallInt;
    i32 => Integer, Integer;
    i64 => BigInt, BigInt;
    bool => Bool, Bool;
    String => Text, Text;
    Vec<u8> => Binary, Binary;
    chrono::NaiveDate => Date, Date;
    f32 => Float, Float;
    f64 => Double, Double;
}

fn truncate_to_micros(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    let nanos = t.nanosecond();
    // Leap-second nanos (>= 1e9) keep their leap marker; only sub-microsecond digits go.
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

impl ColumnValue for chrono::NaiveDateTime {
    type SqlType = crate::sql_types::Datetime;
    type Storage = StoredDatetime;
    const KIND: ColumnKind = ColumnKind::Timestamp;
    #[inline]
    fn to_storage(&self) -> Self::Storage {
        StoredDatetime(truncate_to_micros(*self))
    }
    fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError> {
        Ok(stored.0)
    }
}

impl ColumnValue for chrono::DateTime<chrono::Utc> {
    type SqlType = crate::sql_types::Datetime;
    type Storage = StoredDatetime;
    const KIND: ColumnKind = ColumnKind::Timestamp;
    #[inline]
    fn to_storage(&self) -> Self::Storage {
        StoredDatetime(truncate_to_micros(self.naive_utc()))
    }
    fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError> {
        Ok(chrono::DateTime::from_naive_utc_and_offset(
            stored.0,
            chrono::Utc,
        ))
    }
}

impl ColumnValue for uuid::Uuid {
    type SqlType = sql_types::Text;
    type Storage = String;
    const KIND: ColumnKind = ColumnKind::Uuid;
    fn to_storage(&self) -> Self::Storage {
        self.hyphenated().to_string()
    }
    fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError> {
        Ok(uuid::Uuid::parse_str(&stored)?)
    }
}

impl ColumnValue for serde_json::Value {
    type SqlType = sql_types::Text;
    type Storage = String;
    const KIND: ColumnKind = ColumnKind::Json;
    fn to_storage(&self) -> Self::Storage {
        // Serialising a `Value` to a string cannot fail: its map keys are always strings.
        serde_json::to_string(self).unwrap_or_default()
    }
    fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError> {
        Ok(serde_json::from_str(&stored)?)
    }
}

impl ColumnValue for Decimal {
    type SqlType = sql_types::Text;
    type Storage = String;
    const KIND: ColumnKind = ColumnKind::Decimal;
    fn to_storage(&self) -> Self::Storage {
        self.normalized().to_plain_string()
    }
    fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError> {
        Ok(stored.parse::<Decimal>()?)
    }
}

impl<T> ColumnValue for Option<T>
where
    T: ColumnValue,
    T::SqlType:
        sql_types::SqlType<IsNull = sql_types::is_nullable::NotNull> + sql_types::SingleValue,
{
    type SqlType = sql_types::Nullable<T::SqlType>;
    type Storage = Option<T::Storage>;
    const KIND: ColumnKind = T::KIND;
    const NULLABLE: bool = true;
    const ALLOWED: Option<&'static [&'static str]> = T::ALLOWED;
    #[inline]
    fn to_storage(&self) -> Self::Storage {
        self.as_ref().map(T::to_storage)
    }
    fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError> {
        stored.map(T::from_storage).transpose()
    }
}

/// A field-less enum stored as the name of its variant; implemented by `#[derive(DbEnum)]`.
pub trait DbEnum: Sized + 'static {
    /// Every variant with its stored name, in declaration order.
    const VARIANTS: &'static [(&'static str, Self)];
    /// The stored name of this variant.
    fn as_str(&self) -> &'static str;
    /// The variant stored under `name`, if any.
    fn from_name(name: &str) -> Option<Self>;
}

/// Decodes the stored name of a [`DbEnum`], with an error naming the bad value.
pub fn decode_enum<E: DbEnum>(stored: &str) -> Result<E, DecodeError> {
    E::from_name(stored).ok_or_else(|| {
        format!(
            "`{stored}` is not a variant of {} (expected one of: {})",
            std::any::type_name::<E>(),
            E::VARIANTS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone, Utc};

    #[test]
    fn timestamps_are_truncated_to_micros() {
        let t = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 123_456_789)
            .unwrap();
        assert_eq!(
            t.to_storage().0.and_utc().timestamp_subsec_nanos(),
            123_456_000
        );
        let u = Utc.from_utc_datetime(&t);
        let back = chrono::DateTime::<Utc>::from_storage(u.to_storage()).unwrap();
        assert_eq!(back.timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn malformed_storage_is_an_error_not_a_panic() {
        assert!(uuid::Uuid::from_storage("not-a-uuid".into()).is_err());
        assert!(serde_json::Value::from_storage("{".into()).is_err());
        assert!(Decimal::from_storage("12,5".into()).is_err());
    }

    #[test]
    fn decimal_round_trips_exactly() {
        let d: Decimal = "12345678901234567890.000000000000000001".parse().unwrap();
        assert_eq!(Decimal::from_storage(d.to_storage()).unwrap(), d);
        let cents: Decimal = "0.10".parse().unwrap();
        assert_eq!(cents.to_storage(), "0.1");
    }

    #[test]
    fn option_maps_none_to_null() {
        assert_eq!(Option::<i32>::None.to_storage(), None);
        const { assert!(<Option<i32> as ColumnValue>::NULLABLE) };
        assert_eq!(Option::<uuid::Uuid>::from_storage(None).unwrap(), None);
    }
}
