//! The difference between two entity models, as dialect-free [`SchemaChange`]s, and the
//! changes among them that lose data.
//!
//! [`diff`] compares the tables of a previous [`Snapshot`] with the current ones: tables only
//! in the current model are created, tables only in the previous one dropped, and tables in
//! both altered by a [`TableAlter`] listing its [`AlterOp`]s in the order they must run (drop
//! foreign keys, indexes and checks; rename, drop, add and change columns; add checks, indexes
//! and foreign keys). A column is renamed, not dropped and added, when the current column
//! carries `renamed_from` naming a previous column that the current model no longer has.
//!
//! Which changes lose data is decided in [`super::loss`]; the backends turn each change into SQL (see
//! [`Backend::schema_change_sql`](crate::Backend::schema_change_sql)).

use super::model::{ColumnDef, IndexDef, Snapshot, TableDef};
use crate::error::{Error, Result};

/// One change of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    /// Create a table with its constraints and indexes.
    CreateTable(TableDef),
    /// Drop a table (its rows are lost).
    DropTable(TableDef),
    /// Change a table that exists before and after.
    AlterTable(TableAlter),
}

/// The changes to one table: its definition before and after, and the steps between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAlter {
    /// The table as it is.
    pub old: TableDef,
    /// The table as it becomes.
    pub new: TableDef,
    /// The steps, in the order they run.
    pub ops: Vec<AlterOp>,
}

