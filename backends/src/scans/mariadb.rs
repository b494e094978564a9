//! MariaDB: tables with `access_type: "ALL"` in the JSON of `EXPLAIN FORMAT=JSON`, with their
//! `attached_condition` (or that of the `block-nl-join` holding them); the columns are read
//! from the condition, where MariaDB qualifies each by its table (or the table's alias, which
//! then names no table and gets no advice).

use custodian_core::observe::FilteredScan;
use serde_json::{Map, Value};

/// The filtered full scans of `plan`; none when it is not MariaDB's JSON.
pub(crate) fn filtered_scans(plan: &str) -> Vec<FilteredScan> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(plan) {
        walk(&v, None, &mut out);
    }
    out
}

/// Walks `v`; `outer` is the condition of the join node holding it, if any.
fn walk(v: &Value, outer: Option<&str>, out: &mut Vec<FilteredScan>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk(i, outer, out)),
        Value::Object(node) => {
            let condition = text(node, "attached_condition").or(outer);
            let table = text(node, "table_name");
            if let (Some(table), Some("ALL"), Some(condition)) =
                (table, text(node, "access_type"), condition)
            {
                // `<derived2>`, `<subquery3>`: no table of the schema.
                let columns = super::condition_columns(condition, &[table], true);
                if !table.starts_with('<') && !columns.is_empty() {
                    out.push(FilteredScan {
                        table: table.to_string(),
                        columns,
                    });
                }
            }
            // A join node's condition applies to the table it holds, not to a table's own
            // subqueries.
            let inner = if table.is_some() { None } else { condition };
            node.values().for_each(|child| walk(child, inner, out));
        }
        _ => {}
    }
}

fn text<'v>(node: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    node.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(table: &str, columns: &[&str]) -> FilteredScan {
        FilteredScan {
            table: table.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn full_scans_with_a_condition_only() {
        let plan = r#"{"query_block": {"select_id": 1, "nested_loop": [
            {"table": {"table_name": "sn", "access_type": "ALL", "rows": 3,
              "attached_condition": "sn.note = '?' and sn.kind <> '?' and sn.id > ?"}},
            {"block-nl-join": {"table": {"table_name": "b", "access_type": "ALL"},
              "attached_condition": "sn.note = b.kind"}},
            {"table": {"table_name": "c", "access_type": "ALL"}},
            {"table": {"table_name": "d", "access_type": "const", "attached_condition": "d.x = 1"}},
            {"table": {"table_name": "<derived2>", "access_type": "ALL",
              "attached_condition": "`<derived2>`.v = 1"}}
        ]}}"#;
        assert_eq!(
            filtered_scans(plan),
            [scan("sn", &["note", "kind", "id"]), scan("b", &["kind"])]
        );
    }

    #[test]
    fn an_unknown_plan_yields_nothing() {
        for plan in [
            "",
            "{",
            "[]",
            r#"{"table": {"table_name": 1, "access_type": "ALL", "attached_condition": "a = 1"}}"#,
            r#"{"table": {"table_name": "t", "access_type": "ALL", "attached_condition": ["a"]}}"#,
        ] {
            assert_eq!(filtered_scans(plan), [], "{plan}");
        }
    }
}
