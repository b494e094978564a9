//! Plans of logged statements that ran with placeholders.
//!
//! PostgreSQL cannot `EXPLAIN` SQL with `$1`, so the statement is prepared and its *generic*
//! plan explained (`plan_cache_mode = force_generic_plan`, parameters `NULL`): the plan that
//! does not depend on the values, and no value reaches the server a second time. MariaDB has
//! no generic plan, so the values are rebound: each `?` becomes a user variable set to its
//! value. MariaDB folds a variable compared for equality into the plan as its value, so
//! every SQL literal in the plan's strings (and every number in its conditions) is masked
//! as `?`. PostgreSQL's capture runs
//! in a transaction (or savepoint) of its own that is rolled back, so a failed capture leaves
//! the application's transaction usable (a MariaDB error does not end a transaction).

use custodian_core::observe::binds::BindValue;
use custodian_core::observe::plan_of_sql;
use custodian_core::AnyConnection;
use diesel::connection::SimpleConnection;
use diesel::QueryResult;

#[cfg(feature = "postgres")]
/// Runs `capture` inside a savepoint (in a transaction) or a transaction of its own, and
/// rolls it back whatever happened.
fn rolled_back<T>(
    conn: &mut AnyConnection,
    capture: impl FnOnce(&mut AnyConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    use diesel::connection::TransactionManager;
    use diesel::Connection;
    let in_tx =
        <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth()?
            .is_some();
    let (open, close) = if in_tx {
        (
            "SAVEPOINT custodian_explain",
            "ROLLBACK TO SAVEPOINT custodian_explain; RELEASE SAVEPOINT custodian_explain",
        )
    } else {
        ("BEGIN", "ROLLBACK")
    };
    conn.batch_execute(open)?;
    let result = capture(conn);
    let closed = conn.batch_execute(close);
    let value = result?;
    closed?;
    Ok(value)
}

/// Where `sql` has a placeholder outside quoted text and identifiers: the byte offsets of
/// each `?` (MariaDB) or each `$n` with its number and length (PostgreSQL).
fn placeholders(sql: &str, dollar: bool) -> Vec<(usize, usize)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' && q == b'\'' && !dollar {
                        2
                    } else {
                        1
                    };
                }
            }
            b'?' if !dollar => out.push((i, 1)),
            b'$' if dollar => {
                let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits > 0 {
                    out.push((i, digits + 1));
                    i += digits;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[cfg(feature = "postgres")]
/// PostgreSQL: the generic plan of `sql`, prepared, with every parameter `NULL`.
pub(crate) fn postgres(
    conn: &mut AnyConnection,
    sql: &str,
    binds: &[BindValue],
) -> QueryResult<Option<String>> {
    let params = placeholders(sql, true).len().max(binds.len());
    let mut prepared = false;
    let plan = rolled_back(conn, |conn| {
        if params == 0 {
            return plan_of_sql(conn, &format!("EXPLAIN (FORMAT JSON) {sql}"));
        }
        conn.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")?;
        conn.batch_execute(&format!("PREPARE custodian_explain AS {sql}"))?;
        prepared = true;
        let nulls = vec!["NULL"; params].join(", ");
        plan_of_sql(
            conn,
            &format!("EXPLAIN (FORMAT JSON) EXECUTE custodian_explain({nulls})"),
        )
    });
    // A prepared statement is not undone by a rollback: remove it, now that the
    // transaction (if any) is usable again.
    if prepared {
        conn.batch_execute("DEALLOCATE custodian_explain")?;
    }
    plan.map(Some)
}

#[cfg(feature = "mysql")]
/// MariaDB: the plan of `sql` with each `?` replaced by a user variable holding its value.
pub(crate) fn mariadb(
    conn: &mut AnyConnection,
    sql: &str,
    binds: &[BindValue],
) -> QueryResult<Option<String>> {
    let marks = placeholders(sql, false);
    if marks.len() != binds.len() {
        return Ok(None);
    }
    let mut explained = String::from("EXPLAIN FORMAT=JSON ");
    let mut from = 0;
    for (n, (at, len)) in marks.iter().enumerate() {
        explained.push_str(&sql[from..*at]);
        explained.push_str(&format!("@custodian_explain_{n}"));
        from = at + len;
    }
    explained.push_str(&sql[from..]);
    let vars: Vec<String> = (0..binds.len())
        .map(|n| format!("@custodian_explain_{n}"))
        .collect();
    // A failed statement leaves a MariaDB transaction usable: no savepoint needed.
    let plan = vars
        .iter()
        .zip(binds)
        .try_for_each(|(var, value)| set_variable(conn, var, value))
        .and_then(|()| plan_of_sql(conn, &explained))
        .map(|plan| mask_literals(&plan));
    // User variables outlive transactions: clear them.
    if !vars.is_empty() {
        let clear: Vec<String> = vars.iter().map(|v| format!("{v} = NULL")).collect();
        conn.batch_execute(&format!("SET {}", clear.join(", ")))?;
    }
    plan.map(Some)
}

#[cfg(feature = "mysql")]
/// `SET @var = ?` with `value` bound (never written into SQL text).
fn set_variable(conn: &mut AnyConnection, var: &str, value: &BindValue) -> QueryResult<()> {
    use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text};
    use diesel::RunQueryDsl;
    let q = diesel::sql_query(format!("SET {var} = ?"));
    match value {
        BindValue::Null => q.bind::<Nullable<Text>, _>(None::<String>).execute(conn),
        BindValue::Int(i) => q.bind::<BigInt, _>(*i).execute(conn),
        BindValue::Float(f) => q.bind::<Double, _>(*f).execute(conn),
        BindValue::Bool(b) => q.bind::<Bool, _>(*b).execute(conn),
        BindValue::Text(t) => q.bind::<Text, _>(t.as_str()).execute(conn),
    }
    .map(drop)
}

/// `plan` (MariaDB's JSON) with every quoted SQL literal in its strings, and every number
/// in a condition, replaced by `?`. A plan that is not JSON is masked as one string.
#[cfg(feature = "mysql")]
fn mask_literals(plan: &str) -> String {
    fn walk(v: &mut serde_json::Value, condition: bool) {
        match v {
            serde_json::Value::String(s) => *s = mask(s, condition),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| walk(i, condition)),
            serde_json::Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    walk(item, condition || key.contains("condition"));
                }
            }
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(plan) {
        Ok(mut v) => {
            walk(&mut v, false);
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        Err(_) => mask(plan, true),
    }
}

/// `text` with quoted literals (`'..'`, backslash and doubled-quote escapes) as `'?'` and,
/// with `numbers`, each number that is not part of a name as `?`.
#[cfg(feature = "mysql")]
fn mask(text: &str, numbers: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        if c == '\'' {
            loop {
                match chars.next() {
                    None => break,
                    Some('\\') => {
                        chars.next();
                    }
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                    }
                    Some('\'') => break,
                    Some(_) => {}
                }
            }
            out.push_str("'?'");
            prev = Some('\'');
            continue;
        }
        let in_name =
            prev.is_some_and(|p| p.is_alphanumeric() || matches!(p, '_' | '@' | '`' | '$'));
        if numbers && c.is_ascii_digit() && !in_name {
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || matches!(n, '.' | '_'))
            {
                chars.next();
            }
            out.push('?');
            prev = Some('?');
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[cfg(feature = "mysql")]
    #[test]
    fn literals_in_plans_are_masked() {
        let plan = r#"{"query_block": {"table": {"table_name": "t1", "key_length": "4",
            "attached_condition": "t1.a = 'se''c\\'ret' and t1.b > 42.5 and t1.c2 = @v_0"}}}"#;
        let masked = super::mask_literals(plan);
        assert!(!masked.contains("se") && !masked.contains("42"), "{masked}");
        assert!(
            masked.contains("t1.a = '?' and t1.b > ? and t1.c2 = @v_0"),
            "{masked}"
        );
        assert!(masked.contains(r#""key_length": "4""#), "{masked}");
    }

    #[test]
    fn placeholders_outside_quotes_only() {
        let sql = "SELECT '?', `a?`, \"$1\" FROM t WHERE a = ? AND b = 'it''s ?' AND c = ?";
        assert_eq!(placeholders(sql, false).len(), 2);
        let pg = "SELECT '$1' FROM t WHERE a = $1 AND b = $12";
        assert_eq!(placeholders(pg, true), vec![(29, 2), (40, 3)]);
    }
}
