//! DDL shared by the backends: `CREATE TABLE` with its constraints, and `CREATE INDEX`, from a
//! table's definition ([`TableDef`], built from an entity's metadata or read from a migration's
//! snapshot), with each dialect supplying identifier quoting, column types and the few clauses
//! that differ. The pieces (column definitions, named constraints) are public for the
//! migration steps of [`crate::alter`] and [`crate::rebuild`].
//!
//! Constraint and index names are fixed so that error messages can be mapped back to fields
//! (see [`EntityMeta::all_indexes`](custodian_core::EntityMeta::all_indexes)):
//!
//! | what | name |
//! |---|---|
//! | check constraint of a column | `<table>_<column>_check` |
//! | unique constraint of a column | `<table>_<column>_key` |
//! | foreign key of a column | `<table>_<column>_fkey` |
//! | index of an `indexed` or referencing column | `<table>_<column>_idx` |
//! | multi-column index or unique constraint | the name in [`IndexMeta`](custodian_core::IndexMeta) |

use custodian_core::migrate::{CheckDef, ColumnDef, ForeignKeyDef, TableDef};
use custodian_core::{ColumnKind, LiveColumn, RefAction};

/// What a dialect decides when writing `CREATE TABLE` and `CREATE INDEX`.
pub trait DdlDialect {
    /// Quotes an identifier.
    fn quote(&self, ident: &str) -> String;
    /// The column type for a column; `indexed` is true for columns that are part of a key,
    /// a unique constraint, an index or a foreign key (MariaDB cannot index unbounded text).
    fn column_type(&self, kind: ColumnKind, indexed: bool) -> &'static str;
    /// The full definition of an auto-increment primary key column (name already quoted).
    fn auto_increment_column(&self, quoted_name: &str, kind: ColumnKind) -> String;
    /// Default for a database-generated timestamp column.
    fn current_timestamp(&self) -> &'static str;
    /// Text after the closing parenthesis (engine, charset).
    fn table_suffix(&self) -> &'static str {
        ""
    }
    /// A string literal (single quotes doubled).
    fn literal(&self, s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }
    /// A named unique constraint inside `CREATE TABLE`; `columns` are already quoted and joined.
    fn unique_constraint(&self, name: &str, columns: &str) -> String {
        format!("CONSTRAINT {} UNIQUE ({columns})", self.quote(name))
    }
    /// The referenced table of a foreign key (schema-qualified where the dialect allows it).
    fn referenced_table(&self, fk: &ForeignKeyDef) -> String {
        match &fk.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(&fk.table)),
            None => self.quote(&fk.table),
        }
    }
    /// Characters of an unbounded text column (bytes of a binary one) that a non-unique index
    /// covers, for dialects whose indexes need bounded types (MariaDB): such a column keeps its
    /// unbounded type unless a key, unique constraint or foreign key needs it bounded, and
    /// non-unique indexes cover it by this prefix. `None`: indexes need no prefix.
    fn index_prefix(&self) -> Option<usize> {
        None
    }
    /// The statement creating schema `schema` unless it exists; `None` where the dialect has no
    /// schemas to create.
    fn create_schema(&self, schema: &str) -> Option<String> {
        Some(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            self.quote(schema)
        ))
    }
    /// `CREATE INDEX` (non-unique) on `table`; `columns` are already quoted and joined.
    fn create_index(&self, table: &TableDef, name: &str, columns: &str) -> String {
        format!(
            "CREATE INDEX {} ON {} ({columns})",
            self.quote(name),
            qualified(self, table)
        )
    }
}

/// The table name, schema-qualified and quoted.
pub fn qualified<D: DdlDialect + ?Sized>(d: &D, table: &TableDef) -> String {
    qualified_as(d, table, &table.table)
}

/// The name `name` in `table`'s schema, quoted.
pub fn qualified_as<D: DdlDialect + ?Sized>(d: &D, table: &TableDef, name: &str) -> String {
    match &table.schema {
        Some(s) => format!("{}.{}", d.quote(s), d.quote(name)),
        None => d.quote(name),
    }
}

