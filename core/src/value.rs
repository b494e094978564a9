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
//! | `f32`, `f64` | `Float`, `Double` | the float; NaN and infinities are refused (`Error::Validation`, code `not_storable`), `-0.0` is stored as `0.0` |
//! | `bool` | `Bool` | the boolean |
//! | `String` | `Text` | the text (UTF-8) |
//! | `Vec<u8>` | `Binary` | the bytes |
//! | `chrono::NaiveDate` | `Date` | the date |
//! | `chrono::NaiveDateTime` | [`Datetime`](crate::sql_types::Datetime) | the timestamp, truncated to microseconds, a leap second folded onto the next second |
//! | `chrono::DateTime<Utc>` | [`Datetime`](crate::sql_types::Datetime) | the UTC timestamp, truncated to microseconds |
//! | `uuid::Uuid` | `Text` | the hyphenated lower-case form (36 characters) |
//! | `serde_json::Value` | `Text` | compact JSON |
//! | [`Decimal`] | `Text` | the exact decimal in plain notation |
//! | enums with `#[derive(DbEnum)]` | `Text` | the variant's name |
//! | `Option<T>` | `Nullable<T's type>` | `NULL` for `None` |
//!
//! Timestamps are truncated to microseconds on the way in, so a value reads back identically from
//! PostgreSQL, MariaDB (`DATETIME(6)`) and SQLite. The stored form is also what the audit trail
//! records, so an audit image always equals the row read back.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
    type Storage: StoredJson;
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

    /// Why this value cannot be stored so that every backend and the audit image agree on it
    /// (`None`: it can). The write path refuses such values before writing anything.
    fn unstorable(&self) -> Option<&'static str> {
        None
    }

    /// The stored value as JSON, as audit images record it (backend-independent).
    fn to_json(&self) -> serde_json::Value {
        self.to_storage().to_json()
    }

    /// The value from its JSON image; fails on malformed images.
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        Self::from_storage(Self::Storage::from_json(json)?)
    }
}

/// JSON form of a stored value: integers and floats as numbers, booleans, text as strings,
/// bytes as lower-case hex, dates as `YYYY-MM-DD`, timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`
/// (UTC), `NULL` as `null`. Identical for every backend, so audit images and their hashes are.
pub trait StoredJson: Sized {
    /// This stored value as JSON.
    fn to_json(&self) -> serde_json::Value;
    /// The stored value of a JSON image.
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError>;
}

fn json_type_error(expected: &str, got: &serde_json::Value) -> DecodeError {
    format!("expected {expected} in the image, found {got}").into()
}

macro_rules! json_int {
    ($($ty:ty),*) => {$(
        impl StoredJson for $ty {
            fn to_json(&self) -> serde_json::Value {
                serde_json::Value::from(*self)
            }
            fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
                let n = json.as_i64().ok_or_else(|| json_type_error("an integer", json))?;
                Ok(<$ty>::try_from(n)?)
            }
        }
    )*};
}

json_int!(i16, i32, i64);

impl StoredJson for f64 {
    fn to_json(&self) -> serde_json::Value {
        serde_json::Number::from_f64(*self)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        json.as_f64()
            .ok_or_else(|| json_type_error("a number", json))
    }
}

impl StoredJson for f32 {
    fn to_json(&self) -> serde_json::Value {
        StoredJson::to_json(&f64::from(*self))
    }
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        // f32 -> f64 is exact, so the cast back is too.
        <f64 as StoredJson>::from_json(json).map(|v| v as f32)
    }
}

impl StoredJson for bool {
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Bool(*self)
    }
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        json.as_bool()
            .ok_or_else(|| json_type_error("a boolean", json))
    }
}

impl StoredJson for String {
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.clone())
    }
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        json.as_str()
            .map(str::to_string)
            .ok_or_else(|| json_type_error("a string", json))
    }
}

impl StoredJson for Vec<u8> {
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(hex::encode(self))
    }
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        let s = json
            .as_str()
            .ok_or_else(|| json_type_error("hex bytes", json))?;
        hex::decode(s)
            .ok()
            .ok_or_else(|| json_type_error("hex bytes", json))
    }
}

impl StoredJson for chrono::NaiveDate {
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.format("%Y-%m-%d").to_string())
    }
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        let s = json
            .as_str()
            .ok_or_else(|| json_type_error("a date", json))?;
        Ok(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")?)
    }
}

impl StoredJson for StoredDatetime {
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.0.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
    }
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        let s = json
            .as_str()
            .ok_or_else(|| json_type_error("a timestamp", json))?;
        Ok(StoredDatetime(chrono::NaiveDateTime::parse_from_str(
            s,
            "%Y-%m-%d %H:%M:%S%.f",
        )?))
    }
}

impl<S: StoredJson> StoredJson for Option<S> {
    fn to_json(&self) -> serde_json::Value {
        self.as_ref().map_or(serde_json::Value::Null, S::to_json)
    }
    fn from_json(json: &serde_json::Value) -> Result<Self, DecodeError> {
        if json.is_null() {
            Ok(None)
        } else {
            S::from_json(json).map(Some)
        }
    }
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
}

