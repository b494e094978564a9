//! Migration steps as `ALTER TABLE` statements, for the dialects that change tables in place
//! (PostgreSQL and MariaDB); SQLite rebuilds tables instead (see [`crate::rebuild`]).
//!
//! [`alter_table`] writes the steps of a [`TableAlter`] in their order: foreign keys, indexes
//! and checks dropped; columns renamed, dropped and added; kept columns changed (type, default,
//! nullability, with `NULL`s set to the new default before a column becomes `NOT NULL`; a
//! MariaDB index whose prefix no longer fits is dropped before and created again after); checks,
//! indexes and foreign keys added. An [`AlterDialect`] supplies the statements that differ.

use crate::ddl::{self, DdlDialect};
use custodian_core::migrate::{AlterOp, ColumnDef, IndexDef, SchemaChange, TableAlter, TableDef};

/// The `ALTER TABLE` statements that differ per dialect.
pub trait AlterDialect: DdlDialect {
    /// Drops the unique constraint `name` of `t`.
    fn drop_unique(&self, t: &TableDef, name: &str) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            ddl::qualified(self, t),
            self.quote(name)
        )
    }
    /// Drops the non-unique index `name` of `t`.
    fn drop_index(&self, t: &TableDef, name: &str) -> String {
        format!("DROP INDEX {}", ddl::qualified_as(self, t, name))
    }
    /// Drops the foreign key `name` of `t`.
    fn drop_foreign_key(&self, t: &TableDef, name: &str) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            ddl::qualified(self, t),
            self.quote(name)
        )
    }
    /// Changes the kept column `old` of table `before` into `new` of table `after` (already
    /// renamed): type, default and nullability, as far as they differ.
    fn change_column(
        &self,
        before: &TableDef,
        after: &TableDef,
        old: &ColumnDef,
        new: &ColumnDef,
    ) -> Vec<String> {
        let table = ddl::qualified(self, after);
        let col = self.quote(&new.name);
        let alter = |what: String| format!("ALTER TABLE {table} ALTER COLUMN {col} {what}");
        let (old_type, new_type) = (
            ddl::type_of(self, before, old),
            ddl::type_of(self, after, new),
        );
        let (old_default, new_default) = (ddl::default_of(self, old), ddl::default_of(self, new));
        let mut out = Vec::new();
        let retype = old_type != new_type;
        // A default of the old type may not convert: drop it, change the type, set the new one.
        if old_default.is_some() && (retype || old_default != new_default) {
            out.push(alter("DROP DEFAULT".into()));
        }
        if retype {
            out.push(alter(format!("TYPE {new_type} USING {col}::{new_type}")));
        }
        if let Some(d) = &new_default {
            if retype || old_default.as_ref() != Some(d) {
                out.push(alter(format!("SET DEFAULT {d}")));
            }
        }
        if old.nullable != new.nullable {
            let what = if new.nullable {
                "DROP NOT NULL"
            } else {
                "SET NOT NULL"
            };
            out.push(alter(what.into()));
        }
        out
    }
}

/// The statements of one migration step, for a dialect that alters tables in place.
pub fn change_sql<D: AlterDialect + ?Sized>(d: &D, change: &SchemaChange) -> Vec<String> {
    match change {
        SchemaChange::CreateTable(t) => ddl::create_table(d, t),
        SchemaChange::DropTable(t) => vec![ddl::drop_table(d, t)],
        SchemaChange::AlterTable(a) => alter_table(d, a),
    }
}

/// `UPDATE` setting the `NULL`s of a column that becomes `NOT NULL` to its new default.
fn backfill<D: DdlDialect + ?Sized>(
    d: &D,
    a: &TableAlter,
    old: &ColumnDef,
    new: &ColumnDef,
) -> Option<String> {
    if !old.nullable || new.nullable {
        return None;
    }
    let default = ddl::default_of(d, new)?;
    let col = d.quote(&new.name);
    Some(format!(
        "UPDATE {} SET {col} = {default} WHERE {col} IS NULL",
        ddl::qualified(d, &a.new)
    ))
}

/// The non-unique indexes both tables keep whose columns change between a prefix and the whole
/// column (MariaDB: a text column a key starts or stops covering); they are dropped before the
/// columns change and created again after.
fn reshaped_indexes<D: DdlDialect + ?Sized>(d: &D, a: &TableAlter) -> Vec<IndexDef> {
    let touched = |name: &str| {
        a.ops
            .iter()
            .any(|op| matches!(op, AlterOp::DropIndex(i) | AlterOp::AddIndex(i) if i.name == name))
    };
    let old_indexes = a.old.all_indexes();
    a.new
        .all_indexes()
        .into_iter()
        .filter(|n| !n.unique && !touched(&n.name))
        .filter(|n| {
            old_indexes.iter().any(|o| {
                o.name == n.name
                    && o.columns.len() == n.columns.len()
                    && o.columns.iter().zip(&n.columns).any(|(oc, nc)| {
                        ddl::index_prefixed(d, &a.old, oc) != ddl::index_prefixed(d, &a.new, nc)
                    })
            })
        })
        .collect()
}