/// Whether `c` must have an indexable (bounded) type: part of the key, of a unique constraint
/// or of a foreign key, or of a non-unique index on a dialect without prefix indexes.
pub fn in_index<D: DdlDialect + ?Sized>(d: &D, t: &TableDef, c: &ColumnDef) -> bool {
    let strict = c.primary_key
        || c.unique
        || c.references.is_some()
        || t.indexes
            .iter()
            .any(|i| i.unique && i.columns.contains(&c.name));
    let loose = c.indexed
        || t.indexes
            .iter()
            .any(|i| !i.unique && i.columns.contains(&c.name));
    strict || (loose && d.index_prefix().is_none())
}

/// The column type of `c` in table `t`.
pub fn type_of<D: DdlDialect + ?Sized>(d: &D, t: &TableDef, c: &ColumnDef) -> &'static str {
    d.column_type(c.kind, in_index(d, t, c))
}

/// Whether a non-unique index of `t` covers column `name` by the dialect's prefix only (an
/// unbounded column no key needs bounded, on a dialect with prefix indexes).
pub fn index_prefixed<D: DdlDialect + ?Sized>(d: &D, t: &TableDef, name: &str) -> bool {
    match (d.index_prefix(), t.column(name)) {
        (Some(_), Some(c)) => {
            !in_index(d, t, c) && d.column_type(c.kind, false) != d.column_type(c.kind, true)
        }
        _ => false,
    }
}

