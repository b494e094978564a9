//! SQLite: `SCAN <table>` steps of `EXPLAIN QUERY PLAN` that use no index. SQLite's plan
//! names no condition, so the columns are read from the `WHERE` clauses of the statement as
//! it ran (with placeholders); a step naming the table by an alias gets no advice.

use custodian_core::observe::FilteredScan;

/// The full scans of `plan` (one step per line) with the columns `sql`'s `WHERE` clauses
/// use for each scanned table.
pub(crate) fn filtered_scans(plan: &str, sql: &str) -> Vec<FilteredScan> {
    let mut out: Vec<FilteredScan> = Vec::new();
    for step in plan.lines() {
        let step = step
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .trim();
        let Some(rest) = step.strip_prefix("SCAN ") else {
            continue;
        };
        // SQLite before 3.36 writes `SCAN TABLE t`; an index or a virtual table is no scan
        // of the table's rows.
        let rest = rest.strip_prefix("TABLE ").unwrap_or(rest);
        if rest.contains(" USING ") || rest.contains("VIRTUAL TABLE") {
            continue;
        }
        let mut words = rest.split_whitespace();
        let Some(table) = words.next() else {
            continue;
        };
        if table == "CONSTANT" || table == "SUBQUERY" || out.iter().any(|s| s.table == table) {
            continue;
        }
        let columns = super::where_columns(sql, &[table]);
        if !columns.is_empty() {
            out.push(FilteredScan {
                table: table.to_string(),
                columns,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_without_an_index_take_the_where_columns() {
        let sql =
            "SELECT \"sn\".\"id\" FROM \"sn\" INNER JOIN \"o\" ON \"o\".\"x\" = \"sn\".\"id\" \
                   WHERE ((\"sn\".\"note\" = ?) AND (\"o\".\"y\" = ?))";
        let plan = "SCAN sn\nSEARCH o USING INDEX o_x (x=?)";
        assert_eq!(
            filtered_scans(plan, sql),
            [FilteredScan {
                table: "sn".into(),
                columns: vec!["note".into()],
            }]
        );
        assert_eq!(filtered_scans("SCAN TABLE sn", sql).len(), 1);
        assert_eq!(filtered_scans("SCAN sn USING COVERING INDEX i", sql), []);
        assert_eq!(filtered_scans("SCAN CONSTANT ROW", sql), []);
        // No WHERE: a full read, not a filter.
        assert_eq!(filtered_scans("SCAN sn", "SELECT * FROM sn"), []);
        for junk in ["", "SCAN", "SCAN ", "\u{0}SCAN\u{0}"] {
            assert_eq!(filtered_scans(junk, sql), [], "{junk:?}");
        }
    }
}
