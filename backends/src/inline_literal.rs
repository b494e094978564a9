//! PostgreSQL literals, for statements that cannot take bind parameters: those sent in the same
//! round trip as `COMMIT` (a transaction's audit records: PostgreSQL's simple query protocol
//! takes several statements at once, but no bind parameters) and the `SET`s that prepare a
//! connection.
//!
//! What is written is printable ASCII whatever the value holds, so no client encoding can read
//! a byte of a value as the end of its literal:
//! - text is an escape string (`E'…'`), whose quotes and backslashes are escaped (`''`, `\\`)
//!   and mean the same whether `standard_conforming_strings` is on or off;
//! - every character outside printable ASCII is a Unicode escape (`\uXXXX`, `\UXXXXXXXX`),
//!   which the server turns back into the same character;
//! - text holding a NUL character is not written at all (libpq would end the statement there,
//!   and PostgreSQL's text type refuses it anyway): the statement then goes the usual way, with
//!   bind parameters, and fails there as it always did.

use custodian_core::backend::Literal;
use std::fmt::Write;

/// Writes `value` into `sql` as a PostgreSQL literal; `false` for a value it cannot write (a
/// NUL character, a time outside the years 1-9999).
pub fn pg_literal(sql: &mut String, value: Literal<'_>) -> bool {
    use chrono::Datelike;
    // Writing to a String cannot fail.
    match value {
        Literal::Text(text) => return push_text(sql, text),
        Literal::Int(n) => {
            let _ = write!(sql, "{n}");
        }
        Literal::Timestamp(at) => {
            if !(1..=9999).contains(&at.year()) {
                return false;
            }
            let _ = write!(sql, "TIMESTAMP '{}'", at.format("%Y-%m-%d %H:%M:%S%.6f"));
        }
        Literal::Null => sql.push_str("NULL"),
    }
    true
}

/// `value` as an escape-string literal of printable ASCII; `None` for a NUL character.
pub fn pg_text(value: &str) -> Option<String> {
    let mut sql = String::new();
    push_text(&mut sql, value).then_some(sql)
}

/// `value` as an escape-string literal of printable ASCII; `false` for a NUL character.
fn push_text(sql: &mut String, value: &str) -> bool {
    sql.reserve(value.len() + 3);
    sql.push_str("E'");
    for c in value.chars() {
        match c {
            '\0' => return false,
            '\'' => sql.push_str("''"),
            '\\' => sql.push_str("\\\\"),
            ' '..='~' => sql.push(c),
            c if u32::from(c) <= 0xFFFF => {
                let _ = write!(sql, "\\u{:04X}", u32::from(c));
            }
            c => {
                let _ = write!(sql, "\\U{:08X}", u32::from(c));
            }
        }
    }
    sql.push('\'');
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: Literal<'_>) -> Option<String> {
        let mut sql = String::new();
        pg_literal(&mut sql, value).then_some(sql)
    }

    #[test]
    fn quotes_backslashes_and_non_ascii_are_escaped_into_printable_ascii() {
        let sql = written(Literal::Text("a'b\\c\n\u{e9}\u{1F600}")).unwrap();
        assert_eq!(sql, r"E'a''b\\c\u000A\u00E9\U0001F600'");
        assert!(sql.bytes().all(|b| (b' '..=b'~').contains(&b)), "{sql}");
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
            .and_then(|d| d.and_hms_micro_opt(11, 2, 3, 4005))
            .unwrap();
        assert_eq!(
            written(Literal::Timestamp(at)).unwrap(),
            "TIMESTAMP '2026-11-28 11:02:03.004005'"
        );
        assert_eq!(written(Literal::Int(-3)).unwrap(), "-3");
        assert_eq!(written(Literal::Null).unwrap(), "NULL");
    }

    #[test]
    fn a_nul_character_or_a_year_past_9999_is_not_written() {
        assert_eq!(written(Literal::Text("a\0b")), None);
        let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap();
        assert_eq!(written(Literal::Timestamp(far)), None);
    }
}
