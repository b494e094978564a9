//! Which migration changes lose data or cannot apply to the rows a table already has: what
//! [`generate`](crate::migrate::generate) refuses unless
//! [`GenerateOptions::allow_data_loss`](crate::migrate::GenerateOptions::allow_data_loss) is set.

use super::diff::{AlterOp, SchemaChange};
pub use crate::error::{LossKind, LossyChange};
use crate::value::ColumnKind;

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
