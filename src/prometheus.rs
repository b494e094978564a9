//! The Prometheus exporter (feature `prometheus`): installs a recorder for the `metrics`
//! facade that keeps custodian's metrics (and the application's) for a scrape.
//!
//! ```no_run
//! let handle = custodian::prometheus::install()?;
//! // ... use the database ...
//! println!("{}", handle.render()); // serve this text at /metrics
//! # Ok::<(), custodian::Error>(())
//! ```

pub use metrics_exporter_prometheus::PrometheusHandle;

/// Installs a Prometheus recorder as the process's global `metrics` recorder and returns the
/// handle that renders scrapes. There is no HTTP listener: serve `handle.render()` from the
/// application's own server. [`Error::Config`](crate::Error::Config) when a global recorder
/// is already installed.
pub fn install() -> crate::Result<PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| crate::Error::config("metrics", format!("cannot install the recorder: {e}")))
}
