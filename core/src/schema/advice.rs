//! Schema advice: what the live schema lacks for the queries sent to it, without being drift.
//!
//! A foreign key column that leads no index: custodian loads children by their foreign key
//! (relations, cascades, the access check of a parent) and the database checks every delete
//! of a parent against the children; without an index each of those scans the child table.
//! PostgreSQL and SQLite do not index a foreign key by themselves; MariaDB's InnoDB creates an
//! index for every foreign key, so it is reported there only when that index was dropped or
//! replaced by one the column does not lead.
//!
//! Columns a full scan filtered on, in the plans of slow statements (see
//! [`Backend::filtered_scans`](crate::Backend::filtered_scans)): reported with the number of
//! slow statements whose plan showed the scan and one of them, when the names are columns of
//! the live table and none of them leads an index (an index created since silences it).

use crate::entity::EntityMeta;
use crate::error::Result;
use crate::observe::ScanSeen;
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
    /// A table that the plans of slow statements read in full to filter it on `columns`,
    /// none of which is the first column of an index of the table.
    UnindexedFilter {
        /// The scanned table.
        table: String,
        /// The filter's columns (as the live table names them), sorted.
        columns: Vec<String>,
        /// How many slow statements' plans showed this scan.
        seen: u64,
        /// The SQL of one of them, with its placeholders (never its bind values).
        example_sql: String,
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
            Advice::UnindexedFilter {
                table,
                columns,
                seen,
                example_sql,
            } => write!(
                f,
                "{table} is read in full to filter on {} (no index leads {}) in the plans of \
                 {seen} slow statement(s), e.g. `{example_sql}` (an index on {table} led by \
                 one of them)",
                columns.join(", "),
                if columns.len() == 1 { "it" } else { "any" },
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

/// The advice for the filtered full scans recorded from slow plans (`scans`, from
/// [`ScanLog::snapshot`](crate::observe::ScanLog::snapshot)): for each, the names that are
/// columns of the live table and lead none of its indexes. `live` gives a table's live columns
/// and the first column of each of its indexes. A table that no longer exists, or one the plan
/// named by an alias, has no columns and gets none.
pub(crate) fn unindexed_filters(
    scans: Vec<(String, Vec<String>, ScanSeen)>,
    mut live: impl FnMut(&str) -> Result<(Vec<crate::schema::LiveColumn>, Vec<String>)>,
) -> Result<Vec<Advice>> {
    let mut advice = Vec::new();
    for (table, names, seen) in scans {
        let (columns, leading) = live(&table)?;
        if let Some(a) = filter_advice(table, &names, seen, &columns, &leading) {
            advice.push(a);
        }
    }
    Ok(advice)
}

/// The advice for one recorded scan: the `names` that are `live` columns (their live
/// spelling) and are not `leading` an index; `None` when no name is left.
fn filter_advice(
    table: String,
    names: &[String],
    seen: ScanSeen,
    live: &[crate::schema::LiveColumn],
    leading: &[String],
) -> Option<Advice> {
    let mut columns: Vec<String> = live
        .iter()
        .filter(|c| names.iter().any(|n| n.eq_ignore_ascii_case(&c.name)))
        .filter(|c| !leading.iter().any(|l| l.eq_ignore_ascii_case(&c.name)))
        .map(|c| c.name.clone())
        .collect();
    columns.sort();
    columns.dedup();
    if columns.is_empty() {
        return None;
    }
    Some(Advice::UnindexedFilter {
        table,
        columns,
        seen: seen.seen,
        example_sql: seen.example_sql,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::LiveColumn;

    fn live(names: &[&str]) -> Vec<LiveColumn> {
        names
            .iter()
            .map(|n| LiveColumn {
                name: n.to_string(),
                data_type: "text".into(),
                nullable: true,
            })
            .collect()
    }

    fn seen() -> ScanSeen {
        ScanSeen {
            seen: 3,
            example_sql: "SELECT 1".into(),
        }
    }

    #[test]
    fn only_live_columns_that_lead_no_index_are_advised() {
        let names: Vec<String> = ["note", "KIND", "id", "lower", "text"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let advice = filter_advice(
            "notes".into(),
            &names,
            seen(),
            &live(&["id", "note", "kind"]),
            &["id".into()],
        );
        assert_eq!(
            advice,
            Some(Advice::UnindexedFilter {
                table: "notes".into(),
                columns: vec!["kind".into(), "note".into()],
                seen: 3,
                example_sql: "SELECT 1".into(),
            })
        );
        let text = advice.unwrap().to_string();
        assert!(
            text.contains("notes is read in full to filter on kind, note"),
            "{text}"
        );
        // Every name indexed, or no such table: nothing.
        let indexed = ["id".into(), "note".into(), "kind".into()];
        assert_eq!(
            filter_advice(
                "notes".into(),
                &names,
                seen(),
                &live(&["id", "note", "kind"]),
                &indexed
            ),
            None
        );
        assert_eq!(filter_advice("gone".into(), &names, seen(), &[], &[]), None);
    }
}
