//! [`DatabaseUrl`]: a database URL whose secrets never appear in `Display`, `Debug` or errors.
//!
//! Secrets are the user-info password and the values of the query parameters `password`,
//! `sslpassword` and `sslkey` (names compared ignoring case, `_` and `-`, so MySQL's `ssl_key`
//! counts too). The URL is parsed with the `url` crate. A password holding an unencoded `/`, `?`
//! or `#` ends the authority early for any URL parser, so a parse that leaves an `@` in the path,
//! query or fragment (or no parse at all) is treated as ambiguous: then everything before the last
//! `@` is taken as user info and masked. That may hide more than the password (an `@` in a query
//! value, for instance), never less.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::fmt;

/// What replaces every secret.
const MASK: &str = "***";

/// Query parameters whose values are secret, in normalized form (see [`is_secret_param`]).
const SECRET_PARAMS: &[&str] = &["password", "sslpassword", "sslkey"];

/// Secrets shorter than this are not searched for in driver messages ([`DatabaseUrl::scrub`]):
/// they would match ordinary words and make the message unreadable.
const MIN_SCRUBBED_LEN: usize = 3;

/// A database URL whose password is never shown.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, to hand to a driver. Never log this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme, e.g. `postgres`, `mysql`, `sqlite` (the part before the first `:`).
    pub fn scheme(&self) -> &str {
        self.0.split(':').next().unwrap_or("")
    }

    /// The URL with the user-info password and the values of the query parameters `password`,
    /// `sslpassword` and `sslkey` replaced by `***`.
    ///
    /// ```
    /// use custodian_core::DatabaseUrl;
    /// let u = DatabaseUrl::new("postgres://app:s3cret@db/ledger?sslmode=require&sslpassword=k3y");
    /// assert_eq!(u.redacted(), "postgres://app:***@db/ledger?sslmode=require&sslpassword=***");
    /// ```
    pub fn redacted(&self) -> String {
        redact(&self.0).text
    }

    /// `text` (typically a driver's error message) with every secret of this URL, as written
    /// and percent-decoded, replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut secrets = redact(&self.0).secrets;
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for secret in secrets
            .iter()
            .filter(|s| s.chars().count() >= MIN_SCRUBBED_LEN)
        {
            out = out.replace(secret.as_str(), MASK);
        }
        out
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Checks that `url` names a known scheme and, except for SQLite, a host (errors name `field`).
pub(super) fn check_url(url: &DatabaseUrl, field: &str) -> Result<()> {
    let raw = url.expose();
    if raw.trim().is_empty() {
        return Err(Error::config(field, "is empty"));
    }
    let scheme = url.scheme();
    if !raw.contains(':') || !super::SCHEMES.iter().any(|(s, _)| *s == scheme) {
        return Err(Error::config(
            field,
            format!(
                "unknown scheme in `{}`: expected postgres://, mysql://, sqlite://path or sqlite::memory:",
                url.redacted()
            ),
        ));
    }
    if scheme == "sqlite" {
        let path = raw.trim_start_matches("sqlite:").trim_start_matches("//");
        if path.is_empty() {
            return Err(Error::config(
                field,
                "sqlite URL has no path (use sqlite://path or sqlite::memory:)",
            ));
        }
    } else {
        let rest = raw.split_once("://").map_or("", |(_, r)| r);
        let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
        let host = host.split(['/', '?']).next().unwrap_or("");
        if host.is_empty() {
            return Err(Error::config(
                field,
                format!("`{}` has no host", url.redacted()),
            ));
        }
    }
    Ok(())
}

/// A URL with its secrets masked, and the secrets it held.
struct Redacted {
    text: String,
    secrets: Vec<String>,
}

