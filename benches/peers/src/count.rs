//! Statement counting through diesel's instrumentation: installed as the default of every
//! connection opened afterwards (custodian's included: it opens diesel connections), counting
//! only while armed, so the timed runs pay one relaxed atomic load per statement on every
//! diesel-based side alike.

use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ARMED: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

fn counter() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(|event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { .. } = event {
            if ARMED.load(Ordering::Relaxed) {
                STATEMENTS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }))
}

pub fn install() -> crate::Res<()> {
    Ok(set_default_instrumentation(counter)?)
}

pub fn arm(on: bool) {
    ARMED.store(on, Ordering::SeqCst);
}

pub fn total() -> u64 {
    STATEMENTS.load(Ordering::SeqCst)
}
