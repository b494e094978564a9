//! [`Progress`]: what a long operation (audit seal and verify, key rotation, migrations) reports to a callback after
//! each batch, for a progress bar or a log line.

/// How far a long operation has come.
///
/// ```
/// use custodian_core::observe::Progress;
///
/// let report = |p: Progress| match p.total {
///     Some(total) => eprintln!("{}: {}/{total}", p.phase, p.done),
///     None => eprintln!("{}: {}", p.phase, p.done),
/// };
/// report(Progress { done: 500, total: Some(2_000), phase: "seal" });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Units done so far (records sealed, links verified, data keys re-wrapped, migrations
    /// applied). Never decreases within a phase.
    pub done: u64,
    /// How many units the phase has, when known before it starts: `done` reaches it when
    /// the phase completes (more can appear if records are committed meanwhile).
    pub total: Option<u64>,
    /// What is being done: `"seal"`, `"seal gaps"`, `"seal unchained"`, `"verify"`,
    /// `"rotate keys"`, `"migrate"`.
    pub phase: &'static str,
}

/// A progress callback: called on the operation's own thread or a helper thread of it.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Sync);
