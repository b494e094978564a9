//! Schema advice: what the live schema lacks for the queries custodian itself sends, without
//! being drift. Today one finding: a foreign key column that leads no index. custodian loads
//! children by their foreign key (relations, cascades, the access check of a parent) and the
//! database checks every delete of a parent against the children; without an index each of
//! those scans the child table. PostgreSQL and SQLite do not index a foreign key by
//! themselves; MariaDB's InnoDB creates an index for every foreign key, so it is reported there
//! only when that index was dropped or replaced by one the column does not lead.

use crate::entity::EntityMeta;
use std::fmt;

/// One piece of advice on the live schema (see [`Db::schema_advice`](crate::Db::schema_advice)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advice {
    /// A foreign key column that is not the first column of any index (primary key and unique
    /// constraints included) of its table.
    UnindexedForeignKey {
        /// The referencing table.
        table: String,
        /// The foreign key column.
        column: String,
        /// The referenced table.
        references: String,
    },
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Advice::UnindexedForeignKey {
                table,
                column,
                references,
            } => write!(
                f,
                "{table}.{column} references {references} but leads no index: loading \
                 children by it and deleting {references} rows scan {table} \
                 (CREATE INDEX ON {table} ({column}))"
            ),
        }
    }
}

/// The foreign keys of `meta` whose column leads none of the table's indexes; `leading` holds
/// the first column of each index the database reports.
pub(crate) fn unindexed_foreign_keys(meta: &EntityMeta, leading: &[String]) -> Vec<Advice> {
    meta.columns
        .iter()
        .filter_map(|c| c.references.map(|fk| (c, fk)))
        .filter(|(c, _)| !leading.iter().any(|l| l.eq_ignore_ascii_case(c.name)))
        .map(|(c, fk)| Advice::UnindexedForeignKey {
            table: meta.table.to_string(),
            column: c.name.to_string(),
            references: (fk.parent)().table.to_string(),
        })
        .collect()
}
