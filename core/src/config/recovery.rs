//! Recovery at open (`[databases.NAME.recovery]` in TOML, `CUSTODIAN_RECOVER_*` in the
//! environment): which coordinators' in-doubt branches a database resolves when it is opened,
//! and where their recovery log is.

use super::{check_url, DatabaseConfig, DatabaseUrl};
use crate::error::{Error, Result};
use serde::Deserialize;

/// Recovery at open (`[databases.NAME.recovery]`). **Off by default** (no coordinators).
///
/// With coordinators named, `custodian::open` resolves, on the database it opens, every
/// prepared branch of those coordinators by their recovery log, as
/// [`Coordinator::recover`](crate::Coordinator::recover) does, before it returns the handle.
///
/// It is off by default because a database does not know who coordinates transactions on it,
/// and because recovery rolls back every undecided branch of a coordinator name, including the
/// branches of a transaction that another live process running under that name is about to
/// commit (that transaction then fails). Turn it on only in the process that *is* the
/// coordinator (one name per running instance), which then needs the log database reachable
/// to open: `open` fails with the recovery's error rather than hand out a handle while
/// prepared branches may hold locks.
///
/// ```
/// use custodian_core::config::Config;
/// let cfg = Config::from_toml_str(r#"
///     [databases.main]
///     url = "postgres://app@127.0.0.1/ledger"
///     recovery = { coordinators = ["billing-1"], log = "postgres://app@127.0.0.1/ops" }
/// "#).unwrap();
/// assert!(cfg.database("main").unwrap().recovery.is_on());
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// Names of the coordinators whose branches are resolved at open (the names their
    /// applications give `Coordinator::new`); empty turns recovery at open off. Also
    /// `CUSTODIAN_RECOVER_COORDINATORS`, comma-separated.
    pub coordinators: Vec<String>,
    /// URL of those coordinators' log database; required when `coordinators` is not empty. It
    /// may be the database being opened. Also `CUSTODIAN_RECOVER_LOG`.
    pub log: Option<DatabaseUrl>,
}

impl RecoveryConfig {
    /// Whether a recovery pass runs at open.
    pub fn is_on(&self) -> bool {
        !self.coordinators.is_empty()
    }

    pub(super) fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) {
        if let Some(v) = get("CUSTODIAN_RECOVER_COORDINATORS") {
            self.coordinators = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = get("CUSTODIAN_RECOVER_LOG") {
            self.log = Some(DatabaseUrl::new(&v));
        }
    }

    pub(super) fn validate(&self, at: &str) -> Result<()> {
        let field = if at == "url" {
            "recovery.log".to_string()
        } else {
            format!("{at}.recovery.log")
        };
        match (&self.log, self.is_on()) {
            (Some(log), _) => check_url(log, &field),
            (None, true) => Err(Error::config(
                field,
                "recovery at open names coordinators but no log database: give the URL of \
                 their recovery log",
            )),
            (None, false) => Ok(()),
        }
    }
}

impl DatabaseConfig {
    /// Turns on recovery at open (see [`RecoveryConfig`]): the branches of `coordinators`
    /// left prepared on this database are resolved by the log at `log_url` when it opens.
    pub fn recover_at_open(mut self, coordinators: &[&str], log_url: &str) -> Self {
        self.recovery = RecoveryConfig {
            coordinators: coordinators.iter().map(|c| c.to_string()).collect(),
            log: Some(DatabaseUrl::new(log_url)),
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_needs_a_log_and_reads_the_environment() {
        let mut cfg = DatabaseConfig::from_url("sqlite://a.db").unwrap();
        assert!(!cfg.recovery.is_on(), "off by default");
        cfg.recovery.coordinators = vec!["c1".into()];
        let e = cfg.validate("url").unwrap_err();
        assert!(
            matches!(&e, Error::Config { field, .. } if field == "recovery.log"),
            "{e}"
        );
        cfg.apply_env(|k| match k {
            "CUSTODIAN_RECOVER_COORDINATORS" => Some(" a, b ,".into()),
            "CUSTODIAN_RECOVER_LOG" => Some("sqlite://log.db".into()),
            _ => None,
        })
        .unwrap();
        cfg.validate("url").unwrap();
        assert_eq!(cfg.recovery.coordinators, ["a", "b"]);
        let cfg = DatabaseConfig::from_url("sqlite://a.db")
            .unwrap()
            .recover_at_open(&["x"], "ftp://nowhere");
        assert!(cfg.validate("url").is_err(), "a log URL no backend takes");
    }
}
