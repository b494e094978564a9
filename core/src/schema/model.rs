//! The entity model as data: owned, serializable descriptions of tables that
//! [`generate`](crate::migrate::generate) stores next to each migration (`schema.json`) and compares
//! with the entities of the next run, and from which the backends write DDL.
//!
//! A [`TableDef`] is built from an [`EntityMeta`] (see [`TableDef::from_meta`]) and keeps what
//! DDL depends on: columns with their kind, nullability, key, default, check, uniqueness, index
//! and foreign key, and the multi-column indexes. Constraint and index names follow the
//! conventions of the backends' DDL (`<table>_<column>_check`, `_key`, `_fkey`, `_idx`).

use crate::entity::{Check, ColumnMeta, EntityMeta, RefAction};
use crate::value::ColumnKind;
use serde::{Deserialize, Serialize};

/// Version of the `schema.json` layout; a snapshot with another version is refused.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The tables a migration was generated from: what `schema.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Layout version, [`SNAPSHOT_FORMAT`].
    pub format: u32,
    /// The tables, in the order the entities were given.
    pub tables: Vec<TableDef>,
}

impl Snapshot {
    /// The snapshot of `metas` (an entity listed twice counts once).
    pub fn of(metas: &[EntityMeta]) -> Snapshot {
        let mut tables: Vec<TableDef> = Vec::with_capacity(metas.len());
        for m in metas {
            let t = TableDef::from_meta(m);
            if !tables.iter().any(|o| o.same_table(&t)) {
                tables.push(t);
            }
        }
        Snapshot {
            format: SNAPSHOT_FORMAT,
            tables,
        }
    }
}

/// One table: its name, columns and multi-column indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    /// Table name.
    pub table: String,
    /// PostgreSQL schema (MariaDB: database), if not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Columns, in table order.
    pub columns: Vec<ColumnDef>,
    /// Multi-column indexes and unique constraints (single-column ones are flags of their
    /// column).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexDef>,
}

/// One column of a [`TableDef`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Portable kind.
    pub kind: ColumnKind,
    /// Whether it accepts `NULL`.
    #[serde(default)]
    pub nullable: bool,
    /// Part of the primary key.
    #[serde(default)]
    pub primary_key: bool,
    /// Auto-increment primary key.
    #[serde(default)]
    pub auto_increment: bool,
    /// Computed or defaulted by the database (a generated timestamp defaults to the current
    /// time).
    #[serde(default)]
    pub generated: bool,
    /// Unique on its own.
    #[serde(default)]
    pub unique: bool,
    /// Non-unique index on its own.
    #[serde(default)]
    pub indexed: bool,
    /// SQL default expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_sql: Option<String>,
    /// Check constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckDef>,
    /// Foreign key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<ForeignKeyDef>,
    /// The previous name of the column (a rename hint, not stored in snapshots).
    #[serde(skip)]
    pub renamed_from: Option<String>,
}

/// A check constraint, owned (see [`Check`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckDef {
    /// Inclusive integer bounds.
    Range {
        /// Lowest allowed value.
        min: Option<i64>,
        /// Highest allowed value.
        max: Option<i64>,
    },
    /// One of these strings.
    OneOf(Vec<String>),
    /// A raw SQL boolean expression.
    Sql(String),
}

/// A foreign key from one column to the primary key of another table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    /// Referenced table.
    pub table: String,
    /// Schema of the referenced table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Referenced (primary-key) columns.
    pub columns: Vec<String>,
    /// Action on delete.
    #[serde(default)]
    pub on_delete: RefAction,
    /// Action on update.
    #[serde(default)]
    pub on_update: RefAction,
}

/// A multi-column index or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    /// Index (constraint) name.
    pub name: String,
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Whether it is a unique constraint.
    #[serde(default)]
    pub unique: bool,
}

impl CheckDef {
    fn from_check(c: &Check) -> CheckDef {
        match *c {
            Check::Range { min, max } => CheckDef::Range { min, max },
            Check::OneOf(values) => CheckDef::OneOf(values.iter().map(|v| v.to_string()).collect()),
            Check::Sql(sql) => CheckDef::Sql(sql.to_string()),
        }
    }
}

impl ColumnDef {
    fn from_meta(c: &ColumnMeta) -> ColumnDef {
        ColumnDef {
            name: c.name.to_string(),
            kind: c.kind,
            nullable: c.nullable,
            primary_key: c.primary_key,
            auto_increment: c.auto_increment,
            generated: c.generated,
            unique: c.unique,
            indexed: c.indexed,
            default_sql: c.default_sql.map(str::to_string),
            check: c.check.as_ref().map(CheckDef::from_check),
            references: c.references.as_ref().map(|fk| {
                let parent = (fk.parent)();
                ForeignKeyDef {
                    table: parent.table.to_string(),
                    schema: parent.schema.map(str::to_string),
                    columns: parent.primary_key().map(|k| k.name.to_string()).collect(),
                    on_delete: fk.on_delete,
                    on_update: fk.on_update,
                }
            }),
            renamed_from: c.renamed_from.map(str::to_string),
        }
    }

    /// Whether the database fills the column with the current time by default (a generated
    /// timestamp).
    pub fn defaults_to_now(&self) -> bool {
        self.generated && self.kind == ColumnKind::Timestamp
    }