/// One step of a [`TableAlter`]. Column names before a rename are old names, after it new
/// ones, as the variants say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    /// Drop the foreign key of a column (old name).
    DropForeignKey {
        /// Column (old name).
        column: String,
    },
    /// Drop an index or unique constraint of the old table.
    DropIndex(IndexDef),
    /// Drop the check constraint of a column (old name).
    DropCheck {
        /// Column (old name).
        column: String,
    },
    /// Rename a column, keeping its data.
    RenameColumn {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// Drop a column (its values are lost).
    DropColumn {
        /// Column (old name).
        column: String,
    },
    /// Add a column of the new table (without its check, indexes and foreign key, which
    /// follow as their own steps).
    AddColumn {
        /// Column (new name).
        column: String,
    },
    /// The column's kind, nullability or default (its SQL default, or the current time of a
    /// generated timestamp) changed. Dialects may change a column's
    /// type for reasons of their own too (MariaDB bounds the text a key covers), so they
    /// compare every kept column of [`TableAlter::kept_columns`].
    AlterColumn {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// Add the check constraint of a column (new name).
    AddCheck {
        /// Column (new name).
        column: String,
    },
    /// Add an index or unique constraint of the new table.
    AddIndex(IndexDef),
    /// Add the foreign key of a column (new name).
    AddForeignKey {
        /// Column (new name).
        column: String,
    },
}

impl TableAlter {
    /// The columns in both tables, as `(old, new)` pairs in new-table order (renamed ones
    /// under both names).
    pub fn kept_columns(&self) -> Vec<(&ColumnDef, &ColumnDef)> {
        self.new
            .columns
            .iter()
            .filter_map(|n| {
                let from = self.old_name_of(&n.name)?;
                Some((self.old.column(from)?, n))
            })
            .collect()
    }

    /// The old name of a new column that existed before (renamed or not).
    pub fn old_name_of<'a>(&'a self, new_name: &'a str) -> Option<&'a str> {
        for op in &self.ops {
            if let AlterOp::RenameColumn { from, to } = op {
                if to == new_name {
                    return Some(from);
                }
            }
            if let AlterOp::AddColumn { column } = op {
                if column == new_name {
                    return None;
                }
            }
        }
        self.old.column(new_name).map(|c| c.name.as_str())
    }

    /// Whether every step only adds or drops non-unique indexes.
    pub fn only_plain_indexes(&self) -> bool {
        self.ops
            .iter()
            .all(|op| matches!(op, AlterOp::AddIndex(i) | AlterOp::DropIndex(i) if !i.unique))
    }
}

fn pk_error(table: &TableDef, what: &str) -> Error {
    Error::config(
        "migrations",
        format!(
            "table `{}`: {what}; generate changes no primary key (write that migration by hand)",
            table.display_name()
        ),
    )
}

/// Pairs each new column with the old column it continues, or `None` for added columns.
fn match_columns<'a>(old: &'a TableDef, new: &'a TableDef) -> Vec<Option<&'a ColumnDef>> {
    new.columns
        .iter()
        .map(|n| {
            if let Some(o) = old.column(&n.name) {
                return Some(o);
            }
            let from = n.renamed_from.as_deref()?;
            if new.column(from).is_some() {
                return None;
            }
            old.column(from)
        })
        .collect()
}

fn alter(old: &TableDef, new: &TableDef) -> Result<Option<TableAlter>> {
    let matched = match_columns(old, new);
    let mut drops = Vec::new();
    let mut renames = Vec::new();
    let mut dropped = Vec::new();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    let mut adds = Vec::new();
    for (n, o) in new.columns.iter().zip(&matched) {
        let Some(o) = o else {
            if n.primary_key || n.auto_increment {
                return Err(pk_error(
                    new,
                    &format!("`{}` joins the primary key", n.name),
                ));
            }
            added.push(AlterOp::AddColumn {
                column: n.name.clone(),
            });
            continue;
        };
        if o.name != n.name {
            renames.push(AlterOp::RenameColumn {
                from: o.name.clone(),
                to: n.name.clone(),
            });
        }
        if o.primary_key != n.primary_key
            || o.auto_increment != n.auto_increment
            || (n.primary_key && o.kind != n.kind)
        {
            return Err(pk_error(
                new,
                &format!("primary-key column `{}` changes", n.name),
            ));
        }
        if o.kind != n.kind
            || o.nullable != n.nullable
            || o.default_sql != n.default_sql
            || o.defaults_to_now() != n.defaults_to_now()
        {
            changed.push(AlterOp::AlterColumn {
                from: o.name.clone(),
                to: n.name.clone(),
            });
        }
        let renamed = o.name != n.name;
        if o.check.is_some() && (renamed || o.check != n.check) {
            drops.push(AlterOp::DropCheck {
                column: o.name.clone(),
            });
        }
        if n.check.is_some() && (renamed || o.check != n.check) {
            adds.push(AlterOp::AddCheck {
                column: n.name.clone(),
            });
        }
        // A foreign key is re-created around a rename or a type change of its column (MariaDB
        // changes no column a foreign key uses).
        let refit = renamed || o.kind != n.kind;
        if o.references.is_some() && (refit || o.references != n.references) {
            drops.insert(
                0,
                AlterOp::DropForeignKey {
                    column: o.name.clone(),
                },
            );
        }
    }
    for o in &old.columns {
        if !matched.iter().flatten().any(|m| m.name == o.name) {
            if o.primary_key {
                return Err(pk_error(
                    old,
                    &format!("`{}` leaves the primary key", o.name),
                ));
            }
            if o.references.is_some() {
                drops.insert(
                    0,
                    AlterOp::DropForeignKey {
                        column: o.name.clone(),
                    },
                );
            }
            if o.check.is_some() {
                drops.push(AlterOp::DropCheck {
                    column: o.name.clone(),
                });
            }
            dropped.push(AlterOp::DropColumn {
                column: o.name.clone(),
            });
        }
    }
    for (n, o) in new.columns.iter().zip(&matched) {
        if o.is_none() && n.check.is_some() {
            adds.push(AlterOp::AddCheck {
                column: n.name.clone(),
            });
        }
    }
    // Indexes are the same when name, columns (under their new names) and uniqueness are.
    let renamed_to = |c: &String| -> String {
        new.columns
            .iter()
            .zip(&matched)
            .find(|(_, o)| o.is_some_and(|o| &o.name == c))
            .map_or_else(|| c.clone(), |(n, _)| n.name.clone())
    };
    let old_indexes = old.all_indexes();
    let new_indexes = new.all_indexes();
    let same = |a: &IndexDef, b: &IndexDef| {
        a.name == b.name
            && a.unique == b.unique
            && a.columns
                .iter()
                .map(renamed_to)
                .eq(b.columns.iter().cloned())
    };
    let mut index_drops: Vec<AlterOp> = old_indexes
        .iter()
        .filter(|o| !new_indexes.iter().any(|n| same(o, n)))
        .map(|o| AlterOp::DropIndex(o.clone()))
        .collect();
    let index_adds: Vec<AlterOp> = new_indexes
        .iter()
        .filter(|n| !old_indexes.iter().any(|o| same(o, n)))
        .map(|n| AlterOp::AddIndex(n.clone()))
        .collect();
    let mut fk_adds = Vec::new();
    for (n, o) in new.columns.iter().zip(&matched) {
        if n.references.is_some()
            && o.is_none_or(|o| {
                o.name != n.name || o.kind != n.kind || o.references != n.references
            })
        {
            fk_adds.push(AlterOp::AddForeignKey {
                column: n.name.clone(),
            });
        }
    }
    // Foreign keys first (MariaDB will not drop an index a foreign key uses), then indexes,
    // then checks.
    let fk_count = drops
        .iter()
        .filter(|op| matches!(op, AlterOp::DropForeignKey { .. }))
        .count();
    let mut ops: Vec<AlterOp> = drops.drain(..fk_count).collect();
    ops.append(&mut index_drops);
    ops.extend(drops);
    ops.extend(renames);
    ops.extend(dropped);
    ops.extend(added);
    ops.extend(changed);
    ops.extend(adds);
    ops.extend(index_adds);
    ops.extend(fk_adds);
    if ops.is_empty() {
        return Ok(None);
    }
    Ok(Some(TableAlter {
        old: old.clone(),
        new: new.clone(),
        ops,
    }))
}

/// The changes turning the tables of `from` into those of `to`: creates (in `to`'s order,
/// which [`generate`](super::generate) keeps parents first), alters, then drops (in reverse
/// of `from`'s order). Changing a primary key is [`Error::Config`] naming the table.
pub fn diff(from: &Snapshot, to: &Snapshot) -> Result<Vec<SchemaChange>> {
    let mut creates = Vec::new();
    let mut alters = Vec::new();
    for t in &to.tables {
        match from.tables.iter().find(|o| o.same_table(t)) {
            None => creates.push(SchemaChange::CreateTable(t.clone())),
            Some(o) => {
                if let Some(a) = alter(o, t)? {
                    alters.push(SchemaChange::AlterTable(a));
                }
            }
        }
    }
    let drops = from
        .tables
        .iter()
        .rev()
        .filter(|o| !to.tables.iter().any(|t| t.same_table(o)))
        .map(|o| SchemaChange::DropTable(o.clone()));
    Ok(creates.into_iter().chain(alters).chain(drops).collect())
}

/// `from` with the rename hints that undo the renames of `changes`, so that diffing from the
/// new tables to it reverses them.
pub fn undo_hints(from: &Snapshot, changes: &[SchemaChange]) -> Snapshot {
    let mut out = from.clone();
    for change in changes {
        let SchemaChange::AlterTable(a) = change else {
            continue;
        };
        let Some(t) = out.tables.iter_mut().find(|t| t.same_table(&a.old)) else {
            continue;
        };
        for op in &a.ops {
            if let AlterOp::RenameColumn { from, to } = op {
                if let Some(c) = t.columns.iter_mut().find(|c| &c.name == from) {
                    c.renamed_from = Some(to.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::loss::{losses, LossKind};
    use crate::migrate::model::{CheckDef, ForeignKeyDef, SNAPSHOT_FORMAT};
    use crate::value::ColumnKind;

    fn snap(tables: Vec<TableDef>) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            tables,
        }
    }

    fn table(name: &str, columns: Vec<ColumnDef>) -> TableDef {
        let mut id = ColumnDef::new("id", ColumnKind::BigInt);
        id.primary_key = true;
        id.auto_increment = true;
        let mut all = vec![id];
        all.extend(columns);
        TableDef {
            table: name.into(),
            schema: None,
            columns: all,
            indexes: vec![],
        }
    }

    fn col(name: &str, kind: ColumnKind) -> ColumnDef {
        ColumnDef::new(name, kind)
    }

    fn ops(changes: &[SchemaChange]) -> &[AlterOp] {
        match changes {
            [SchemaChange::AlterTable(a)] => &a.ops,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_same_model_has_no_changes() {
        let s = snap(vec![table("t", vec![col("a", ColumnKind::Text)])]);
        assert!(diff(&s, &s).unwrap().is_empty());
    }

    #[test]
    fn tables_are_created_and_dropped() {
        let a = table("a", vec![]);
        let b = table("b", vec![]);
        let changes = diff(&snap(vec![a.clone()]), &snap(vec![b.clone()])).unwrap();
        assert_eq!(
            changes,
            [
                SchemaChange::CreateTable(b),
                SchemaChange::DropTable(a.clone())
            ]
        );
        let lost = losses(&changes);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].kind, LossKind::DropTable);
        assert_eq!(lost[0].to_string(), "dropping table `a` deletes its rows");
    }

    #[test]
    fn a_hinted_rename_keeps_the_column_and_reverses() {
        let mut code = col("code", ColumnKind::Text);
        code.unique = true;
        let old = snap(vec![table("t", vec![code.clone()])]);
        let mut renamed = code.clone();
        renamed.name = "ref".into();
        renamed.renamed_from = Some("code".into());
        let new = snap(vec![table("t", vec![renamed])]);
        let changes = diff(&old, &new).unwrap();
        let unique = |c: &str| IndexDef {
            name: format!("t_{c}_key"),
            columns: vec![c.into()],
            unique: true,
        };
        assert_eq!(
            ops(&changes),
            [
                AlterOp::DropIndex(unique("code")),
                AlterOp::RenameColumn {
                    from: "code".into(),
                    to: "ref".into()
                },
                AlterOp::AddIndex(unique("ref")),
            ]
        );
        assert!(losses(&changes).is_empty());
        let back = diff(&new, &undo_hints(&old, &changes)).unwrap();
        assert_eq!(
            ops(&back)[1],
            AlterOp::RenameColumn {
                from: "ref".into(),
                to: "code".into()
            }
        );
        // Without the hint it is a drop and an add, and the drop loses data.
        let mut plain = new.clone();
        plain.tables[0].columns[1].renamed_from = None;
        let changes = diff(&old, &plain).unwrap();
        let kinds: Vec<_> = losses(&changes).into_iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [LossKind::DropColumn, LossKind::NotNullWithoutDefault]
        );
    }

    #[test]
    fn type_and_null_changes_are_judged() {
        let mut n = col("n", ColumnKind::Integer);
        n.nullable = true;
        let old = snap(vec![table(
            "t",
            vec![n.clone(), col("s", ColumnKind::Text)],
        )]);
        let mut wide = n.clone();
        wide.kind = ColumnKind::BigInt;
        wide.nullable = false;
        wide.default_sql = Some("0".into());
        let new = snap(vec![table("t", vec![wide, col("s", ColumnKind::Text)])]);
        let changes = diff(&old, &new).unwrap();
        assert_eq!(
            ops(&changes),
            [AlterOp::AlterColumn {
                from: "n".into(),
                to: "n".into()
            }]
        );
        assert!(losses(&changes).is_empty(), "widening, with a default");
        let mut narrow = n.clone();
        narrow.kind = ColumnKind::SmallInt;
        narrow.nullable = false;
        let new = snap(vec![table("t", vec![narrow, col("s", ColumnKind::Text)])]);
        let lost = losses(&diff(&old, &new).unwrap());
        assert_eq!(
            lost.iter().map(|l| l.kind.clone()).collect::<Vec<_>>(),
            [
                LossKind::NarrowType {
                    from: ColumnKind::Integer,
                    to: ColumnKind::SmallInt
                },
                LossKind::NotNullWithoutDefault
            ]
        );
        assert_eq!(lost[0].column.as_deref(), Some("n"));
    }

    #[test]
    fn constraints_are_dropped_before_and_added_after_columns() {
        let old = snap(vec![table("t", vec![col("a", ColumnKind::Text)])]);
        let mut a = col("a", ColumnKind::Text);
        a.check = Some(CheckDef::Sql("a <> ''".into()));
        let mut p = col("p_id", ColumnKind::BigInt);
        p.nullable = true;
        p.references = Some(ForeignKeyDef {
            table: "p".into(),
            schema: None,
            columns: vec!["id".into()],
            on_delete: Default::default(),
            on_update: Default::default(),
        });
        let new = snap(vec![table("t", vec![a, p])]);
        let changes = diff(&old, &new).unwrap();
        let expected = [
            AlterOp::AddColumn {
                column: "p_id".into(),
            },
            AlterOp::AddCheck { column: "a".into() },
            AlterOp::AddIndex(IndexDef {
                name: "t_p_id_idx".into(),
                columns: vec!["p_id".into()],
                unique: false,
            }),
            AlterOp::AddForeignKey {
                column: "p_id".into(),
            },
        ];
        assert_eq!(ops(&changes), expected);
        let back = diff(&new, &old).unwrap();
        assert!(matches!(ops(&back)[0], AlterOp::DropForeignKey { .. }));
        assert!(matches!(ops(&back)[1], AlterOp::DropIndex(_)));
        assert!(matches!(ops(&back)[2], AlterOp::DropCheck { .. }));
        assert!(matches!(ops(&back)[3], AlterOp::DropColumn { .. }));
    }

    #[test]
    fn a_foreign_key_is_refitted_around_a_type_change() {
        let mut p = col("p_id", ColumnKind::Integer);
        p.references = Some(ForeignKeyDef {
            table: "p".into(),
            schema: None,
            columns: vec!["id".into()],
            on_delete: Default::default(),
            on_update: Default::default(),
        });
        let old = snap(vec![table("t", vec![p.clone()])]);
        p.kind = ColumnKind::BigInt;
        let new = snap(vec![table("t", vec![p])]);
        let changes = diff(&old, &new).unwrap();
        assert_eq!(
            ops(&changes),
            [
                AlterOp::DropForeignKey {
                    column: "p_id".into()
                },
                AlterOp::AlterColumn {
                    from: "p_id".into(),
                    to: "p_id".into()
                },
                AlterOp::AddForeignKey {
                    column: "p_id".into()
                },
            ]
        );
    }

    #[test]
    fn primary_key_changes_are_refused() {
        let old = snap(vec![table("t", vec![col("a", ColumnKind::Text)])]);
        let mut new = old.clone();
        new.tables[0].columns[0].kind = ColumnKind::Integer;
        let err = diff(&old, &new).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        assert!(err.to_string().contains("table `t`"), "{err}");
    }
}