fn redact(raw: &str) -> Redacted {
    let mut secrets = Vec::new();
    let text = match raw.split_once("://") {
        // SQLite URLs name a file: no user info, but a query could still carry a secret.
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("sqlite") => {
            mask_query_part(raw, &mut secrets)
        }
        Some((scheme, rest)) => redact_parsed(raw, &mut secrets).unwrap_or_else(|| {
            secrets.clear();
            redact_ambiguous(scheme, rest, &mut secrets)
        }),
        None => mask_query_part(raw, &mut secrets),
    };
    Redacted { text, secrets }
}

/// Masks through the `url` crate's parse; `None` when the URL does not parse unambiguously.
fn redact_parsed(raw: &str, secrets: &mut Vec<String>) -> Option<String> {
    let mut url = url::Url::parse(raw).ok()?;
    let after_host = [
        url.path(),
        url.query().unwrap_or(""),
        url.fragment().unwrap_or(""),
    ];
    if after_host.iter().any(|part| part.contains('@')) {
        return None;
    }
    if let Some(password) = url.password().map(str::to_string) {
        push_secret(secrets, &password);
        url.set_password(Some(MASK)).ok()?;
    }
    if let Some(query) = url.query().map(str::to_string) {
        url.set_query(Some(&mask_query(&query, secrets)));
    }
    Some(url.to_string())
}

