//! [`Probe`]: the diesel instrumentation on every pooled connection. It times each statement,
//! counts it, opens its span, logs it when slow, and counts statement shapes for N+1
//! detection; the session tells it which entity, operation and call site a statement serves.

use super::binds::{self, BindValue};
use super::{NPlusOneMode, ObserveConfig};
use diesel::connection::{DebugQuery, Instrumentation, InstrumentationEvent};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::time::{Duration, Instant};

/// What a statement is run for: set by the session around its entity reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The entity (struct) name.
    pub entity: &'static str,
    /// The session operation (`get`, `find`, `select`, `insert`, ...).
    pub op: &'static str,
    /// Where the application called the session.
    pub caller: &'static Location<'static>,
    /// Whether the statements may show their bind values when `log_bind_values` is on: the
    /// entity has no encrypted or masked column (raw statements never do).
    pub binds: bool,
}

/// One statement shape that repeated past the N+1 threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NPlusOneFinding {
    /// The entity the statements read (empty for a raw query).
    pub entity: String,
    /// `file:line:column` of the application's call.
    pub call_site: String,
    /// How many times the shape ran.
    pub count: u32,
    /// The statement's SQL, with placeholders.
    pub sql: String,
}

/// A statement slower than the threshold, waiting for its plan to be captured.
#[derive(Clone)]
pub struct SlowStatement {
    /// The statement's SQL, with placeholders.
    pub sql: String,
    /// How long it ran.
    pub elapsed: Duration,
    /// The entity it served (empty for a raw query).
    pub entity: &'static str,
    /// The values it ran with, to plan it with them; `None` when one is of a kind the plan
    /// capture cannot rebind. Never logged.
    pub(crate) binds: Option<Vec<BindValue>>,
}

impl std::fmt::Debug for SlowStatement {
    /// Everything but the bind values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowStatement")
            .field("sql", &self.sql)
            .field("elapsed", &self.elapsed)
            .field("entity", &self.entity)
            .finish_non_exhaustive()
    }
}

/// The instrumentation custodian installs on every connection it opens.
#[derive(Debug)]
pub struct Probe {
    config: ObserveConfig,
    started: Option<Instant>,
    span: Option<tracing::Span>,
    /// While the session waits for a result's row count ([`Probe::hold`]): the span of the
    /// statement that finished last, to record the count on. Never kept past that call, so
    /// no span outlives its statement's call.
    last: Option<tracing::Span>,
    /// The session asked to keep the last statement's span for its row count.
    holding: bool,
    /// Statements started on this connection, to tell whether one call ran exactly one.
    statements: u64,
    context: Option<Context>,
    /// Statement shape -> times run in the current transaction (or session).
    shapes: HashMap<String, u32>,
    finding: Option<NPlusOneFinding>,
    slow: Option<SlowStatement>,
    /// When each of the last plans of the rate window was captured.
    plans: Vec<Instant>,
    /// A plan is being captured: its `EXPLAIN` is not itself logged as slow (MariaDB runs a
    /// derived table's subquery to plan the outer query).
    explaining: bool,
    /// The application's default diesel instrumentation
    /// (`diesel::connection::set_default_instrumentation`), which custodian's probe replaces on
    /// the connection and therefore forwards every event to.
    chained: Chained,
    /// The pool is testing the connection ([`Probe::upkeep`]): its statement is not one of the
    /// application's, so it is neither timed, counted nor given a span.
    upkeep: bool,
    /// The connection's server session name (see `Backend::server_session`), once asked:
    /// it is fixed for the connection's life, and the probe is the state custodian keeps per
    /// connection, so a session checked out later does not ask again.
    server_session: Option<String>,
    /// The metric keys of each (entity, op) this connection ran, built once: the `metrics`
    /// macros build a key (and allocate its label list) on every call, recorder or not, which
    /// on SQLite cost about 4% of a read's instructions with no recorder installed. Found by
    /// the addresses of the two `&'static str`s (see [`LabelAddr`]).
    keys: HashMap<LabelAddr, StatementKeys, BuildHasherDefault<AddrHasher>>,
    /// What the next statement shows as its SQL instead of its text ([`Probe::conceal_next`]).
    concealed: Option<&'static str>,
    /// The statement running now is concealed: shown as this text.
    concealing: Option<&'static str>,
}

/// Where the (entity, op) labels of a statement live: their addresses and lengths. A label is
/// a `&'static str`, the same one at every call of a call site, so its address names it without
/// hashing its text (SipHash over both strings cost about 380 instructions a statement). Two
/// copies of one text at two addresses get two entries holding equal keys, which a recorder
/// treats as one metric: the cache only saves rebuilding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LabelAddr(usize, usize, usize, usize);

impl LabelAddr {
    fn of(entity: &'static str, op: &'static str) -> Self {
        LabelAddr(
            entity.as_ptr() as usize,
            entity.len(),
            op.as_ptr() as usize,
            op.len(),
        )
    }
}

