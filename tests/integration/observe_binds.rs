//! Bind values in statement spans: none by default; with `observe.log_bind_values` on, the
//! values of statements on entities without encrypted or masked columns, and never an
//! encrypted field's plaintext or a masked value, on every backend.

use crate::access_guard::{policy, writer, Invoice, Vendor};
use crate::common::TestDb;
use crate::entities::Counter;
use crate::observe_capture::capturing;
use custodian::prelude::*;

const MASKED_IBAN: &str = "DE00MASKEDIBAN4455667788";
const ENCRYPTED_NAME: &str = "Grace Encryptedname Hopper";
const ENCRYPTED_EMAIL: &str = "encrypted.grace@hidden.example";
const PLAIN: &str = "PlainVisibleCounter42";

/// Writes a vendor whose IBAN the policy masks, a client with encrypted fields and a plain
/// counter with `log_bind_values` off and on, and greps every captured span and event.
fn bind_values_only_opted_in_and_never_secret(base: &TestDb) {
    for opt_in in [false, true] {
        let db = TestDb::with(base.kind, |c| {
            crate::crypto::with_keys(c, &[("k1", crate::crypto::K1)], "k1");
            c.observe.log_bind_values = opt_in;
            // Audit records written into the text of the COMMIT batch (PostgreSQL) must not
            // show either.
            c.audit.records_with_commit = opt_in;
        });
        db.create_tables(&[
            Vendor::META,
            Invoice::META,
            crate::encrypted::Client::META,
            Counter::META,
        ])
        .unwrap();
        let guarded = db.with_access(policy(&["iban"], None));
        let ((), capture) = capturing(|| {
            let mut w = guarded.acting_as(writer("acme")).session().unwrap();
            let vendor = w
                .insert(Vendor {
                    id: 0,
                    tenant: "acme".into(),
                    name: "Vendor with a masked IBAN".into(),
                    iban: MASKED_IBAN.into(),
                    contact_email: None,
                })
                .unwrap();
            w.get::<Vendor>(&vendor.id).unwrap();
            let mut s = db.session().unwrap();
            s.insert(crate::encrypted::Client {
                id: 0,
                client_ref: "subject-1".into(),
                full_name: ENCRYPTED_NAME.into(),
                email: Some(ENCRYPTED_EMAIL.into()),
                email_index: None,
                segment: "retail".into(),
            })
            .unwrap();
            s.insert(Counter {
                name: PLAIN.into(),
                value: 1,
            })
            .unwrap();
        });
        capture.assert_no_secret(
            &[
                MASKED_IBAN,
                "MASKEDIBAN",
                ENCRYPTED_NAME,
                ENCRYPTED_EMAIL,
                "Encryptedname",
            ],
            &format!("opt-in {opt_in}"),
        );
        let items = capture.items();
        let shown: Vec<_> = items
            .iter()
            .filter(|i| format!("{:?}", i.fields).contains(PLAIN))
            .collect();
        if opt_in {
            assert!(
                shown.iter().any(|i| i.fields["entity"] == "Counter"
                    && i.fields.get("binds").is_some_and(|b| b.contains(PLAIN))),
                "the plain counter's bind values are shown: {items:#?}"
            );
        } else {
            assert!(shown.is_empty(), "no bind value by default: {shown:#?}");
            assert!(
                items.iter().all(|i| !i.fields.contains_key("binds")),
                "no binds field by default"
            );
        }
    }
}

on_all_backends!(bind_values_only_opted_in_and_never_secret);
