//! MySQL / MariaDB DDL: InnoDB tables with a binary collation (text compares as on
//! PostgreSQL and SQLite), and the `ALTER TABLE` forms of schema changes.

use crate::alter::AlterDialect;
use crate::ddl::{self, DdlDialect};
use custodian_core::migrate::{ColumnDef, TableDef};
use custodian_core::ColumnKind;

pub(super) struct MyDdl;

impl AlterDialect for MyDdl {
    fn drop_unique(&self, t: &TableDef, name: &str) -> String {
        format!(
            "ALTER TABLE {} DROP INDEX {}",
            ddl::qualified(self, t),
            self.quote(name)
        )
    }
    fn drop_index(&self, t: &TableDef, name: &str) -> String {
        format!(
            "DROP INDEX {} ON {}",
            self.quote(name),
            ddl::qualified(self, t)
        )
    }
    fn drop_foreign_key(&self, t: &TableDef, name: &str) -> String {
        format!(
            "ALTER TABLE {} DROP FOREIGN KEY {}",
            ddl::qualified(self, t),
            self.quote(name)
        )
    }
    fn change_column(
        &self,
        before: &TableDef,
        after: &TableDef,
        old: &ColumnDef,
        new: &ColumnDef,
    ) -> Vec<String> {
        // MODIFY restates the whole column: type (bounded when a key covers it), nullability
        // and default.
        let aspects = |t: &TableDef, c: &ColumnDef| {
            (
                ddl::type_of(self, t, c),
                c.nullable,
                ddl::default_of(self, c),
            )
        };
        if aspects(before, old) == aspects(after, new) {
            return Vec::new();
        }
        vec![format!(
            "ALTER TABLE {} MODIFY COLUMN {}",
            ddl::qualified(self, after),
            ddl::column_def(self, after, new)
        )]
    }
}

impl DdlDialect for MyDdl {
    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }
    fn column_type(&self, kind: ColumnKind, indexed: bool) -> &'static str {
        match kind {
            ColumnKind::SmallInt => "SMALLINT",
            ColumnKind::Integer => "INT",
            ColumnKind::BigInt => "BIGINT",
            ColumnKind::Float => "FLOAT",
            ColumnKind::Double => "DOUBLE",
            ColumnKind::Bool => "BOOLEAN",
            ColumnKind::Binary if indexed => "VARBINARY(255)",
            ColumnKind::Binary => "LONGBLOB",
            ColumnKind::Date => "DATE",
            ColumnKind::Timestamp => "DATETIME(6)",
            ColumnKind::Uuid => "CHAR(36)",
            ColumnKind::Decimal | ColumnKind::Enum => "VARCHAR(255)",
            _ if indexed => "VARCHAR(255)",
            _ => "LONGTEXT",
        }
    }
    fn auto_increment_column(&self, name: &str, kind: ColumnKind) -> String {
        format!(
            "{name} {} NOT NULL AUTO_INCREMENT PRIMARY KEY",
            self.column_type(kind, true)
        )
    }
    fn current_timestamp(&self) -> &'static str {
        "CURRENT_TIMESTAMP(6)"
    }
    fn table_suffix(&self) -> &'static str {
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    }
    fn index_prefix(&self) -> Option<usize> {
        // 255 utf8mb4 characters take the 1,020 bytes a VARCHAR(255) key part takes, so an
        // index that fits InnoDB's 3,072-byte limit with bounded columns fits with prefixes.
        Some(255)
    }
    fn literal(&self, s: &str) -> String {
        // Backslash is an escape character unless NO_BACKSLASH_ESCAPES is set.
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    }
    fn unique_constraint(&self, name: &str, columns: &str) -> String {
        // The key name is what "Duplicate entry ... for key '<name>'" reports.
        format!("UNIQUE KEY {} ({columns})", self.quote(name))
    }
}
