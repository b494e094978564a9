//! Filtered full scans in the plans of slow statements, for core's schema advice
//! ([`Backend::filtered_scans`](custodian_core::Backend::filtered_scans)): one reader per
//! plan format (`postgres`: the JSON of `EXPLAIN (FORMAT JSON)`, `mariadb`: the JSON of
//! `EXPLAIN FORMAT=JSON`, `sqlite`: the steps of `EXPLAIN QUERY PLAN`) and, here, the reader
//! of the names an SQL condition uses. Every reader is total: text it does not understand
//! yields no scan, never an error or a panic. Names only: literals, numbers, parameters and
//! variables are skipped, and core keeps a name only if the live table has such a column.

#[cfg(feature = "mysql")]
pub(crate) mod mariadb;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// One token of SQL text or of a plan's condition.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// An unquoted word (a name or a keyword).
    Word(String),
    /// A quoted identifier (`"a b"`, `` `a` ``), unquoted.
    Quoted(String),
    /// A quoted literal, a number, a `$n` parameter or an `@variable`: no name, and its
    /// text is not kept.
    Value,
    /// `::` (a PostgreSQL cast).
    Cast,
    /// Any other character outside blanks.
    Punct(char),
}

/// Splits `text` into tokens; `backslash` says whether a backslash escapes the next character
/// in a quoted literal (MariaDB), or is itself a character (PostgreSQL, SQLite).
fn tokens(text: &str, backslash: bool) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '\'' => {
                i += 1;
                while i < chars.len() {
                    match chars[i] {
                        '\\' if backslash => i += 2,
                        '\'' if chars.get(i + 1) == Some(&'\'') => i += 2,
                        '\'' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
                out.push(Token::Value);
            }
            '"' | '`' => {
                let mut name = String::new();
                i += 1;
                while i < chars.len() {
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            name.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                i += 1;
                out.push(Token::Quoted(name));
            }
            '@' | '$' => {
                i += 1;
                while i < chars.len() && (word(chars[i]) || chars[i] == '@') {
                    i += 1;
                }
                out.push(Token::Value);
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                i += 2;
                out.push(Token::Cast);
            }
            _ if c.is_ascii_digit() => {
                while i < chars.len() && (word(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                out.push(Token::Value);
            }
            _ if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && word(chars[i]) {
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
            _ => {
                i += 1;
                out.push(Token::Punct(c));
            }
        }
    }
    out
}

/// Words of a condition that are never columns.
const KEYWORDS: &[&str] = &[
    "all", "and", "any", "array", "asc", "between", "case", "collate", "desc", "distinct", "else",
    "end", "escape", "exists", "false", "from", "glob", "ilike", "in", "is", "isnull", "like",
    "match", "not", "notnull", "null", "or", "regexp", "select", "similar", "some", "then", "true",
    "unknown", "when", "where",
];

/// Words that continue a PostgreSQL type name after `::` (`character varying`, `double
/// precision`, `timestamp without time zone`).
const TYPE_WORDS: &[&str] = &["precision", "time", "varying", "with", "without", "zone"];

/// The names `tokens` use that may be columns of a table the condition calls one of `names`
/// (its name or its alias): unqualified names, and names qualified by one of `names`; each
/// once, in order. Function names (followed by `(`), type names (after `::`) and keywords
/// are skipped.
fn columns_of(tokens: &[Token], names: &[&str]) -> Vec<String> {
    let name_of = |t: &Token| match t {
        Token::Word(w) => Some(w.clone()),
        Token::Quoted(q) => Some(q.clone()),
        _ => None,
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let Some(first) = name_of(&tokens[i]) else {
            i += 1;
            continue;
        };
        let cast = i > 0 && tokens[i - 1] == Token::Cast;
        let keyword = matches!(&tokens[i], Token::Word(w)
            if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w)));
        let mut chain = vec![first];
        i += 1;
        while tokens.get(i) == Some(&Token::Punct('.')) {
            match tokens.get(i + 1).and_then(name_of) {
                Some(part) => {
                    chain.push(part);
                    i += 2;
                }
                None => break,
            }
        }
        if cast {
            while let Some(Token::Word(w)) = tokens.get(i) {
                if !TYPE_WORDS.iter().any(|t| t.eq_ignore_ascii_case(w)) {
                    break;
                }
                i += 1;
            }
            continue;
        }
        let function = tokens.get(i) == Some(&Token::Punct('('));
        if function || (keyword && chain.len() == 1) {
            continue;
        }
        let column = chain.pop().unwrap_or_default();
        let ours = match chain.last() {
            None => true,
            Some(q) => names.iter().any(|n| n.eq_ignore_ascii_case(q)),
        };
        if ours && !out.contains(&column) {
            out.push(column);
        }
    }
    out
}

/// The names a plan's condition uses that may be columns of a table the condition calls one
/// of `names` (see [`columns_of`]).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn condition_columns(condition: &str, names: &[&str], backslash: bool) -> Vec<String> {
    columns_of(&tokens(condition, backslash), names)
}

