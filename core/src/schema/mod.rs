//! Schema tools: the order in which tables must be created, the drift check comparing
//! entities with the live database, and the schema model that migrations are generated from
//! (`model`: tables as data, `diff`: the changes between two models, `loss`: which of them
//! lose data).
//!
//! [`Db::check_schema`](crate::Db::check_schema) reads the live columns of every entity's table
//! (PostgreSQL and MariaDB: `information_schema.columns`; SQLite: `PRAGMA table_info`) and
//! reports each [`Drift`]: a missing table, a missing column, a column whose type cannot hold
//! the entity's [`ColumnKind`], or a nullability mismatch. Columns the entity does not map are
//! not drift. [`Db::schema_drift`](crate::Db::schema_drift) returns the same findings as data.

mod advice;
pub use advice::Advice;
pub(crate) use advice::{unindexed_filters, unindexed_foreign_keys};
pub(crate) mod diff;
pub(crate) mod loss;
pub(crate) mod model;

use crate::entity::EntityMeta;
use crate::error::{Error, IntegrityKind, Result};
use crate::value::ColumnKind;
use std::fmt;

/// One column of a live table, as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    /// Column name.
    pub name: String,
    /// The database's type name (PostgreSQL and MariaDB: `information_schema` `data_type`;
    /// SQLite: the declared type).
    pub data_type: String,
    /// Whether the column accepts `NULL` (primary-key columns never do).
    pub nullable: bool,
}

/// One difference between an entity and the live database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Drift {
    /// The entity's table does not exist.
    MissingTable {
        /// Table name, schema-qualified if the entity has a schema.
        table: String,
    },
    /// A mapped column does not exist.
    MissingColumn {
        /// Table name, schema-qualified if the entity has a schema.
        table: String,
        /// Column name.
        column: String,
    },
    /// A column's live type cannot hold the entity's kind.
    TypeMismatch {
        /// Table name, schema-qualified if the entity has a schema.
        table: String,
        /// Column name.
        column: String,
        /// The entity's kind.
        expected: ColumnKind,
        /// The live type, as the database names it.
        found: String,
    },
    /// The column accepts `NULL` where the entity does not, or the other way round.
    Nullability {
        /// Table name, schema-qualified if the entity has a schema.
        table: String,
        /// Column name.
        column: String,
        /// Whether the entity's field is an `Option`.
        entity_nullable: bool,
        /// Whether the live column accepts `NULL`.
        live_nullable: bool,
    },
}

impl Drift {
    /// The table concerned.
    pub fn table(&self) -> &str {
        match self {
            Drift::MissingTable { table }
            | Drift::MissingColumn { table, .. }
            | Drift::TypeMismatch { table, .. }
            | Drift::Nullability { table, .. } => table,
        }
    }

    /// The column concerned, if the drift is about one column.
    pub fn column(&self) -> Option<&str> {
        match self {
            Drift::MissingTable { .. } => None,
            Drift::MissingColumn { column, .. }
            | Drift::TypeMismatch { column, .. }
            | Drift::Nullability { column, .. } => Some(column),
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::MissingTable { table } => write!(f, "table `{table}` is missing"),
            Drift::MissingColumn { table, column } => {
                write!(f, "column `{table}.{column}` is missing")
            }
            Drift::TypeMismatch {
                table,
                column,
                expected,
                found,
            } => write!(
                f,
                "column `{table}.{column}` has type `{found}`, which cannot hold {expected:?}"
            ),
            Drift::Nullability {
                table,
                column,
                entity_nullable,
                ..
            } => {
                if *entity_nullable {
                    write!(
                        f,
                        "column `{table}.{column}` is NOT NULL but the entity field is optional"
                    )
                } else {
                    write!(
                        f,
                        "column `{table}.{column}` accepts NULL but the entity field is not optional"
                    )
                }
            }
        }
    }
}

/// Every drift found by a schema check, readable as one report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaReport {
    /// The problems, in entity and column order.
    pub drifts: Vec<Drift>,
}

