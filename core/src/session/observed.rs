//! The session's side of observability: which entity, operation and call site its statements
//! serve (for the statement probe's labels and N+1 findings), and slow-statement plans
//! captured on the session's own connection (their filtered full scans are recorded for the
//! schema advice).

use super::*;
use crate::observe::{Context, Probe};
use std::panic::Location;

impl Session {
    /// Runs `f` with the statement probe told that its statements serve `op` on `entity`,
    /// called from `caller`. The outermost operation names the statements (a `get` that
    /// runs a `find` stays a `get`). In N+1 error mode, a statement shape crossing the
    /// threshold fails the operation with [`Error::NPlusOne`].
    pub(super) fn observed<T>(
        &mut self,
        meta: Option<&EntityMeta>,
        op: &'static str,
        caller: &'static Location<'static>,
        f: impl FnOnce(&mut Session) -> Result<T>,
    ) -> Result<T> {
        let context = Context {
            entity: meta.map_or("", |m| m.name),
            op,
            caller,
            // Only read with `log_bind_values` on (the probe's setting is the database's).
            binds: self.db.config.observe.log_bind_values
                && meta.is_some_and(|m| self.binds_loggable(m)),
        };
        let outer = match Probe::of(&mut self.conn) {
            Some(probe) => {
                let outer = probe.enter(Some(context));
                if let Some(outer) = outer {
                    // The outer operation names the statements; an inner one on an entity
                    // whose values must not be logged hides the bind values of all of them.
                    probe.enter(Some(Context {
                        binds: outer.binds && context.binds,
                        ..outer
                    }));
                }
                outer
            }
            None => return f(self),
        };
        let result = f(self);
        if outer.is_some() {
            if let Some(probe) = Probe::of(&mut self.conn) {
                probe.enter(outer);
            }
            return result;
        }
        let (finding, slow) = match Probe::of(&mut self.conn) {
            Some(probe) => {
                probe.enter(None);
                (probe.take_finding(), probe.take_slow())
            }
            None => (None, None),
        };
        if let Some(slow) = slow {
            self.log_plan(&slow);
        }
        match finding {
            Some(found) if result.is_ok() => Err(Error::NPlusOne {
                entity: found.entity,
                call_site: found.call_site,
                count: found.count,
                sql: found.sql,
            }),
            _ => result,
        }
    }

    /// [`Session::run`] for a call that runs one statement, whose result's row count
    /// (returned or affected) is recorded on that statement's span.
    pub(super) fn run_rows<T: crate::observe::Rows>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> diesel::QueryResult<T>,
    ) -> Result<T> {
        self.run_counted(f, crate::observe::Rows::rows)
    }

    /// [`Session::run`] for a call that runs one statement, recording `count(&result)` as
    /// that statement's `rows`. A call that ran another number of statements records
    /// nothing: the count would not be one statement's.
    pub(super) fn run_counted<T>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> diesel::QueryResult<T>,
        count: impl FnOnce(&T) -> u64,
    ) -> Result<T> {
        let before = Probe::of(&mut self.conn).map(|p| {
            p.hold(true);
            p.statements()
        });
        let result = self.run(f);
        if let Some(probe) = Probe::of(&mut self.conn) {
            if let (Ok(value), Some(before)) = (&result, before) {
                if probe.statements() == before + 1 {
                    probe.rows(count(value));
                }
            }
            probe.hold(false);
        }
        result
    }

    /// Whether statements on `meta`'s entity may show their bind values (when opted in): the
    /// entity has no encrypted column and no column the access policy masks for anyone.
    fn binds_loggable(&self, meta: &EntityMeta) -> bool {
        !meta.has_encrypted()
            && self
                .access
                .as_deref()
                .is_none_or(|ac| ac.masked_columns(meta, None).is_empty())
    }

    /// Forgets the statement shapes counted for N+1 detection (a transaction or session
    /// ended). With detection off the probe counts none (its settings are the database's).
    pub(super) fn reset_shapes(&mut self) {
        if self.db.config.observe.n_plus_one == crate::observe::NPlusOneMode::Off {
            return;
        }
        if let Some(probe) = Probe::of(&mut self.conn) {
            probe.reset_shapes();
        }
    }

    /// Captures the plan of a slow statement on this connection and logs it (a `warn` event
    /// on target `custodian::slow`); a plan that cannot be captured is logged as such.
    fn log_plan(&mut self, slow: &crate::observe::SlowStatement) {
        let backend = self.db.backend;
        // The plan's own statement is not itself counted as slow or as an N+1 shape.
        let outer = Probe::of(&mut self.conn).and_then(|p| {
            p.explaining(true);
            p.enter(None)
        });
        let plan = match &slow.binds {
            Some(binds) => backend.explain_statement(&mut self.conn, &slow.sql, binds),
            None => Ok(None),
        };
        if let Some(p) = Probe::of(&mut self.conn) {
            p.enter(outer);
            p.explaining(false);
        }
        match plan {
            Ok(Some(plan)) => {
                tracing::warn!(
                    target: "custodian::slow",
                    entity = slow.entity,
                    sql = slow.sql.as_str(),
                    duration_ms = slow.elapsed.as_secs_f64() * 1000.0,
                    plan = plan.as_str(),
                    "slow statement plan"
                );
                // Filtered full scans in the plan feed the schema advice.
                let scans = backend.filtered_scans(&plan, &slow.sql);
                self.db.slow_scans.record(scans, &slow.sql);
            }
            Err(e) => tracing::warn!(
                target: "custodian::slow",
                entity = slow.entity,
                sql = slow.sql.as_str(),
                error = %e,
                "slow statement plan could not be captured"
            ),
            Ok(None) => tracing::warn!(
                target: "custodian::slow",
                entity = slow.entity,
                sql = slow.sql.as_str(),
                error = "a bind value is of a kind the plan capture cannot rebind",
                "slow statement plan could not be captured"
            ),
        }
    }

    /// The plan the database chooses for `query`, in the backend's own format (PostgreSQL
    /// `EXPLAIN (FORMAT JSON)`, MariaDB `EXPLAIN FORMAT=JSON`, SQLite `EXPLAIN QUERY PLAN`,
    /// one line per plan step). The query is planned with its bind values, not run.
    pub fn explain<Q>(&mut self, query: Q) -> Result<String>
    where
        Q: diesel::query_builder::QueryFragment<crate::conn::MultiBackend>,
    {
        let prefix = self.db.backend.explain_prefix();
        self.run(|c| crate::observe::plan(c, prefix, &query))
    }
}