/// A multiply-rotate hasher for [`LabelAddr`] (addresses, not text an attacker chooses).
#[derive(Debug, Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// The keys of `custodian_statements_total` and `custodian_statement_seconds` for one
/// (entity, op).
#[derive(Debug)]
struct StatementKeys {
    total: metrics::Key,
    seconds: metrics::Key,
}

impl StatementKeys {
    fn new(entity: &'static str, op: &'static str) -> Self {
        let labels = || {
            vec![
                metrics::Label::from_static_parts("entity", entity),
                metrics::Label::from_static_parts("op", op),
            ]
        };
        StatementKeys {
            total: metrics::Key::from_parts("custodian_statements_total", labels()),
            seconds: metrics::Key::from_parts("custodian_statement_seconds", labels()),
        }
    }
}

/// The metadata the statement metrics are registered with (what the macros would give).
static STATEMENT_METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The instrumentation the probe forwards to, if the application set a default one.
struct Chained(Option<Box<dyn Instrumentation>>);

impl std::fmt::Debug for Chained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// The marker diesel writes between a query's SQL and its bind values.
const BINDS_MARKER: &str = " -- binds: ";

/// Collects a query's rendering up to the bind values, then stops the rendering: the values
/// are never formatted.
struct UntilBinds(String);

impl std::fmt::Write for UntilBinds {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if s == BINDS_MARKER {
            return Err(std::fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}

/// The SQL of a diesel query without its bind values.
fn sql_text(query: &dyn DebugQuery) -> String {
    let mut out = UntilBinds(String::new());
    // The error is the stop at the bind values.
    let _ = std::fmt::write(&mut out, format_args!("{query}"));
    let mut text = out.0;
    // A query rendered some other way: cut at the marker all the same.
    if let Some(i) = text.rfind(BINDS_MARKER) {
        text.truncate(i);
    }
    text
}

impl Probe {
    /// A probe with `config`'s settings.
    pub fn new(config: &ObserveConfig) -> Self {
        Probe {
            config: config.clone(),
            started: None,
            span: None,
            last: None,
            holding: false,
            statements: 0,
            context: None,
            shapes: HashMap::new(),
            finding: None,
            slow: None,
            plans: Vec::new(),
            explaining: false,
            chained: Chained(diesel::connection::get_default_instrumentation()),
            upkeep: false,
            server_session: None,
            keys: HashMap::default(),
            concealed: None,
            concealing: None,
        }
    }

    /// Makes the next statement show `shown` as its SQL in spans and logs, with no bind
    /// values, no plan capture and no N+1 count: for a statement whose values are written into
    /// its text (audit records sent with `COMMIT`), which the SQL field must never carry.
    pub(crate) fn conceal_next(&mut self, shown: &'static str) {
        self.concealed = Some(shown);
    }

    /// The server session name of this probe's connection, if it was asked before.
    pub(crate) fn server_session(&self) -> Option<&str> {
        self.server_session.as_deref()
    }

    /// Keeps the server session name of this probe's connection.
    pub(crate) fn remember_server_session(&mut self, name: &str) {
        self.server_session = Some(name.to_string());
    }

    /// The probe of `conn`, if custodian installed one.
    pub fn of(conn: &mut crate::conn::AnyConnection) -> Option<&mut Probe> {
        diesel::Connection::instrumentation(conn).downcast_mut::<Probe>()
    }

    /// Sets what the next statements serve; returns the context it replaces.
    pub fn enter(&mut self, context: Option<Context>) -> Option<Context> {
        std::mem::replace(&mut self.context, context)
    }

    /// Marks the start (`true`) or end of the pool's test of the connection (test on checkout):
    /// pool upkeep, whose statement the probe leaves out of the statement metrics, spans, slow
    /// log and N+1 counts (it counted about 400 instructions of a checkout on SQLite). The
    /// application's default instrumentation still sees it.
    pub(crate) fn upkeep(&mut self, on: bool) {
        self.upkeep = on;
    }

    /// Marks the start (`true`) or end of a plan capture, whose statement is not logged.
    pub fn explaining(&mut self, on: bool) {
        self.explaining = on;
    }

    /// Forgets the shapes counted so far (a transaction or session ended).
    pub fn reset_shapes(&mut self) {
        self.shapes.clear();
        self.finding = None;
    }

    /// The N+1 finding of the last statements, in [`NPlusOneMode::Error`].
    pub fn take_finding(&mut self) -> Option<NPlusOneFinding> {
        self.finding.take()
    }

    /// The slow statement whose plan is still to be captured, if the rate limit allows one.
    pub fn take_slow(&mut self) -> Option<SlowStatement> {
        let slow = self.slow.take()?;
        let now = Instant::now();
        self.plans
            .retain(|at| now.duration_since(*at) < Duration::from_secs(60));
        if self.plans.len() >= self.config.slow_plans_per_minute as usize {
            return None;
        }
        self.plans.push(now);
        Some(slow)
    }

    /// How many statements have started on this connection.
    pub fn statements(&self) -> u64 {
        self.statements
    }

