//! DDL shared by the backends: `CREATE TABLE` from an entity's metadata, with each dialect
//! supplying identifier quoting and column types.

use custodian_core::{ColumnKind, ColumnMeta, EntityMeta};

/// What a dialect decides when writing `CREATE TABLE`.
pub trait DdlDialect {
    /// Quotes an identifier.
    fn quote(&self, ident: &str) -> String;
    /// The column type for a column; `indexed` is true for key columns (MariaDB cannot index
    /// unbounded text).
    fn column_type(&self, kind: ColumnKind, indexed: bool) -> &'static str;
    /// The full definition of an auto-increment primary key column (name already quoted).
    fn auto_increment_column(&self, quoted_name: &str, kind: ColumnKind) -> String;
    /// Default for a database-generated timestamp column.
    fn current_timestamp(&self) -> &'static str;
    /// Text after the closing parenthesis (engine, charset).
    fn table_suffix(&self) -> &'static str {
        ""
    }
}

/// The table name, schema-qualified and quoted.
pub fn qualified(d: &impl DdlDialect, meta: &EntityMeta) -> String {
    match meta.schema {
        Some(s) => format!("{}.{}", d.quote(s), d.quote(meta.table)),
        None => d.quote(meta.table),
    }
}

fn column_def(d: &impl DdlDialect, c: &ColumnMeta, inline_pk: bool) -> String {
    let name = d.quote(c.name);
    if c.auto_increment {
        return d.auto_increment_column(&name, c.kind);
    }
    let mut def = format!("{name} {}", d.column_type(c.kind, c.primary_key));
    if !c.nullable {
        def.push_str(" NOT NULL");
    }
    if c.generated && c.kind == ColumnKind::Timestamp {
        def.push_str(" DEFAULT ");
        def.push_str(d.current_timestamp());
    }
    if inline_pk {
        def.push_str(" PRIMARY KEY");
    }
    def
}

/// `CREATE TABLE` for `meta` in dialect `d`.
pub fn create_table(d: &impl DdlDialect, meta: &EntityMeta) -> String {
    let auto = meta.has_auto_increment();
    let mut parts: Vec<String> = meta
        .columns
        .iter()
        .map(|c| column_def(d, c, false))
        .collect();
    if !auto {
        let keys: Vec<String> = meta.primary_key().map(|c| d.quote(c.name)).collect();
        parts.push(format!("PRIMARY KEY ({})", keys.join(", ")));
    }
    format!(
        "CREATE TABLE {} (\n  {}\n){}",
        qualified(d, meta),
        parts.join(",\n  "),
        d.table_suffix()
    )
}

/// `DROP TABLE IF EXISTS` for `meta` in dialect `d`.
pub fn drop_table(d: &impl DdlDialect, meta: &EntityMeta) -> String {
    format!("DROP TABLE IF EXISTS {}", qualified(d, meta))
}