/// The quoted columns of a non-unique index, an unbounded one limited to the dialect's prefix.
fn index_columns<D: DdlDialect + ?Sized>(d: &D, t: &TableDef, columns: &[String]) -> String {
    columns
        .iter()
        .map(|name| match d.index_prefix() {
            Some(prefix) if index_prefixed(d, t, name) => format!("{}({prefix})", d.quote(name)),
            _ => d.quote(name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The default expression of `c`: its SQL default, or the current time for a generated
/// timestamp.
pub fn default_of<D: DdlDialect + ?Sized>(d: &D, c: &ColumnDef) -> Option<String> {
    if let Some(default) = &c.default_sql {
        Some(default.clone())
    } else if c.defaults_to_now() {
        Some(d.current_timestamp().to_string())
    } else {
        None
    }
}

/// The definition of column `c` of table `t` as `CREATE TABLE` and `ADD COLUMN` write it.
pub fn column_def<D: DdlDialect + ?Sized>(d: &D, t: &TableDef, c: &ColumnDef) -> String {
    let name = d.quote(&c.name);
    if c.auto_increment {
        return d.auto_increment_column(&name, c.kind);
    }
    let mut def = format!("{name} {}", type_of(d, t, c));
    if !c.nullable {
        def.push_str(" NOT NULL");
    }
    if let Some(default) = default_of(d, c) {
        def.push_str(" DEFAULT ");
        def.push_str(&default);
    }
    def
}

/// The boolean SQL expression of a check constraint on the quoted column `col`; `None` for a
/// range without bounds.
pub fn check_expression<D: DdlDialect + ?Sized>(
    d: &D,
    col: &str,
    check: &CheckDef,
) -> Option<String> {
    match check {
        CheckDef::Range {
            min: Some(lo),
            max: Some(hi),
        } => Some(format!("{col} BETWEEN {lo} AND {hi}")),
        CheckDef::Range {
            min: Some(lo),
            max: None,
        } => Some(format!("{col} >= {lo}")),
        CheckDef::Range {
            min: None,
            max: Some(hi),
        } => Some(format!("{col} <= {hi}")),
        CheckDef::Range {
            min: None,
            max: None,
        } => None,
        CheckDef::OneOf(values) if values.is_empty() => Some("1 = 0".into()),
        CheckDef::OneOf(values) => {
            let list: Vec<String> = values.iter().map(|v| d.literal(v)).collect();
            Some(format!("{col} IN ({})", list.join(", ")))
        }
        CheckDef::Sql(sql) => Some(sql.clone()),
    }
}

/// The named check constraint of column `c` (`CONSTRAINT <name> CHECK (...)`), if it has one.
pub fn check_constraint<D: DdlDialect + ?Sized>(
    d: &D,
    t: &TableDef,
    c: &ColumnDef,
) -> Option<String> {
    let expr = check_expression(d, &d.quote(&c.name), c.check.as_ref()?)?;
    Some(format!(
        "CONSTRAINT {} CHECK ({expr})",
        d.quote(&t.check_name(&c.name))
    ))
}

/// The named foreign key of column `c` (`CONSTRAINT <name> FOREIGN KEY ...`), if it has one.
pub fn foreign_key_constraint<D: DdlDialect + ?Sized>(
    d: &D,
    t: &TableDef,
    c: &ColumnDef,
) -> Option<String> {
    let fk = c.references.as_ref()?;
    Some(format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE {}",
        d.quote(&t.foreign_key_name(&c.name)),
        d.quote(&c.name),
        d.referenced_table(fk),
        quoted_list(d, &fk.columns),
        ref_action(fk.on_delete),
        ref_action(fk.on_update),
    ))
}

/// The SQL of a referential action.
pub fn ref_action(action: RefAction) -> &'static str {
    match action {
        RefAction::NoAction => "NO ACTION",
        RefAction::Restrict => "RESTRICT",
        RefAction::Cascade => "CASCADE",
        RefAction::SetNull => "SET NULL",
    }
}

/// The identifiers quoted and joined with `, `.
pub fn quoted_list<D: DdlDialect + ?Sized>(d: &D, columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| d.quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE INDEX` for the non-unique index `name` over `columns` of `t`.
pub fn create_index<D: DdlDialect + ?Sized>(
    d: &D,
    t: &TableDef,
    name: &str,
    columns: &[String],
) -> String {
    d.create_index(t, name, &index_columns(d, t, columns))
}

/// `CREATE TABLE` for `t` in dialect `d`, with primary key, `NOT NULL`, defaults, named
/// check, unique and foreign-key constraints; then one `CREATE INDEX` per non-unique index
/// (indexed and referencing columns, multi-column indexes). A table with a schema gets the
/// dialect's `CREATE SCHEMA IF NOT EXISTS` first. Statements have no trailing `;`.
pub fn create_table<D: DdlDialect + ?Sized>(d: &D, t: &TableDef) -> Vec<String> {
    let mut out: Vec<String> = t
        .schema
        .as_deref()
        .and_then(|s| d.create_schema(s))
        .into_iter()
        .collect();
    out.push(create_table_as(d, t, &t.table));
    out.extend(create_indexes(d, t));
    out
}

/// The `CREATE TABLE` statement of `t`, under the name `name` (in `t`'s schema); constraint
/// names stay those of `t`.
pub fn create_table_as<D: DdlDialect + ?Sized>(d: &D, t: &TableDef, name: &str) -> String {
    let mut parts: Vec<String> = t.columns.iter().map(|c| column_def(d, t, c)).collect();
    if !t.has_auto_increment() {
        let keys: Vec<String> = t.primary_key().map(|c| c.name.clone()).collect();
        if !keys.is_empty() {
            parts.push(format!("PRIMARY KEY ({})", quoted_list(d, &keys)));
        }
    }
    parts.extend(t.columns.iter().filter_map(|c| check_constraint(d, t, c)));
    for i in t.all_indexes() {
        if i.unique {
            parts.push(d.unique_constraint(&i.name, &quoted_list(d, &i.columns)));
        }
    }
    parts.extend(
        t.columns
            .iter()
            .filter_map(|c| foreign_key_constraint(d, t, c)),
    );
    format!(
        "CREATE TABLE {} (\n  {}\n){}",
        qualified_as(d, t, name),
        parts.join(",\n  "),
        d.table_suffix()
    )
}

/// One `CREATE INDEX` per non-unique index of `t`.
pub fn create_indexes<D: DdlDialect + ?Sized>(d: &D, t: &TableDef) -> Vec<String> {
    t.all_indexes()
        .into_iter()
        .filter(|i| !i.unique)
        .map(|i| create_index(d, t, &i.name, &i.columns))
        .collect()
}

/// `DROP TABLE IF EXISTS` for `t` in dialect `d` (its indexes go with it).
pub fn drop_table<D: DdlDialect + ?Sized>(d: &D, t: &TableDef) -> String {
    format!("DROP TABLE IF EXISTS {}", qualified(d, t))
}

/// One row of a backend's column-introspection query: name, type and `YES` / `NO` for
/// nullable.
/// A row of one text column `name` (index columns, table names).
#[derive(diesel::QueryableByName)]
pub(crate) struct NameRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub(crate) name: String,
}

#[derive(diesel::QueryableByName)]
pub(crate) struct ColumnRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    data_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    nullable: String,
}

/// The live columns of an introspection result; `None` (no such table) when it has no rows.
pub(crate) fn live_columns(rows: Vec<ColumnRow>) -> Option<Vec<LiveColumn>> {
    if rows.is_empty() {
        return None;
    }
    Some(
        rows.into_iter()
            .map(|r| LiveColumn {
                name: r.name,
                data_type: r.data_type.trim().to_string(),
                nullable: r.nullable.eq_ignore_ascii_case("YES"),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use custodian_core::{Check, ColumnMeta, EntityMeta, ForeignKey, IndexMeta};

    fn create_table<D: DdlDialect>(d: &D, meta: &EntityMeta) -> Vec<String> {
        super::create_table(d, &TableDef::from_meta(meta))
    }

    fn check_expression(d: &Plain, col: &str, check: &Check) -> Option<String> {
        let c = match *check {
            Check::Range { min, max } => CheckDef::Range { min, max },
            Check::OneOf(v) => CheckDef::OneOf(v.iter().map(|s| s.to_string()).collect()),
            Check::Sql(s) => CheckDef::Sql(s.into()),
        };
        super::check_expression(d, col, &c)
    }

    struct Plain;
    impl DdlDialect for Plain {
        fn quote(&self, ident: &str) -> String {
            format!("\"{ident}\"")
        }
        fn column_type(&self, _: ColumnKind, indexed: bool) -> &'static str {
            if indexed {
                "VARCHAR(255)"
            } else {
                "TEXT"
            }
        }
        fn auto_increment_column(&self, name: &str, _: ColumnKind) -> String {
            format!("{name} SERIAL PRIMARY KEY")
        }
        fn current_timestamp(&self) -> &'static str {
            "NOW()"
        }
    }

    fn parent() -> EntityMeta {
        EntityMeta {
            name: "Team",
            table: "teams",
            schema: Some("org"),
            columns: &[ColumnMeta {
                name: "id",
                field: "id",
                kind: ColumnKind::BigInt,
                primary_key: true,
                auto_increment: true,
                ..ColumnMeta::PLAIN
            }],
            indexes: &[],
        }
    }

    const CHILD: EntityMeta = EntityMeta {
        name: "Player",
        table: "players",
        schema: None,
        columns: &[
            ColumnMeta {
                name: "id",
                field: "id",
                kind: ColumnKind::BigInt,
                primary_key: true,
                auto_increment: true,
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "code",
                field: "code",
                unique: true,
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "level",
                field: "level",
                kind: ColumnKind::Integer,
                default_sql: Some("1"),
                check: Some(Check::Range {
                    min: Some(1),
                    max: Some(9),
                }),
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "kind",
                field: "kind",
                check: Some(Check::OneOf(&["a", "o'b"])),
                indexed: true,
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "team_id",
                field: "team_id",
                kind: ColumnKind::BigInt,
                nullable: true,
                references: Some(ForeignKey {
                    parent,
                    on_delete: RefAction::SetNull,
                    on_update: RefAction::Cascade,
                    cascade: None,
                }),
                ..ColumnMeta::PLAIN
            },
        ],
        indexes: &[
            IndexMeta {
                name: "players_kind_level_key",
                columns: &["kind", "level"],
                unique: true,
            },
            IndexMeta {
                name: "players_level_code_idx",
                columns: &["level", "code"],
                unique: false,
            },
        ],
    };

    #[test]
    fn a_schema_is_created_before_its_table() {
        let statements = create_table(&Plain, &parent());
        assert_eq!(statements[0], "CREATE SCHEMA IF NOT EXISTS \"org\"");
        assert!(statements[1].starts_with("CREATE TABLE \"org\".\"teams\" ("));
        assert_eq!(statements.len(), 2);
    }

    #[test]
    fn table_with_every_constraint_then_indexes() {
        let sql = create_table(&Plain, &CHILD);
        assert_eq!(
            sql[0],
            "CREATE TABLE \"players\" (\n  \
             \"id\" SERIAL PRIMARY KEY,\n  \
             \"code\" VARCHAR(255) NOT NULL,\n  \
             \"level\" VARCHAR(255) NOT NULL DEFAULT 1,\n  \
             \"kind\" VARCHAR(255) NOT NULL,\n  \
             \"team_id\" VARCHAR(255),\n  \
             CONSTRAINT \"players_level_check\" CHECK (\"level\" BETWEEN 1 AND 9),\n  \
             CONSTRAINT \"players_kind_check\" CHECK (\"kind\" IN ('a', 'o''b')),\n  \
             CONSTRAINT \"players_code_key\" UNIQUE (\"code\"),\n  \
             CONSTRAINT \"players_kind_level_key\" UNIQUE (\"kind\", \"level\"),\n  \
             CONSTRAINT \"players_team_id_fkey\" FOREIGN KEY (\"team_id\") REFERENCES \"org\".\"teams\" (\"id\") ON DELETE SET NULL ON UPDATE CASCADE\n)"
        );
        assert_eq!(
            &sql[1..],
            [
                "CREATE INDEX \"players_kind_idx\" ON \"players\" (\"kind\")",
                "CREATE INDEX \"players_team_id_idx\" ON \"players\" (\"team_id\")",
                "CREATE INDEX \"players_level_code_idx\" ON \"players\" (\"level\", \"code\")",
            ]
        );
    }

    /// [`Plain`] with prefix indexes, as on MariaDB.
    struct Prefixed;
    impl DdlDialect for Prefixed {
        fn quote(&self, ident: &str) -> String {
            Plain.quote(ident)
        }
        fn column_type(&self, kind: ColumnKind, indexed: bool) -> &'static str {
            Plain.column_type(kind, indexed)
        }
        fn auto_increment_column(&self, name: &str, kind: ColumnKind) -> String {
            Plain.auto_increment_column(name, kind)
        }
        fn current_timestamp(&self) -> &'static str {
            Plain.current_timestamp()
        }
        fn index_prefix(&self) -> Option<usize> {
            Some(10)
        }
    }

    #[test]
    fn non_unique_indexes_cover_unbounded_text_by_a_prefix() {
        const NOTES: EntityMeta = EntityMeta {
            name: "Note",
            table: "notes",
            schema: None,
            columns: &[
                ColumnMeta {
                    name: "id",
                    field: "id",
                    primary_key: true,
                    ..ColumnMeta::PLAIN
                },
                ColumnMeta {
                    name: "body",
                    field: "body",
                    indexed: true,
                    ..ColumnMeta::PLAIN
                },
                ColumnMeta {
                    name: "tag",
                    field: "tag",
                    ..ColumnMeta::PLAIN
                },
            ],
            indexes: &[IndexMeta {
                name: "notes_tag_id_idx",
                columns: &["tag", "id"],
                unique: false,
            }],
        };
        let sql = create_table(&Prefixed, &NOTES);
        assert_eq!(
            sql[0],
            "CREATE TABLE \"notes\" (\n  \
             \"id\" VARCHAR(255) NOT NULL,\n  \
             \"body\" TEXT NOT NULL,\n  \
             \"tag\" TEXT NOT NULL,\n  \
             PRIMARY KEY (\"id\")\n)"
        );
        assert_eq!(
            &sql[1..],
            [
                "CREATE INDEX \"notes_body_idx\" ON \"notes\" (\"body\"(10))",
                "CREATE INDEX \"notes_tag_id_idx\" ON \"notes\" (\"tag\"(10), \"id\")",
            ]
        );
        // Without prefix indexes the same columns are bounded.
        assert!(create_table(&Plain, &NOTES)[0].contains("\"body\" VARCHAR(255)"));
        // Keys, unique constraints and foreign keys stay bounded with prefixes too.
        assert_eq!(
            create_table(&Prefixed, &CHILD),
            create_table(&Plain, &CHILD)
        );
    }

    #[test]
    fn check_expressions() {
        let col = "\"x\"";
        let range = |min, max| check_expression(&Plain, col, &Check::Range { min, max });
        assert_eq!(range(Some(0), None).unwrap(), "\"x\" >= 0");
        assert_eq!(range(None, Some(-3)).unwrap(), "\"x\" <= -3");
        assert_eq!(range(None, None), None);
        assert_eq!(
            check_expression(&Plain, col, &Check::Sql("x <> ''")).unwrap(),
            "x <> ''"
        );
        assert_eq!(
            check_expression(&Plain, col, &Check::OneOf(&[])).unwrap(),
            "1 = 0"
        );
    }
}