    /// Keeps (`true`) the span of each statement that finishes until [`Probe::rows`] records
    /// its row count, or stops keeping it and lets it close (`false`).
    pub fn hold(&mut self, on: bool) {
        self.holding = on;
        if !on {
            self.last = None;
        }
    }

    /// Records `rows` (returned or affected) on the span of the statement that finished last
    /// while held, and lets the span close.
    pub fn rows(&mut self, rows: u64) {
        if let Some(span) = self.last.take() {
            span.record("rows", rows);
        }
    }

    fn labels(&self) -> (&'static str, &'static str) {
        self.context.map_or(("", "sql"), |c| (c.entity, c.op))
    }

    fn start(&mut self, query: &dyn DebugQuery) {
        self.statements += 1;
        self.last = None;
        self.concealing = self.concealed.take();
        let (entity, op) = self.labels();
        let span = tracing::debug_span!(
            target: "custodian::statement",
            "custodian.statement",
            entity,
            op,
            sql = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            error = tracing::field::Empty,
            rows = tracing::field::Empty,
            binds = tracing::field::Empty,
        );
        if !span.is_disabled() {
            match self.concealing {
                Some(shown) => span.record("sql", shown),
                None => span.record("sql", sql_text(query).as_str()),
            };
            if self.concealing.is_none()
                && self.config.log_bind_values
                && self.context.is_some_and(|c| c.binds)
            {
                let text = query.to_string();
                if let Some(i) = text.rfind(BINDS_MARKER) {
                    span.record("binds", &text[i + BINDS_MARKER.len()..]);
                }
            }
            self.span = Some(span);
        }
        self.started = Some(Instant::now());
    }

    fn finish(&mut self, query: &dyn DebugQuery, error: Option<&diesel::result::Error>) {
        let elapsed = self.started.take().map(|s| s.elapsed()).unwrap_or_default();
        let (entity, op) = self.labels();
        let keys = self
            .keys
            .entry(LabelAddr::of(entity, op))
            .or_insert_with(|| StatementKeys::new(entity, op));
        metrics::with_recorder(|recorder| {
            recorder
                .register_counter(&keys.total, &STATEMENT_METADATA)
                .increment(1);
            recorder
                .register_histogram(&keys.seconds, &STATEMENT_METADATA)
                .record(elapsed.as_secs_f64());
        });
        if let Some(span) = self.span.take() {
            span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
            if let Some(e) = error {
                span.record("error", tracing::field::display(e));
            }
            if self.holding {
                self.last = Some(span);
            }
        }
        let slow = !self.explaining && self.config.slow_threshold().is_some_and(|t| elapsed >= t);
        let concealed = self.concealing.take();
        let count_shape = self.config.n_plus_one != NPlusOneMode::Off
            && error.is_none()
            && self.context.is_some()
            && concealed.is_none();
        if !slow && !count_shape {
            return;
        }
        let sql = concealed.map_or_else(|| sql_text(query), str::to_string);
        if slow {
            metrics::counter!("custodian_slow_statements_total", "entity" => entity, "op" => op)
                .increment(1);
            tracing::warn!(
                target: "custodian::slow",
                entity,
                op,
                sql = sql.as_str(),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "slow statement"
            );
            if concealed.is_some() {
                return;
            }
            // The values are read back only for a slow statement, to plan it with them.
            let text = query.to_string();
            let binds = text.rfind(BINDS_MARKER).map_or(Some(Vec::new()), |i| {
                binds::parse(&text[i + BINDS_MARKER.len()..])
            });
            self.slow = Some(SlowStatement {
                sql: sql.clone(),
                elapsed,
                entity,
                binds,
            });
        }
        if count_shape {
            self.count_shape(sql);
        }
    }

    fn count_shape(&mut self, sql: String) {
        // Only the session's own reads and writes are counted: transaction control and audit
        // appends repeat by design.
        let Some(context) = self.context else {
            return;
        };
        let count = {
            let n = self.shapes.entry(sql.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if count != self.config.n_plus_one_threshold + 1 {
            return;
        }
        let (entity, call_site) = (context.entity.to_string(), context.caller.to_string());
        metrics::counter!("custodian_n_plus_one_total", "entity" => entity.clone()).increment(1);
        tracing::warn!(
            target: "custodian::n_plus_one",
            entity = entity.as_str(),
            call_site = call_site.as_str(),
            count,
            sql = sql.as_str(),
            "the same statement ran {count} times: load these rows in one batch"
        );
        if self.config.n_plus_one == NPlusOneMode::Error {
            self.finding = Some(NPlusOneFinding {
                entity,
                call_site,
                count,
                sql,
            });
        }
    }
}

impl Instrumentation for Probe {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match &event {
            _ if self.upkeep => {}
            InstrumentationEvent::StartQuery { query, .. } => self.start(*query),
            InstrumentationEvent::FinishQuery { query, error, .. } => self.finish(*query, *error),
            _ => {}
        }
        if let Some(chained) = &mut self.chained.0 {
            chained.on_connection_event(event);
        }
    }
}
