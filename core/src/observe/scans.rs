//! Full scans with a filter seen in the plans of slow statements: what a backend reads out of
//! a plan ([`FilteredScan`]) and the bounded, deduplicated record a [`Db`](crate::Db) keeps
//! of them for its schema advice. Only table and column names are kept, never a value.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A table a plan reads in full while filtering it, and the columns of that filter that the
/// plan or the statement names (see [`Backend::filtered_scans`](crate::Backend::filtered_scans)).
/// The columns are candidates: names the schema advice checks against the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredScan {
    /// The table, as the plan names it.
    pub table: String,
    /// The names in the filter that may be columns of `table`, each once.
    pub columns: Vec<String>,
}

/// How many distinct (table, columns) scans one `Db` remembers; later ones are not recorded.
const MAX_SCANS: usize = 64;
/// The longest example statement kept, in bytes (cut at a character boundary).
const MAX_SQL: usize = 1_000;

/// What is remembered of one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanSeen {
    /// Slow statements whose plan showed it.
    pub(crate) seen: u64,
    /// The SQL (with placeholders) of the first of them.
    pub(crate) example_sql: String,
}

/// The filtered full scans of the slow statements one `Db` explained, keyed by table and
/// (sorted) columns, at most [`MAX_SCANS`] of them.
#[derive(Debug, Default)]
pub(crate) struct ScanLog {
    scans: Mutex<BTreeMap<(String, Vec<String>), ScanSeen>>,
}

impl ScanLog {
    /// Records the scans of one slow statement's plan (`sql`: its SQL with placeholders).
    pub(crate) fn record(&self, scans: Vec<FilteredScan>, sql: &str) {
        // A poisoned lock only means another thread panicked while recording: the map is
        // still whole (every update is one insert or one increment).
        let mut map = self.scans.lock().unwrap_or_else(|e| e.into_inner());
        for scan in scans {
            if scan.table.is_empty() || scan.columns.is_empty() {
                continue;
            }
            let mut columns = scan.columns;
            columns.sort();
            columns.dedup();
            let key = (scan.table, columns);
            let full = map.len() >= MAX_SCANS;
            match map.get_mut(&key) {
                Some(seen) => seen.seen = seen.seen.saturating_add(1),
                None if full => {}
                None => {
                    map.insert(
                        key,
                        ScanSeen {
                            seen: 1,
                            example_sql: shortened(sql),
                        },
                    );
                }
            }
        }
    }

    /// Every scan recorded, by table and columns.
    pub(crate) fn snapshot(&self) -> Vec<(String, Vec<String>, ScanSeen)> {
        let map = self.scans.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|((table, columns), seen)| (table.clone(), columns.clone(), seen.clone()))
            .collect()
    }
}

/// `sql` cut to [`MAX_SQL`] bytes, with `...` when cut.
fn shortened(sql: &str) -> String {
    if sql.len() <= MAX_SQL {
        return sql.to_string();
    }
    let mut end = MAX_SQL;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &sql[..end])
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
    fn the_same_scan_is_counted_not_repeated() {
        let log = ScanLog::default();
        log.record(vec![scan("notes", &["note", "kind"])], "SELECT 1");
        log.record(vec![scan("notes", &["kind", "note", "kind"])], "SELECT 2");
        log.record(vec![scan("notes", &["kind"]), scan("t", &[])], "SELECT 3");
        let seen = log.snapshot();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].0, "notes");
        assert_eq!(seen[0].1, ["kind"]);
        assert_eq!(seen[1].1, ["kind", "note"]);
        assert_eq!(seen[1].2.seen, 2);
        assert_eq!(seen[1].2.example_sql, "SELECT 1");
    }

    #[test]
    fn memory_is_bounded() {
        let log = ScanLog::default();
        let long = "é".repeat(MAX_SQL);
        for i in 0..MAX_SCANS + 10 {
            log.record(vec![scan(&format!("t{i}"), &["a"])], &long);
        }
        // A scan already known is still counted once the log is full.
        log.record(vec![scan("t0", &["a"])], "SELECT 1");
        let seen = log.snapshot();
        assert_eq!(seen.len(), MAX_SCANS);
        assert!(seen.iter().all(|s| s.2.example_sql.len() <= MAX_SQL + 3));
        let t0 = seen.iter().find(|s| s.0 == "t0").unwrap();
        assert_eq!(t0.2.seen, 2);
        assert!(!seen.iter().any(|s| s.0 == format!("t{}", MAX_SCANS + 5)));
    }
}
