//! Migration steps for SQLite, whose `ALTER TABLE` cannot change a column or a constraint:
//! a changed table is rebuilt, as SQLite's documentation describes.
//!
//! The new table is created under a temporary name with the new definition (constraint
//! names already final), the rows are copied (kept columns under their new names, cast where
//! the type changes, `NULL`s set to the new default where the column becomes `NOT NULL`), an
//! auto-increment sequence carried over (so keys of deleted rows are not used again), the old
//! table dropped (with its indexes), the new one renamed, and its indexes created. A
//! change of non-unique indexes only is done with `CREATE INDEX` / `DROP INDEX` instead.
//!
//! Dropping the old table while foreign-key enforcement is on would fire the foreign-key
//! actions of its rows (deleting the rows of child tables that cascade); the SQLite backend
//! turns enforcement off while migrations run and checks for violations before each migration
//! commits. A rebuild run elsewhere with enforcement on (the diesel CLI, `down.sql` by hand)
//! fails on its first statement, the check constraint [`GUARD_CONSTRAINT`], before touching
//! any table.

use crate::ddl::{self, DdlDialect};
use custodian_core::migrate::{AlterOp, SchemaChange, TableAlter};

/// Prefix of the temporary name of a table being rebuilt.
pub const REBUILD_PREFIX: &str = "_custodian_rebuild_";

/// The name of the check constraint that fails a rebuild while foreign keys are enforced.
pub const GUARD_CONSTRAINT: &str = "table_rebuild_requires_pragma_foreign_keys_off";

/// Statements failing (with [`GUARD_CONSTRAINT`]) unless foreign-key enforcement is off.
fn guard<D: DdlDialect + ?Sized>(d: &D) -> [String; 3] {
    let table = d.quote("_custodian_rebuild_guard");
    [
        format!(
            "CREATE TEMP TABLE {table} (fk INTEGER CONSTRAINT {} CHECK (fk = 0))",
            d.quote(GUARD_CONSTRAINT)
        ),
        format!("INSERT INTO {table} SELECT foreign_keys FROM pragma_foreign_keys"),
        format!("DROP TABLE {table}"),
    ]
}

/// The statements of one migration step, for a dialect that rebuilds tables.
pub fn change_sql<D: DdlDialect + ?Sized>(d: &D, change: &SchemaChange) -> Vec<String> {
    match change {
        SchemaChange::CreateTable(t) => ddl::create_table(d, t),
        SchemaChange::DropTable(t) => vec![ddl::drop_table(d, t)],
        SchemaChange::AlterTable(a) if a.only_plain_indexes() => indexes_only(d, a),
        SchemaChange::AlterTable(a) => rebuild(d, a),
    }
}

fn indexes_only<D: DdlDialect + ?Sized>(d: &D, a: &TableAlter) -> Vec<String> {
    a.ops
        .iter()
        .filter_map(|op| match op {
            AlterOp::DropIndex(i) => Some(format!(
                "DROP INDEX {}",
                ddl::qualified_as(d, &a.old, &i.name)
            )),
            AlterOp::AddIndex(i) => Some(ddl::create_index(d, &a.new, &i.name, &i.columns)),
            _ => None,
        })
        .collect()
}

/// The rebuild of `a.old` into `a.new`, keeping the rows.
pub fn rebuild<D: DdlDialect + ?Sized>(d: &D, a: &TableAlter) -> Vec<String> {
    let temp = format!("{REBUILD_PREFIX}{}", a.new.table);
    let temp_q = ddl::qualified_as(d, &a.new, &temp);
    let old_q = ddl::qualified(d, &a.old);
    let mut out: Vec<String> = guard(d).into();
    out.push(ddl::create_table_as(d, &a.new, &temp));
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for (old, new) in a.kept_columns() {
        let mut value = d.quote(&old.name);
        let new_type = ddl::type_of(d, &a.new, new);
        if ddl::type_of(d, &a.old, old) != new_type {
            value = format!("CAST({value} AS {new_type})");
        }
        if old.nullable && !new.nullable {
            if let Some(default) = ddl::default_of(d, new) {
                value = format!("COALESCE({value}, {default})");
            }
        }
        columns.push(d.quote(&new.name));
        values.push(value);
    }
    if !columns.is_empty() {
        out.push(format!(
            "INSERT INTO {temp_q} ({}) SELECT {} FROM {old_q}",
            columns.join(", "),
            values.join(", ")
        ));
    }
    if a.new.has_auto_increment() && a.old.has_auto_increment() {
        // Keys stay unused once used: the new table continues the old one's sequence.
        let sequence = ddl::qualified_as(d, &a.new, "sqlite_sequence");
        let (temp_l, old_l) = (d.literal(&temp), d.literal(&a.old.table));
        out.push(format!("DELETE FROM {sequence} WHERE name = {temp_l}"));
        out.push(format!(
            "INSERT INTO {sequence} (name, seq) SELECT {temp_l}, seq FROM {sequence} \
             WHERE name = {old_l}"
        ));
    }
    out.push(format!("DROP TABLE {old_q}"));
    out.push(format!(
        "ALTER TABLE {temp_q} RENAME TO {}",
        d.quote(&a.new.table)
    ));
    out.extend(ddl::create_indexes(d, &a.new));
    out
}
