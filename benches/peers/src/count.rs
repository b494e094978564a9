//! Statement counting and timing through diesel's instrumentation: installed as the default of
//! every connection opened afterwards (custodian's included: custodian's own probe forwards
//! every event to the application's default instrumentation), counting only while armed, so
//! the timed runs pay one relaxed atomic load per statement on every diesel-based side alike.
//!
//! While armed, each statement is also timed from diesel's start event to its finish event
//! (the client's view: rendering, the round trip, the server's work, reading the result) and
//! filed under its shape: the SQL up to its first bind value, whitespace collapsed, cut at 72
//! characters. That gives the time per statement kind behind each side's rate.

use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ARMED: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
/// Shape -> (statements, total nanoseconds), while armed.
static SHAPES: Mutex<BTreeMap<String, (u64, u128)>> = Mutex::new(BTreeMap::new());

/// The shape of a statement's rendering: its SQL before the bind values, collapsed and cut.
fn shape(rendered: &str) -> String {
    let sql = rendered.split(" -- binds:").next().unwrap_or(rendered);
    let collapsed: Vec<&str> = sql.split_whitespace().collect();
    let mut s = collapsed.join(" ");
    if s.len() > 72 {
        let mut cut = 72;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn counter() -> Option<Box<dyn Instrumentation>> {
    let mut started: Option<Instant> = None;
    Some(Box::new(
        move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { .. } => {
                if ARMED.load(Ordering::Relaxed) {
                    STATEMENTS.fetch_add(1, Ordering::Relaxed);
                    started = Some(Instant::now());
                }
            }
            InstrumentationEvent::FinishQuery { query, .. } => {
                if let Some(at) = started.take() {
                    let nanos = at.elapsed().as_nanos();
                    let key = shape(&query.to_string());
                    let mut shapes = SHAPES.lock().unwrap_or_else(|e| e.into_inner());
                    let slot = shapes.entry(key).or_default();
                    slot.0 += 1;
                    slot.1 += nanos;
                }
            }
            _ => {}
        },
    ))
}

pub fn install() -> crate::Res<()> {
    Ok(set_default_instrumentation(counter)?)
}

pub fn arm(on: bool) {
    if on {
        SHAPES.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
    ARMED.store(on, Ordering::SeqCst);
}

pub fn total() -> u64 {
    STATEMENTS.load(Ordering::SeqCst)
}

/// The shapes timed since the last `arm(true)`: (shape, statements, mean microseconds).
pub fn shapes() -> Vec<(String, u64, f64)> {
    SHAPES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, (n, ns))| (k.clone(), *n, *ns as f64 / *n as f64 / 1_000.0))
        .collect()
}
