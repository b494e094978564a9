//! An application's own diesel instrumentation keeps working under custodian: custodian puts
//! its probe (timings, spans, metrics) on every connection it opens, which replaces the
//! connection's instrumentation, so the probe forwards every event to the default
//! instrumentation the application set with `diesel::connection::set_default_instrumentation`.
//! Users count statements, log or trace that way; without the forwarding they would see none
//! of custodian's statements.

use crate::common::TestDb;
use custodian::diesel::connection::{set_default_instrumentation, InstrumentationEvent};
use custodian::prelude::*;
use std::cell::RefCell;
use std::sync::Once;

/// A row read and written through custodian.
#[entity(table = "ic_notes", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    #[column(primary_key)]
    pub id: i64,
    pub body: String,
}

thread_local! {
    /// The SQL the application's instrumentation saw on this thread while `Some`.
    static SEEN: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Installs, once per process, a default instrumentation that records the statements run on
/// a thread that asked for it (other tests' threads are not recorded).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        set_default_instrumentation(|| {
            Some(Box::new(|event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event {
                    SEEN.with(|seen| {
                        if let Some(seen) = seen.borrow_mut().as_mut() {
                            seen.push(query.to_string());
                        }
                    });
                }
            }))
        })
        .expect("set the default instrumentation");
    });
}

/// The statements `f` ran on this thread, as the application's instrumentation saw them.
pub(crate) fn seen_during(f: impl FnOnce()) -> Vec<String> {
    SEEN.with(|seen| *seen.borrow_mut() = Some(Vec::new()));
    f();
    SEEN.with(|seen| seen.borrow_mut().take().unwrap_or_default())
}

fn the_applications_instrumentation_sees_custodians_statements(kind: custodian::BackendKind) {
    install();
    // Connections opened after the default was set carry it (through custodian's probe).
    let db = TestDb::new(kind);
    db.create_table::<Note>().unwrap();
    let seen = seen_during(|| {
        let mut s = db.session().unwrap();
        let mut note = s
            .insert(Note {
                id: 7,
                body: "first".into(),
            })
            .unwrap();
        note.body = "second".into();
        s.update(&mut note).unwrap();
        assert_eq!(s.get::<Note>(&7).unwrap().body, "second");
    });
    for verb in ["INSERT", "UPDATE", "SELECT"] {
        assert!(
            seen.iter()
                .any(|sql| sql.contains(verb) && sql.contains("ic_notes")),
            "{kind}: the application's instrumentation saw no {verb} on ic_notes: {seen:#?}"
        );
    }
}

#[test]
fn postgres() {
    the_applications_instrumentation_sees_custodians_statements(custodian::BackendKind::Postgres);
}

#[test]
fn mariadb() {
    the_applications_instrumentation_sees_custodians_statements(custodian::BackendKind::Mysql);
}

#[test]
fn sqlite() {
    the_applications_instrumentation_sees_custodians_statements(custodian::BackendKind::Sqlite);
}
