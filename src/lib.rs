//! # custodian
//!
//! Compile-time-checked entities on diesel, one API over PostgreSQL, MySQL/MariaDB and SQLite.
#![deny(missing_docs)]

pub use custodian_core::*;
pub use custodian_derive::{entity, DbEnum};

#[doc(hidden)]
pub use custodian_core::private as __private;

/// diesel, re-exported so user code and generated code agree on its version.
pub use custodian_core::private::diesel;