/// Masks a URL no parser reads as intended: everything before the last `@` after `://` is user
/// info (a host never contains `@`); the user name is shown up to the first `:`, `/`, `?` or
/// `#`, the rest is masked.
fn redact_ambiguous(scheme: &str, rest: &str, secrets: &mut Vec<String>) -> String {
    let mut out = format!("{scheme}://");
    let host_part = match rest.rfind('@') {
        Some(at) => {
            let user_info = &rest[..at];
            let user_end = user_info
                .find([':', '/', '?', '#'])
                .unwrap_or(user_info.len());
            let (user, hidden) = user_info.split_at(user_end);
            out.push_str(user);
            if !hidden.is_empty() {
                push_secret(secrets, hidden.strip_prefix(':').unwrap_or(hidden));
                out.push(':');
                out.push_str(MASK);
            }
            out.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    out.push_str(&mask_query_part(host_part, secrets));
    out
}

/// `text` with the secret parameters of the query after its first `?` masked.
fn mask_query_part(text: &str, secrets: &mut Vec<String>) -> String {
    match text.split_once('?') {
        Some((before, query)) => format!("{before}?{}", mask_query(query, secrets)),
        None => text.to_string(),
    }
}

/// A query string with the values of secret parameters masked; other pairs kept as written.
fn mask_query(query: &str, secrets: &mut Vec<String>) -> String {
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = url::form_urlencoded::parse(pair.as_bytes()).next();
            match decoded {
                Some((decoded_name, decoded_value)) if is_secret_param(&decoded_name) => {
                    push_secret(secrets, value);
                    push_secret(secrets, &decoded_value);
                    format!("{name}={MASK}")
                }
                _ => pair.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a query parameter holds a secret: its name, lower-cased without `_` and `-`, is one
/// of [`SECRET_PARAMS`].
fn is_secret_param(name: &str) -> bool {
    let normalized: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_PARAMS.contains(&normalized.as_str())
}

/// Records a secret as written and percent-decoded, and the pieces of both between URL
/// delimiters: a driver that splits the URL elsewhere (libpq ends the password at the first `@`)
/// may quote a piece as a host name or database.
fn push_secret(secrets: &mut Vec<String>, raw: &str) {
    for form in [raw.to_string(), percent_decode(raw)] {
        secrets.extend(
            form.split(['@', '/', '?', '#', ':', '&', '='])
                .filter(|piece| !piece.is_empty() && *piece != form)
                .map(str::to_string),
        );
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
}

/// `%XX` escapes decoded (as UTF-8, lossily); anything else kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (URL, text that must not be shown, the secret as written) for passwords and secret
    /// parameters as users write them, on each scheme.
    fn cases() -> Vec<(String, &'static str, &'static str)> {
        let mut cases = Vec::new();
        for scheme in ["postgres", "postgresql", "mysql", "mariadb"] {
            for (password, hidden) in [
                ("pa/ss9word", "ss9word"),
                ("pa?ss9word", "ss9word"),
                ("pa@ss9word", "ss9word"),
                ("pa#ss9word", "ss9word"),
                ("pa%2Fss9word", "ss9word"),
                ("12/ss9word", "ss9word"),
                ("12?ss9word", "ss9word"),
                ("12#ss9word", "ss9word"),
            ] {
                for tail in [":5432/x", "/x?sslmode=disable", ""] {
                    cases.push((
                        format!("{scheme}://app:{password}@db.local{tail}"),
                        hidden,
                        password,
                    ));
                }
            }
            for param in ["password", "PassWord", "sslpassword", "sslkey", "ssl_key"] {
                cases.push((
                    format!("{scheme}://app@db.local/x?sslmode=disable&{param}=qu3ry9secret"),
                    "qu3ry9secret",
                    "qu3ry9secret",
                ));
                cases.push((
                    format!("{scheme}://db.local/x?{param}=qu3ry%2F9secret&a=b"),
                    "qu3ry",
                    "qu3ry%2F9secret",
                ));
                cases.push((
                    format!("{scheme}://app:pa/ss9word@db.local/x?{param}=qu3ry9secret"),
                    "9secret",
                    "qu3ry9secret",
                ));
            }
        }
        for raw in [
            "sqlite://ledger.db?password=qu3ry9secret",
            "sqlite::memory:?password=qu3ry9secret",
        ] {
            cases.push((raw.to_string(), "qu3ry9secret", "qu3ry9secret"));
        }
        cases
    }

    #[test]
    fn no_secret_survives_display_or_debug() {
        for (raw, hidden, secret) in cases() {
            let u = DatabaseUrl::new(raw.clone());
            let shown = format!("{u} {u:?} {}", u.redacted());
            assert!(!shown.contains(hidden), "{raw} shown as {shown}");
            assert!(shown.contains(MASK), "{raw} shown as {shown}");
            // A driver message quoting the secret, as written or decoded, is scrubbed too.
            let message = format!("bad password `{secret}` ({})", percent_decode(secret));
            let scrubbed = u.scrub(&message);
            assert!(!scrubbed.contains(hidden), "{raw}: {scrubbed}");
        }
    }

    #[test]
    fn plain_urls_keep_everything_but_the_secret() {
        let cases = [
            (
                "postgres://app:hunter2@db.local:5432/x?sslmode=disable",
                "postgres://app:***@db.local:5432/x?sslmode=disable",
            ),
            (
                "mysql://root@127.0.0.1:3306/test",
                "mysql://root@127.0.0.1:3306/test",
            ),
            ("postgres://h/db", "postgres://h/db"),
            (
                "mysql://u:p%40ss@h/db?ssl_mode=required&password=x",
                "mysql://u:***@h/db?ssl_mode=required&password=***",
            ),
            ("postgres://u:pa/ss@h/db", "postgres://u:***@h/db"),
            ("sqlite://ledger.db", "sqlite://ledger.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("sqlite:relative.db", "sqlite:relative.db"),
            ("sqlite:///tmp/a b.db", "sqlite:///tmp/a b.db"),
        ];
        for (raw, shown) in cases {
            assert_eq!(DatabaseUrl::new(raw).redacted(), shown, "{raw}");
        }
    }

    #[test]
    fn secret_parameter_names_ignore_case_and_separators() {
        for name in [
            "password",
            "PASSWORD",
            "sslPassword",
            "ssl_key",
            "ssl-key",
            "SSLKEY",
        ] {
            assert!(is_secret_param(name), "{name}");
        }
        for name in ["passwordx", "sslmode", "user", "ssl_cert"] {
            assert!(!is_secret_param(name), "{name}");
        }
    }
}