impl SchemaReport {
    /// Whether the live schema matches the entities.
    pub fn is_ok(&self) -> bool {
        self.drifts.is_empty()
    }

    /// `Ok` if there is no drift, else [`Error::Integrity`] carrying this report.
    pub fn into_result(self) -> Result<()> {
        if self.is_ok() {
            Ok(())
        } else {
            Err(Error::Integrity {
                kind: IntegrityKind::SchemaDrift,
                message: self.to_string(),
                source: Some(Box::new(self)),
            })
        }
    }
}

/// The source of an [`Error::Integrity`] of kind [`IntegrityKind::SchemaDrift`]: downcast it
/// to read the drifts.
impl std::error::Error for SchemaReport {}

impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.drifts.is_empty() {
            return f.write_str("schema matches the entities");
        }
        let n = self.drifts.len();
        write!(
            f,
            "schema drift ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.drifts {
            write!(f, "\n  - {d}")?;
        }
        Ok(())
    }
}

/// The table name of `meta` as reports show it: `schema.table` or `table`.
pub fn display_name(meta: &EntityMeta) -> String {
    match meta.schema {
        Some(s) => format!("{s}.{}", meta.table),
        None => meta.table.to_string(),
    }
}

/// Compares one entity with its live columns (`None`: the table does not exist), using
/// `compatible` to decide whether a live type can hold a column kind.
pub fn compare(
    meta: &EntityMeta,
    live: Option<&[LiveColumn]>,
    compatible: impl Fn(ColumnKind, &str) -> bool,
) -> Vec<Drift> {
    let table = display_name(meta);
    let Some(live) = live else {
        return vec![Drift::MissingTable { table }];
    };
    let mut out = Vec::new();
    for c in meta.columns {
        let Some(l) = live.iter().find(|l| l.name.eq_ignore_ascii_case(c.name)) else {
            out.push(Drift::MissingColumn {
                table: table.clone(),
                column: c.name.to_string(),
            });
            continue;
        };
        if !compatible(c.kind, &l.data_type) {
            out.push(Drift::TypeMismatch {
                table: table.clone(),
                column: c.name.to_string(),
                expected: c.kind,
                found: l.data_type.clone(),
            });
        }
        let entity_nullable = c.nullable && !c.primary_key;
        if entity_nullable != l.nullable {
            out.push(Drift::Nullability {
                table: table.clone(),
                column: c.name.to_string(),
                entity_nullable,
                live_nullable: l.nullable,
            });
        }
    }
    out
}

fn same_table(a: &EntityMeta, b: &EntityMeta) -> bool {
    a.table == b.table && a.schema == b.schema
}

