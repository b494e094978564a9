//! SQL types custodian adds to diesel's, where the backends disagree.
//!
//! [`Datetime`]: a date and time without zone, bound as `TIMESTAMP` on PostgreSQL and SQLite but
//! as `DATETIME` on MySQL/MariaDB. diesel's shared `Timestamp` type binds MariaDB parameters as
//! `TIMESTAMP`, whose range ends in 2038: MariaDB silently stores `NULL` for later values. Binding
//! as `DATETIME` keeps the full range 1000-01-01 to 9999-12-31 on every backend.
//!
//! Its Rust value is [`StoredDatetime`], which `NaiveDateTime` and `DateTime<Utc>` fields convert
//! to; compare such columns in filters with [`stored`](crate::stored):
//! `all_types::at.gt(custodian::stored(&cutoff))`.

use crate::conn::MultiBackend;
use chrono::NaiveDateTime;
use diesel::deserialize::{self, FromSql};
#[cfg(feature = "mysql")]
use diesel::mysql::Mysql;
#[cfg(feature = "postgres")]
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{self, HasSqlType};
#[cfg(feature = "sqlite")]
use diesel::sqlite::Sqlite;

/// Date and time without zone (UTC by convention), microsecond precision, years 1000 to 9999.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 1114, array_oid = 1115))]
#[diesel(mysql_type(name = "DateTime"))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Datetime;

impl sql_types::SqlOrd for Datetime {}

impl HasSqlType<Datetime> for MultiBackend {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        MultiBackend::lookup_sql_type::<Datetime>(lookup)
    }
}

/// The stored form of `NaiveDateTime` and `DateTime<Utc>` fields: a UTC date and time.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = Datetime)]
pub struct StoredDatetime(pub NaiveDateTime);

#[cfg(feature = "postgres")]
impl ToSql<Datetime, Pg> for StoredDatetime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <NaiveDateTime as ToSql<sql_types::Timestamp, Pg>>::to_sql(&self.0, out)
    }
}

#[cfg(feature = "mysql")]
impl ToSql<Datetime, Mysql> for StoredDatetime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Mysql>) -> serialize::Result {
        <NaiveDateTime as ToSql<sql_types::Datetime, Mysql>>::to_sql(&self.0, out)
    }
}

#[cfg(feature = "sqlite")]
impl ToSql<Datetime, Sqlite> for StoredDatetime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <NaiveDateTime as ToSql<sql_types::Timestamp, Sqlite>>::to_sql(&self.0, out)
    }
}

impl ToSql<Datetime, MultiBackend> for StoredDatetime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Datetime, self));
        Ok(IsNull::No)
    }
}

#[cfg(feature = "postgres")]
impl FromSql<Datetime, Pg> for StoredDatetime {
    fn from_sql(bytes: diesel::pg::PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<sql_types::Timestamp, Pg>>::from_sql(bytes).map(StoredDatetime)
    }
}

#[cfg(feature = "mysql")]
impl FromSql<Datetime, Mysql> for StoredDatetime {
    fn from_sql(bytes: diesel::mysql::MysqlValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<sql_types::Datetime, Mysql>>::from_sql(bytes).map(StoredDatetime)
    }
}

#[cfg(feature = "sqlite")]
impl FromSql<Datetime, Sqlite> for StoredDatetime {
    fn from_sql(bytes: diesel::sqlite::SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<sql_types::Timestamp, Sqlite>>::from_sql(bytes)
            .map(StoredDatetime)
    }
}

impl FromSql<Datetime, MultiBackend> for StoredDatetime {
    fn from_sql(
        bytes: <MultiBackend as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        bytes.from_sql::<StoredDatetime, Datetime>()
    }
}