/// Words that end a `WHERE` clause at its own depth of parentheses.
#[cfg(feature = "sqlite")]
const AFTER_WHERE: &[&str] = &[
    "except",
    "group",
    "having",
    "intersect",
    "limit",
    "order",
    "returning",
    "union",
    "window",
];

/// The names the `WHERE` clauses of `sql` use that may be columns of a table the statement
/// calls one of `names` (see [`columns_of`]).
#[cfg(feature = "sqlite")]
pub(crate) fn where_columns(sql: &str, names: &[&str]) -> Vec<String> {
    let tokens = tokens(sql, false);
    let mut out: Vec<String> = Vec::new();
    for (at, t) in tokens.iter().enumerate() {
        if !matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("where")) {
            continue;
        }
        let mut depth = 0_usize;
        let mut end = tokens.len();
        for (j, t) in tokens.iter().enumerate().skip(at + 1) {
            match t {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') if depth == 0 => {
                    end = j;
                    break;
                }
                Token::Punct(')') => depth -= 1,
                Token::Word(w)
                    if depth == 0 && AFTER_WHERE.iter().any(|k| k.eq_ignore_ascii_case(w)) =>
                {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        for c in columns_of(&without_select_lists(&tokens[at + 1..end]), names) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// `tokens` without what subqueries return and read (`SELECT` up to its `WHERE`, or to the
/// end of the subquery): a subquery's select list and tables are not a filter.
#[cfg(feature = "sqlite")]
fn without_select_lists(tokens: &[Token]) -> Vec<Token> {
    let is = |t: &Token, word: &str| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(word));
    let mut out = Vec::new();
    let mut depth = 0_usize;
    // The depth of the `SELECT` whose list is being skipped.
    let mut skipping: Option<usize> = None;
    for t in tokens {
        match t {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => {
                depth = depth.saturating_sub(1);
                if skipping.is_some_and(|d| depth < d) {
                    skipping = None;
                }
            }
            _ if skipping.is_none() && is(t, "select") => skipping = Some(depth),
            _ if skipping == Some(depth) && is(t, "where") => skipping = None,
            _ => {}
        }
        if skipping.is_none() {
            out.push(t.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_but_no_values_functions_or_types() {
        let condition = "((\"Odd Col\" > 1) AND ((note)::character varying ~~ 'x%'::text) \
                         AND (lower(kind) <> $2) AND (t.a = 'it''s x') AND other.b IS NULL \
                         AND s.t.c = @v_1 AND d IN (1.5e3, 'q'))";
        let tokens = tokens(condition, false);
        assert_eq!(
            columns_of(&tokens, &["t"]),
            ["Odd Col", "note", "kind", "a", "c", "d"]
        );
        // `x`, `s`, `it`, `q`: inside literals; `varying`, `text`: types; `lower`: a function.
        assert!(!tokens
            .iter()
            .any(|t| matches!(t, Token::Word(w) if w == "x" || w == "q")));
    }

    #[test]
    fn backslash_escapes_only_where_the_dialect_says() {
        let mariadb = "t.a = 'se\\'cret' and t.b = 1";
        assert_eq!(columns_of(&tokens(mariadb, true), &["t"]), ["a", "b"]);
        // Unbalanced or cut text: fewer names, no panic.
        for cut in ["t.a = 'open", "\"open", "t.", "::", "$", "@", ""] {
            let _ = columns_of(&tokens(cut, true), &["t"]);
            let _ = columns_of(&tokens(cut, false), &["t"]);
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn where_clauses_end_where_the_statement_says() {
        let sql = "SELECT \"n\".\"id\", \"n\".\"kind\" FROM \"n\" WHERE ((\"n\".\"note\" = ?) \
                   AND \"n\".\"id\" IN (SELECT \"m\".\"x\" FROM \"m\" WHERE \"m\".\"y\" = ?)) \
                   ORDER BY \"n\".\"kind\" LIMIT ?";
        assert_eq!(where_columns(sql, &["n"]), ["note", "id"]);
        // `m.x` is what the subquery returns, not a filter.
        assert_eq!(where_columns(sql, &["m"]), ["y"]);
        assert!(where_columns("SELECT a FROM n", &["n"]).is_empty());
    }
}