    /// A plain `NOT NULL` column of `kind`, for building definitions by hand.
    pub fn new(name: &str, kind: ColumnKind) -> ColumnDef {
        ColumnDef {
            name: name.to_string(),
            kind,
            nullable: false,
            primary_key: false,
            auto_increment: false,
            generated: false,
            unique: false,
            indexed: false,
            default_sql: None,
            check: None,
            references: None,
            renamed_from: None,
        }
    }
}

impl TableDef {
    /// The definition of an entity's table.
    pub fn from_meta(meta: &EntityMeta) -> TableDef {
        TableDef {
            table: meta.table.to_string(),
            schema: meta.schema.map(str::to_string),
            columns: meta.columns.iter().map(ColumnDef::from_meta).collect(),
            indexes: meta
                .indexes
                .iter()
                .map(|i| IndexDef {
                    name: i.name.to_string(),
                    columns: i.columns.iter().map(|c| c.to_string()).collect(),
                    unique: i.unique,
                })
                .collect(),
        }
    }

    /// Whether `other` names the same table (name and schema).
    pub fn same_table(&self, other: &TableDef) -> bool {
        self.table == other.table && self.schema == other.schema
    }

    /// The table name as reports show it: `schema.table` or `table`.
    pub fn display_name(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.table),
            None => self.table.clone(),
        }
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether the database assigns the primary key on insert.
    pub fn has_auto_increment(&self) -> bool {
        self.columns.iter().any(|c| c.auto_increment)
    }

    /// The primary-key columns, in table order.
    pub fn primary_key(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| c.primary_key)
    }

    /// Every index and unique constraint: single-column ones from the columns (a referencing
    /// column gets an index), then the multi-column ones; the same list and names as
    /// [`EntityMeta::all_indexes`].
    pub fn all_indexes(&self) -> Vec<IndexDef> {
        let mut out = Vec::new();
        for c in &self.columns {
            if c.unique {
                out.push(IndexDef {
                    name: format!("{}_{}_key", self.table, c.name),
                    columns: vec![c.name.clone()],
                    unique: true,
                });
            } else if c.indexed || c.references.is_some() {
                out.push(IndexDef {
                    name: format!("{}_{}_idx", self.table, c.name),
                    columns: vec![c.name.clone()],
                    unique: false,
                });
            }
        }
        out.extend(self.indexes.iter().cloned());
        out
    }

    /// The name of the check constraint of column `column`.
    pub fn check_name(&self, column: &str) -> String {
        format!("{}_{column}_check", self.table)
    }

    /// The name of the foreign key of column `column`.
    pub fn foreign_key_name(&self, column: &str) -> String {
        format!("{}_{column}_fkey", self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{ForeignKey, IndexMeta};

    fn parent() -> EntityMeta {
        static C: [ColumnMeta; 1] = [ColumnMeta {
            name: "id",
            field: "id",
            kind: ColumnKind::BigInt,
            primary_key: true,
            auto_increment: true,
            ..ColumnMeta::PLAIN
        }];
        EntityMeta {
            name: "P",
            table: "p",
            schema: Some("s"),
            columns: &C,
            indexes: &[],
        }
    }

    #[test]
    fn snapshots_round_trip_and_index_names_match_the_entity() {
        static C: [ColumnMeta; 3] = [
            ColumnMeta {
                name: "id",
                field: "id",
                primary_key: true,
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "p_id",
                field: "p_id",
                kind: ColumnKind::BigInt,
                nullable: true,
                references: Some(ForeignKey {
                    parent,
                    on_delete: RefAction::Cascade,
                    on_update: RefAction::NoAction,
                    cascade: None,
                }),
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "code",
                field: "code",
                unique: true,
                check: Some(Check::OneOf(&["a", "b"])),
                default_sql: Some("'a'"),
                renamed_from: Some("old_code"),
                ..ColumnMeta::PLAIN
            },
        ];
        let meta = EntityMeta {
            name: "T",
            table: "t",
            schema: None,
            columns: &C,
            indexes: &[IndexMeta {
                name: "t_code_p_id_idx",
                columns: &["code", "p_id"],
                unique: false,
            }],
        };
        let snap = Snapshot::of(&[meta, meta]);
        assert_eq!(snap.tables.len(), 1);
        let t = &snap.tables[0];
        let fk = t.columns[1].references.as_ref().unwrap();
        assert_eq!((fk.table.as_str(), fk.schema.as_deref()), ("p", Some("s")));
        assert_eq!(fk.columns, ["id"]);
        assert_eq!(t.columns[2].renamed_from.as_deref(), Some("old_code"));
        let from_meta: Vec<_> = meta
            .all_indexes()
            .into_iter()
            .map(|(n, c, u)| (n, c.iter().map(|s| s.to_string()).collect::<Vec<_>>(), u))
            .collect();
        let from_def: Vec<_> = t
            .all_indexes()
            .into_iter()
            .map(|i| (i.name, i.columns, i.unique))
            .collect();
        assert_eq!(from_meta, from_def);

        let json = serde_json::to_string_pretty(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        // The rename hint is not part of the stored model.
        let mut expected = snap.clone();
        expected.tables[0].columns[2].renamed_from = None;
        assert_eq!(back, expected);
    }
}
