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
/// which [`generate`](crate::migrate::generate) keeps parents first), alters, then drops (in reverse
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
#[path = "diff_tests.rs"]
mod tests;
