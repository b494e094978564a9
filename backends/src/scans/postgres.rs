//! PostgreSQL: `Seq Scan` nodes with a `Filter` in the JSON of `EXPLAIN (FORMAT JSON)`; the
//! columns are read from the filter (qualified by the node's relation or alias, or not).

use custodian_core::observe::FilteredScan;
use serde_json::Value;

/// The filtered sequential scans of `plan`; none when it is not PostgreSQL's JSON.
pub(crate) fn filtered_scans(plan: &str) -> Vec<FilteredScan> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(plan) {
        walk(&v, &mut out);
    }
    out
}

fn walk(v: &Value, out: &mut Vec<FilteredScan>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
        Value::Object(node) => {
            let text = |key: &str| node.get(key).and_then(Value::as_str);
            let scan = matches!(text("Node Type"), Some("Seq Scan" | "Parallel Seq Scan"));
            if let (true, Some(table), Some(filter)) = (scan, text("Relation Name"), text("Filter"))
            {
                let alias = text("Alias").unwrap_or(table);
                let columns = super::condition_columns(filter, &[table, alias], false);
                if !columns.is_empty() {
                    out.push(FilteredScan {
                        table: table.to_string(),
                        columns,
                    });
                }
            }
            node.values().for_each(|child| walk(child, out));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_scans_with_a_filter_only() {
        let plan = r#"[{"Plan": {"Node Type": "Hash Join", "Hash Cond": "(b.kind = (a.note)::text)",
            "Plans": [
              {"Node Type": "Seq Scan", "Relation Name": "sn", "Alias": "b"},
              {"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "sn",
                "Alias": "a", "Filter": "((a.kind = $1) AND (lower((a.note)::text) <> 'x'::text))"}]},
              {"Node Type": "Index Scan", "Relation Name": "t", "Index Cond": "(id = $2)",
                "Filter": "(other = $3)"}
            ]}}]"#;
        assert_eq!(
            filtered_scans(plan),
            [FilteredScan {
                table: "sn".into(),
                columns: vec!["kind".into(), "note".into()],
            }]
        );
    }

    #[test]
    fn an_unknown_plan_yields_nothing() {
        for plan in [
            "",
            "not json",
            "[{\"Plan\": {\"Node Type\": \"Seq Scan\", \"Filter\": 3}}]",
            "[{\"Plan\": {\"Node Type\": \"Seq Scan\", \"Relation Name\": \"t\"}}]",
            "{\"Plan\": [1, null, \"Seq Scan\"]}",
            "[{\"Plan\": {\"Node Type\": \"Seq Scan\", \"Relation Name\": \"t\", \"Filter\": \"('open\"}}]",
        ] {
            assert_eq!(filtered_scans(plan), [], "{plan}");
        }
    }
}
