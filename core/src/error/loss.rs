//! The changes a generated migration refuses because they lose data: what
//! [`Error::DataLoss`](super::Error::DataLoss) lists.

use crate::value::ColumnKind;
use std::fmt;

/// Why a change loses data or cannot apply to the rows a table already has.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossKind {
    /// The table and its rows are dropped.
    DropTable,
    /// The column and its values are dropped.
    DropColumn,
    /// The new kind cannot hold every value of the old one.
    NarrowType {
        /// Kind before.
        from: ColumnKind,
        /// Kind after.
        to: ColumnKind,
    },
    /// The column becomes (or is added as) `NOT NULL` without a default, so rows holding
    /// `NULL` (or no value yet) make the migration fail.
    NotNullWithoutDefault,
}

/// One change that [`migrate::generate`](crate::migrate::generate) refuses without
/// [`GenerateOptions::allow_data_loss`](crate::migrate::GenerateOptions::allow_data_loss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossyChange {
    /// Table, schema-qualified if it has a schema.
    pub table: String,
    /// Column, for column changes.
    pub column: Option<String>,
    /// What is lost.
    pub kind: LossKind,
}

impl fmt::Display for LossyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, c) = (&self.table, self.column.as_deref().unwrap_or(""));
        match &self.kind {
            LossKind::DropTable => write!(f, "dropping table `{t}` deletes its rows"),
            LossKind::DropColumn => write!(f, "dropping column `{t}.{c}` deletes its values"),
            LossKind::NarrowType { from, to } => write!(
                f,
                "changing column `{t}.{c}` from {from:?} to {to:?} may not keep every value"
            ),
            LossKind::NotNullWithoutDefault => write!(
                f,
                "column `{t}.{c}` becomes NOT NULL without a default, which rows without a \
                 value refuse"
            ),
        }
    }
}
