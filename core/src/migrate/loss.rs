//! Which migration changes lose data or cannot apply to the rows a table already has: what
//! [`generate`](super::generate) refuses unless
//! [`GenerateOptions::allow_data_loss`](super::GenerateOptions::allow_data_loss) is set.

use super::diff::{AlterOp, SchemaChange};
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

/// One change that [`generate`](super::generate) refuses without
/// [`GenerateOptions::allow_data_loss`](super::GenerateOptions::allow_data_loss).
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

/// Whether every value of kind `from` is a value of kind `to`.
pub fn widens(from: ColumnKind, to: ColumnKind) -> bool {
    use ColumnKind::*;
    from == to
        || matches!(
            (from, to),
            (SmallInt, Integer | BigInt | Double)
                | (Integer, BigInt | Double)
                | (Float, Double)
                | (Uuid | Enum | Json, Text)
        )
}

/// The changes among `changes` that lose data or cannot apply to existing rows.
pub fn losses(changes: &[SchemaChange]) -> Vec<LossyChange> {
    let mut out = Vec::new();
    for change in changes {
        match change {
            SchemaChange::CreateTable(_) => {}
            SchemaChange::DropTable(t) => out.push(LossyChange {
                table: t.display_name(),
                column: None,
                kind: LossKind::DropTable,
            }),
            SchemaChange::AlterTable(a) => {
                let table = a.new.display_name();
                let lossy = |column: &str, kind| LossyChange {
                    table: table.clone(),
                    column: Some(column.to_string()),
                    kind,
                };
                for op in &a.ops {
                    match op {
                        AlterOp::DropColumn { column } => {
                            out.push(lossy(column, LossKind::DropColumn))
                        }
                        AlterOp::AddColumn { column } => {
                            let Some(c) = a.new.column(column) else {
                                continue;
                            };
                            if !c.nullable && c.default_sql.is_none() && !c.generated {
                                out.push(lossy(column, LossKind::NotNullWithoutDefault));
                            }
                        }
                        AlterOp::AlterColumn { from, to } => {
                            let (Some(o), Some(n)) = (a.old.column(from), a.new.column(to)) else {
                                continue;
                            };
                            if !widens(o.kind, n.kind) {
                                out.push(lossy(
                                    to,
                                    LossKind::NarrowType {
                                        from: o.kind,
                                        to: n.kind,
                                    },
                                ));
                            }
                            if o.nullable && !n.nullable && n.default_sql.is_none() {
                                out.push(lossy(to, LossKind::NotNullWithoutDefault));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    out
}