/// Why NaN and infinities are refused: MariaDB rejects them, PostgreSQL and SQLite store them,
/// and JSON (the audit image) cannot hold them.
const NON_FINITE: &str =
    "NaN and infinities cannot be stored on every backend nor recorded in the audit trail";

macro_rules! float_value {
    ($($ty:ty => $sql:ident, $kind:ident;)*) => {$(
        impl ColumnValue for $ty {
            type SqlType = sql_types::$sql;
            type Storage = $ty;
            const KIND: ColumnKind = ColumnKind::$kind;
            /// `-0.0` is stored as `0.0`: MariaDB and SQLite keep no negative zero, so
            /// PostgreSQL, the read-back and the audit image all hold `0.0`.
            #[inline]
            fn to_storage(&self) -> Self::Storage {
                if *self == 0.0 {
                    0.0
                } else {
                    *self
                }
            }
            #[inline]
            fn from_storage(stored: Self::Storage) -> Result<Self, DecodeError> {
                Ok(stored)
            }
            fn unstorable(&self) -> Option<&'static str> {
                (!self.is_finite()).then_some(NON_FINITE)
            }
        }
    )*};
}

float_value! {
    f32 => Float, Float;
    f64 => Double, Double;
}

/// The timestamp as every backend stores it: sub-microsecond digits dropped, and a leap second
/// (chrono's nanoseconds >= 1e9 in second 59) folded onto the following second, which is what
/// PostgreSQL stores for it and the only form MariaDB and SQLite can hold.
fn truncate_to_micros(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    let nanos = t.nanosecond();
    let micros = nanos - nanos % 1_000;
    if micros >= 1_000_000_000 {
        return t
            .with_nanosecond(micros - 1_000_000_000)
            .and_then(|s| s.checked_add_signed(chrono::TimeDelta::seconds(1)))
            .unwrap_or(t);
    }
    t.with_nanosecond(micros).unwrap_or(t)
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
        uuid::Uuid::parse_str(&stored).map_err(|e| format!("`{stored}` is not a UUID: {e}").into())
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
        serde_json::from_str(&stored).map_err(|e| format!("stored JSON is malformed: {e}").into())
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
        stored
            .parse::<Decimal>()
            .map_err(|e| format!("`{stored}` is not a decimal: {e}").into())
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
    fn unstorable(&self) -> Option<&'static str> {
        self.as_ref().and_then(T::unstorable)
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
    fn leap_seconds_fold_onto_the_next_second() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_789)
            .unwrap();
        let next = NaiveDate::from_ymd_opt(2017, 1, 1)
            .unwrap()
            .and_hms_micro_opt(0, 0, 0, 500_000)
            .unwrap();
        assert_eq!(leap.to_storage().0, next);
        assert_eq!(Utc.from_utc_datetime(&leap).to_storage().0, next);
    }

    #[test]
    fn floats_refuse_non_finite_and_store_zero_unsigned() {
        assert!(f64::NAN.unstorable().is_some());
        assert!(f32::INFINITY.unstorable().is_some());
        assert!(Some(f64::NEG_INFINITY).unstorable().is_some());
        assert!(Option::<f64>::None.unstorable().is_none());
        assert!(f64::MAX.unstorable().is_none());
        assert!((-0.0f64).to_storage().is_sign_positive());
        assert!((-0.0f32).to_storage().is_sign_positive());
        assert_eq!(ColumnValue::to_json(&-0.0f64), serde_json::json!(0.0));
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
    fn json_images_round_trip() {
        let t = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_micro_opt(1, 2, 3, 4)
            .unwrap();
        assert_eq!(t.to_json(), serde_json::json!("2024-02-29 01:02:03.000004"));
        assert_eq!(chrono::NaiveDateTime::from_json(&t.to_json()).unwrap(), t);
        assert_eq!(
            ColumnValue::to_json(&vec![0u8, 255]),
            serde_json::json!("00ff")
        );
        assert_eq!(
            <Vec<u8> as ColumnValue>::from_json(&serde_json::json!("00ff")).unwrap(),
            vec![0, 255]
        );
        assert_eq!(ColumnValue::to_json(&i64::MIN), serde_json::json!(i64::MIN));
        assert_eq!(
            <Option<i16> as ColumnValue>::from_json(&serde_json::Value::Null).unwrap(),
            None
        );
        assert!(<i16 as ColumnValue>::from_json(&serde_json::json!(70000)).is_err());
        assert!(<bool as ColumnValue>::from_json(&serde_json::json!("yes")).is_err());
        let f = 0.1f32;
        assert_eq!(
            <f32 as ColumnValue>::from_json(&ColumnValue::to_json(&f)).unwrap(),
            f
        );
        let d: Decimal = "12.50".parse().unwrap();
        assert_eq!(d.to_json(), serde_json::json!("12.5"));
    }

    #[test]
    fn option_maps_none_to_null() {
        assert_eq!(Option::<i32>::None.to_storage(), None);
        const { assert!(<Option<i32> as ColumnValue>::NULLABLE) };
        assert_eq!(Option::<uuid::Uuid>::from_storage(None).unwrap(), None);
    }
}