fn change_columns<D: AlterDialect + ?Sized>(d: &D, a: &TableAlter, out: &mut Vec<String>) {
    let reshaped = reshaped_indexes(d, a);
    out.extend(reshaped.iter().map(|i| d.drop_index(&a.new, &i.name)));
    for (old, new) in a.kept_columns() {
        let changes = d.change_column(&a.old, &a.new, old, new);
        if changes.is_empty() {
            continue;
        }
        out.extend(backfill(d, a, old, new));
        out.extend(changes);
    }
    out.extend(
        reshaped
            .iter()
            .map(|i| ddl::create_index(d, &a.new, &i.name, &i.columns)),
    );
}

/// The `ALTER TABLE` (and `CREATE` / `DROP INDEX`) statements of `a`, in order.
pub fn alter_table<D: AlterDialect + ?Sized>(d: &D, a: &TableAlter) -> Vec<String> {
    let table = ddl::qualified(d, &a.new);
    let mut out = Vec::new();
    let mut columns_changed = false;
    for op in &a.ops {
        let adds_constraint = matches!(
            op,
            AlterOp::AddCheck { .. } | AlterOp::AddIndex(_) | AlterOp::AddForeignKey { .. }
        );
        if adds_constraint && !columns_changed {
            change_columns(d, a, &mut out);
            columns_changed = true;
        }
        let new_column = |name: &str| a.new.column(name);
        match op {
            AlterOp::DropForeignKey { column } => {
                out.push(d.drop_foreign_key(&a.old, &a.old.foreign_key_name(column)))
            }
            AlterOp::DropIndex(i) if i.unique => out.push(d.drop_unique(&a.old, &i.name)),
            AlterOp::DropIndex(i) => out.push(d.drop_index(&a.old, &i.name)),
            AlterOp::DropCheck { column } => out.push(format!(
                "ALTER TABLE {table} DROP CONSTRAINT {}",
                d.quote(&a.old.check_name(column))
            )),
            AlterOp::RenameColumn { from, to } => out.push(format!(
                "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                d.quote(from),
                d.quote(to)
            )),
            AlterOp::DropColumn { column } => out.push(format!(
                "ALTER TABLE {table} DROP COLUMN {}",
                d.quote(column)
            )),
            AlterOp::AddColumn { column } => {
                if let Some(c) = new_column(column) {
                    out.push(format!(
                        "ALTER TABLE {table} ADD COLUMN {}",
                        ddl::column_def(d, &a.new, c)
                    ));
                }
            }
            AlterOp::AlterColumn { .. } => {}
            AlterOp::AddCheck { column } => {
                if let Some(check) =
                    new_column(column).and_then(|c| ddl::check_constraint(d, &a.new, c))
                {
                    out.push(format!("ALTER TABLE {table} ADD {check}"));
                }
            }
            AlterOp::AddIndex(i) if i.unique => out.push(format!(
                "ALTER TABLE {table} ADD {}",
                d.unique_constraint(&i.name, &ddl::quoted_list(d, &i.columns))
            )),
            AlterOp::AddIndex(i) => out.push(ddl::create_index(d, &a.new, &i.name, &i.columns)),
            AlterOp::AddForeignKey { column } => {
                if let Some(fk) =
                    new_column(column).and_then(|c| ddl::foreign_key_constraint(d, &a.new, c))
                {
                    out.push(format!("ALTER TABLE {table} ADD {fk}"));
                }
            }
        }
    }
    if !columns_changed {
        change_columns(d, a, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::{Mysql, Postgres, Sqlite};
    use custodian_core::migrate::{diff, CheckDef, ColumnDef, Snapshot, TableDef};
    use custodian_core::{Backend, ColumnKind};

    fn people(columns: Vec<ColumnDef>) -> Snapshot {
        let mut id = ColumnDef::new("id", ColumnKind::BigInt);
        id.primary_key = true;
        id.auto_increment = true;
        let mut all = vec![id];
        all.extend(columns);
        Snapshot {
            format: custodian_core::migrate::SNAPSHOT_FORMAT,
            tables: vec![TableDef {
                table: "people".into(),
                schema: None,
                columns: all,
                indexes: vec![],
            }],
        }
    }

    /// v1: `code` text, `age` integer, `nick` nullable. v2: `code` renamed `ref` and unique,
    /// `age` bigint, `nick` NOT NULL with a default, `score` with a check.
    fn versions() -> (Snapshot, Snapshot) {
        let mut nick = ColumnDef::new("nick", ColumnKind::Text);
        nick.nullable = true;
        let v1 = people(vec![
            ColumnDef::new("code", ColumnKind::Text),
            ColumnDef::new("age", ColumnKind::Integer),
            nick.clone(),
            ColumnDef::new("score", ColumnKind::Integer),
        ]);
        let mut code = ColumnDef::new("ref", ColumnKind::Text);
        code.renamed_from = Some("code".into());
        code.unique = true;
        nick.nullable = false;
        nick.default_sql = Some("'x'".into());
        let mut score = ColumnDef::new("score", ColumnKind::Integer);
        score.check = Some(CheckDef::Range {
            min: Some(0),
            max: None,
        });
        let v2 = people(vec![
            code,
            ColumnDef::new("age", ColumnKind::BigInt),
            nick,
            score,
        ]);
        (v1, v2)
    }

    fn sql(backend: &dyn Backend) -> Vec<String> {
        let (v1, v2) = versions();
        diff(&v1, &v2)
            .unwrap()
            .iter()
            .flat_map(|c| backend.schema_change_sql(c))
            .collect()
    }

    #[test]
    fn postgres_alters_in_place() {
        assert_eq!(
            sql(&Postgres),
            [
                "ALTER TABLE \"people\" RENAME COLUMN \"code\" TO \"ref\"",
                "ALTER TABLE \"people\" ALTER COLUMN \"age\" TYPE BIGINT USING \"age\"::BIGINT",
                "UPDATE \"people\" SET \"nick\" = 'x' WHERE \"nick\" IS NULL",
                "ALTER TABLE \"people\" ALTER COLUMN \"nick\" SET DEFAULT 'x'",
                "ALTER TABLE \"people\" ALTER COLUMN \"nick\" SET NOT NULL",
                "ALTER TABLE \"people\" ADD CONSTRAINT \"people_score_check\" CHECK (\"score\" >= 0)",
                "ALTER TABLE \"people\" ADD CONSTRAINT \"people_ref_key\" UNIQUE (\"ref\")",
            ]
        );
    }

    #[test]
    fn mariadb_modifies_whole_columns_and_bounds_keyed_text() {
        assert_eq!(
            sql(&Mysql),
            [
                "ALTER TABLE `people` RENAME COLUMN `code` TO `ref`",
                "ALTER TABLE `people` MODIFY COLUMN `ref` VARCHAR(255) NOT NULL",
                "ALTER TABLE `people` MODIFY COLUMN `age` BIGINT NOT NULL",
                "UPDATE `people` SET `nick` = 'x' WHERE `nick` IS NULL",
                "ALTER TABLE `people` MODIFY COLUMN `nick` LONGTEXT NOT NULL DEFAULT 'x'",
                "ALTER TABLE `people` ADD CONSTRAINT `people_score_check` CHECK (`score` >= 0)",
                "ALTER TABLE `people` ADD UNIQUE KEY `people_ref_key` (`ref`)",
            ]
        );
        // Backwards: the unique goes before the column is unbounded again.
        let (v1, v2) = versions();
        let back: Vec<String> = diff(
            &v2,
            &custodian_core::migrate::undo_hints(&v1, &diff(&v1, &v2).unwrap()),
        )
        .unwrap()
        .iter()
        .flat_map(|c| Mysql.schema_change_sql(c))
        .collect();
        assert_eq!(back[0], "ALTER TABLE `people` DROP INDEX `people_ref_key`");
        assert_eq!(
            back[1],
            "ALTER TABLE `people` DROP CONSTRAINT `people_score_check`"
        );
        assert_eq!(
            back[2],
            "ALTER TABLE `people` RENAME COLUMN `ref` TO `code`"
        );
        assert!(back
            .contains(&"ALTER TABLE `people` MODIFY COLUMN `code` LONGTEXT NOT NULL".to_string()));
    }

    #[test]
    fn sqlite_rebuilds_and_copies_rows() {
        let out = sql(&Sqlite);
        assert!(out[0].starts_with("CREATE TEMP TABLE"), "{out:?}");
        assert!(out[3].starts_with("CREATE TABLE \"_custodian_rebuild_people\" (\n  \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n  \"ref\" TEXT NOT NULL,"), "{}", out[3]);
        assert_eq!(
            &out[4..],
            [
                "INSERT INTO \"_custodian_rebuild_people\" (\"id\", \"ref\", \"age\", \"nick\", \"score\") \
                 SELECT \"id\", \"code\", \"age\", COALESCE(\"nick\", 'x'), \"score\" FROM \"people\"",
                "DELETE FROM \"sqlite_sequence\" WHERE name = '_custodian_rebuild_people'",
                "INSERT INTO \"sqlite_sequence\" (name, seq) SELECT '_custodian_rebuild_people', seq \
                 FROM \"sqlite_sequence\" WHERE name = 'people'",
                "DROP TABLE \"people\"",
                "ALTER TABLE \"_custodian_rebuild_people\" RENAME TO \"people\"",
            ]
        );
    }
}