/// The entities ordered so that every referenced (parent) table comes before the tables
/// referencing it, otherwise keeping the given order. References to tables outside the set
/// and self-references are ignored. A cycle of foreign keys is [`Error::Config`] naming the
/// tables in it.
pub fn dependency_order(metas: &[EntityMeta]) -> Result<Vec<EntityMeta>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn parents(metas: &[EntityMeta], i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for c in metas[i].columns {
            if let Some(fk) = &c.references {
                let parent = (fk.parent)();
                if let Some(p) = metas.iter().position(|m| same_table(m, &parent)) {
                    if p != i && !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }
    fn visit(
        metas: &[EntityMeta],
        i: usize,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        out: &mut Vec<EntityMeta>,
    ) -> Result<()> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..]
                    .iter()
                    .map(|&p| display_name(&metas[p]))
                    .collect();
                cycle.push(display_name(&metas[i]));
                return Err(Error::config(
                    "entities",
                    format!(
                        "foreign keys form a cycle: {} (tables in a cycle cannot be created \
                         in any order; make one reference nullable and add it later)",
                        cycle.join(" -> ")
                    ),
                ));
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        path.push(i);
        for p in parents(metas, i) {
            visit(metas, p, marks, path, out)?;
        }
        path.pop();
        marks[i] = Mark::Done;
        out.push(metas[i]);
        Ok(())
    }
    let mut marks = vec![Mark::New; metas.len()];
    let mut out = Vec::with_capacity(metas.len());
    for i in 0..metas.len() {
        if metas[..i].iter().any(|m| same_table(m, &metas[i])) {
            continue; // the same entity listed twice
        }
        visit(metas, i, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{ColumnMeta, ForeignKey, RefAction};

    fn meta(table: &'static str, columns: &'static [ColumnMeta]) -> EntityMeta {
        EntityMeta {
            name: table,
            table,
            schema: None,
            columns,
            indexes: &[],
        }
    }

    fn a() -> EntityMeta {
        meta("a", &[])
    }
    fn b() -> EntityMeta {
        static C: [ColumnMeta; 1] = [ColumnMeta {
            name: "parent_id",
            field: "parent_id",
            references: Some(ForeignKey {
                parent: a,
                on_delete: RefAction::NoAction,
                on_update: RefAction::NoAction,
                cascade: None,
            }),
            ..ColumnMeta::PLAIN
        }];
        meta("b", &C)
    }
    fn c() -> EntityMeta {
        static C: [ColumnMeta; 1] = [ColumnMeta {
            name: "parent_id",
            field: "parent_id",
            references: Some(ForeignKey {
                parent: b,
                on_delete: RefAction::NoAction,
                on_update: RefAction::NoAction,
                cascade: None,
            }),
            ..ColumnMeta::PLAIN
        }];
        meta("c", &C)
    }
    fn x() -> EntityMeta {
        static C: [ColumnMeta; 1] = [ColumnMeta {
            name: "y_id",
            field: "y_id",
            references: Some(ForeignKey {
                parent: y,
                on_delete: RefAction::NoAction,
                on_update: RefAction::NoAction,
                cascade: None,
            }),
            ..ColumnMeta::PLAIN
        }];
        meta("x", &C)
    }
    fn y() -> EntityMeta {
        static C: [ColumnMeta; 1] = [ColumnMeta {
            name: "x_id",
            field: "x_id",
            references: Some(ForeignKey {
                parent: x,
                on_delete: RefAction::NoAction,
                on_update: RefAction::NoAction,
                cascade: None,
            }),
            ..ColumnMeta::PLAIN
        }];
        meta("y", &C)
    }

    #[test]
    fn parents_come_first() {
        let order = dependency_order(&[c(), b(), a()]).unwrap();
        let names: Vec<_> = order.iter().map(|m| m.table).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn cycles_are_config_errors_naming_the_tables() {
        let err = dependency_order(&[a(), x(), y()]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        assert!(msg.contains("x -> y -> x"), "{msg}");
    }

    #[test]
    fn report_lists_every_problem() {
        static COLS: [ColumnMeta; 3] = [
            ColumnMeta {
                name: "id",
                field: "id",
                kind: ColumnKind::BigInt,
                primary_key: true,
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "code",
                field: "code",
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "note",
                field: "note",
                nullable: true,
                ..ColumnMeta::PLAIN
            },
        ];
        let m = meta("t", &COLS);
        let live = [
            LiveColumn {
                name: "id".into(),
                data_type: "text".into(),
                nullable: false,
            },
            LiveColumn {
                name: "note".into(),
                data_type: "text".into(),
                nullable: false,
            },
            LiveColumn {
                name: "extra".into(),
                data_type: "text".into(),
                nullable: true,
            },
        ];
        let drifts = compare(&m, Some(&live), |k, t| {
            (k == ColumnKind::Text) == (t == "text")
        });
        assert_eq!(drifts.len(), 3, "{drifts:?}");
        let report = SchemaReport { drifts }.to_string();
        assert!(report.contains("`t.id` has type `text`"), "{report}");
        assert!(report.contains("`t.code` is missing"), "{report}");
        assert!(report.contains("`t.note` is NOT NULL"), "{report}");
        assert_eq!(
            compare(&m, None, |_, _| true),
            [Drift::MissingTable { table: "t".into() }]
        );
    }
}
