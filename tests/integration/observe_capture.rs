//! Test doubles for observability: a `metrics` recorder that keeps exact counts and a
//! `tracing` subscriber that keeps every span and event with all their fields as text
//! ([`capturing`] runs a closure under one), and the one-column row of the raw statements the
//! observe tests run.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters and gauges by `name{label=value,...}` (labels sorted), histograms by sample count.
#[derive(Default, Clone)]
pub struct Counts(Arc<Mutex<HashMap<String, Arc<Cell>>>>);

#[derive(Default)]
pub struct Cell(AtomicU64);

impl metrics::CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl metrics::GaugeFn for Cell {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, value: f64) {
        self.0.store(value as u64, Ordering::SeqCst);
    }
}

impl metrics::HistogramFn for Cell {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn key_text(key: &metrics::Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Counts {
    fn cell(&self, key: &metrics::Key) -> Arc<Cell> {
        self.0
            .lock()
            .unwrap()
            .entry(key_text(key))
            .or_default()
            .clone()
    }

    /// The value of `name{labels}` (labels as `k=v` sorted, comma-separated); 0 if never set.
    pub fn get(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |c| c.0.load(Ordering::SeqCst))
    }

    /// The sum over every label set of `name`.
    pub fn total(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")))
            .map(|(_, c)| c.0.load(Ordering::SeqCst))
            .sum()
    }

    /// Every key recorded, for failure messages.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.0.lock().unwrap().keys().cloned().collect();
        k.sort();
        k
    }
}

impl metrics::Recorder for Counts {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.cell(key))
    }
}

/// One span or event: its name (events: their message), target and fields as text.
#[derive(Debug, Clone)]
pub struct Captured {
    pub kind: &'static str,
    pub name: String,
    pub target: String,
    pub fields: BTreeMap<String, String>,
}

/// A subscriber that keeps every span (with fields recorded later) and event.
#[derive(Default, Clone)]
pub struct Capture {
    items: Arc<Mutex<Vec<Captured>>>,
}

struct Visit<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Visit<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// Runs `f` with a fresh [`Capture`] as this thread's subscriber: what `f` returned, and
/// every span and event it emitted.
pub fn capturing<R>(f: impl FnOnce() -> R) -> (R, Capture) {
    let capture = Capture::default();
    let out = tracing::subscriber::with_default(capture.clone(), f);
    (out, capture)
}

/// The row of a raw statement selecting one text column `v`.
#[derive(custodian::diesel::QueryableByName)]
#[diesel(check_for_backend(custodian::MultiBackend))]
pub struct Done {
    #[diesel(sql_type = custodian::diesel::sql_types::Text)]
    #[allow(dead_code)]
    pub v: String,
}

impl Capture {
    /// Everything captured so far.
    pub fn items(&self) -> Vec<Captured> {
        self.items.lock().unwrap().clone()
    }

    /// Spans named `name`.
    pub fn spans(&self, name: &str) -> Vec<Captured> {
        self.items()
            .into_iter()
            .filter(|c| c.kind == "span" && c.name == name)
            .collect()
    }

    /// Events on `target`.
    pub fn events(&self, target: &str) -> Vec<Captured> {
        self.items()
            .into_iter()
            .filter(|c| c.kind == "event" && c.target == target)
            .collect()
    }

    /// Events on `target` with the message `message`.
    pub fn events_named(&self, target: &str, message: &str) -> Vec<Captured> {
        self.events(target)
            .into_iter()
            .filter(|e| e.name == message)
            .collect()
    }

    /// Fails naming the first span or event whose name or a field holds one of `secrets`.
    pub fn assert_no_secret(&self, secrets: &[&str], context: &str) {
        let items = self.items();
        assert!(!items.is_empty(), "{context}: nothing was captured");
        for item in items {
            let text = format!("{} {:?}", item.name, item.fields);
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "{context}: `{secret}` leaked into {item:?}"
                );
            }
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = BTreeMap::new();
        span.record(&mut Visit(&mut fields));
        let mut items = self.items.lock().unwrap();
        items.push(Captured {
            kind: "span",
            name: span.metadata().name().to_string(),
            target: span.metadata().target().to_string(),
            fields,
        });
        tracing::span::Id::from_u64(items.len() as u64)
    }
    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut items = self.items.lock().unwrap();
        let item = &mut items[span.into_u64() as usize - 1];
        values.record(&mut Visit(&mut item.fields));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Visit(&mut fields));
        self.items.lock().unwrap().push(Captured {
            kind: "event",
            name: fields.get("message").cloned().unwrap_or_default(),
            target: event.metadata().target().to_string(),
            fields,
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
