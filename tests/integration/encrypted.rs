//! `#[column(encrypted)]` on every backend: the write path seals the fields under the row's
//! subject, every entity read path opens them, unchanged values keep their ciphertext, blind
//! indexes find rows, an erased subject reads as `ERASED`, masks still apply, and no plaintext
//! is stored anywhere (table, audit trail, key table).

use crate::common::TestDb;
use crate::crypto::{crypto_db, dump_all, reopen};
use custodian::audit::tables::custodian_audit as a;
use custodian::crypto::ERASED;
use custodian::prelude::*;
use custodian::{AccessControl, EntityRules, Error, Principal};

/// A client of a bank: name and e-mail are personal data, sealed under the client's subject
/// key; the e-mail has a blind index for lookups.
#[entity(table = "clients", subject = "client_ref")]
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(index)]
    pub client_ref: String,
    #[column(encrypted)]
    pub full_name: String,
    #[column(encrypted)]
    pub email: Option<String>,
    #[column(blind_index = "email")]
    pub email_index: Option<String>,
    pub segment: String,
}

fn client(subject: &str, name: &str, email: Option<&str>) -> Client {
    Client {
        id: 0,
        client_ref: subject.into(),
        full_name: name.into(),
        email: email.map(str::to_string),
        email_index: None,
        segment: "retail".into(),
    }
}

/// The clients as stored (ciphertext): `Session::load` is the raw read.
fn stored(s: &mut Session, id: i64) -> Client {
    s.first(Client::query().filter(clients::id.eq(id)))
        .unwrap()
        .unwrap()
}

/// The audit images of the last record of this client.
fn last_images(s: &mut Session, id: i64) -> (Option<String>, Option<String>) {
    s.first(
        a::table
            .filter(a::entity.eq("clients"))
            .filter(a::entity_key.eq(format!("[{id}]")))
            .order(a::id.desc())
            .select((a::before_image, a::after_image)),
    )
    .unwrap()
    .unwrap()
}

fn encrypted_fields_are_sealed_and_opened(base: &TestDb) {
    // Without master keys an encrypted entity cannot be written: fail closed, nothing stored.
    base.create_table::<Client>().unwrap();
    let mut plain_s = base.session().unwrap();
    let err = plain_s.insert(client("cl-0", "Nobody", None)).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_eq!(plain_s.count(clients::table.count()).unwrap(), 0);

    let db = crypto_db(base.kind);
    db.create_table::<Client>().unwrap();
    let crypto = db.crypto().unwrap();
    let mut s = db.session().unwrap();

    // Insert: the caller gets its plaintext back (and the blind index); the row is sealed.
    let ada = s
        .insert(client("cl-1", "Ada Lovelace", Some("ada@example.org")))
        .unwrap();
    assert!(ada.id > 0);
    assert_eq!(ada.full_name, "Ada Lovelace");
    assert_eq!(ada.email.as_deref(), Some("ada@example.org"));
    assert_eq!(
        ada.email_index,
        Some(crypto.blind_index("email", "ada@example.org"))
    );
    let raw = stored(&mut s, ada.id);
    assert!(raw.full_name.starts_with("v1:"), "{raw:?}");
    assert!(raw.email.as_deref().unwrap().starts_with("v1:"), "{raw:?}");
    assert_eq!(raw.email_index, ada.email_index);
    assert_eq!(s.get::<Client>(&ada.id).unwrap(), ada);

    // Bulk insert and bulk read.
    let mut more = vec![
        client("cl-2", "Bob Babbage", Some("bob@example.org")),
        client("cl-3", "Cy Clerk", None),
        client("cl-2", "Bob's Alias", Some("alias@example.org")),
    ];
    assert_eq!(s.insert_many(&mut more).unwrap(), 3);
    assert_eq!(more[0].full_name, "Bob Babbage");
    assert_eq!(more[1].email, None);
    assert_eq!(more[1].email_index, None);
    let all = s
        .select::<Client, _>(Client::query().order(clients::id))
        .unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.full_name.as_str()).collect();
    assert_eq!(
        names,
        ["Ada Lovelace", "Bob Babbage", "Cy Clerk", "Bob's Alias"]
    );
    assert_eq!(
        stored(&mut s, more[0].id).full_name.split(':').nth(1),
        stored(&mut s, more[2].id).full_name.split(':').nth(1),
        "one data key per subject"
    );

    // Equality lookup through the blind index.
    let found = s
        .select::<Client, _>(
            Client::query()
                .filter(clients::email_index.eq(crypto.blind_index("email", "bob@example.org"))),
        )
        .unwrap();
    assert_eq!(found, vec![more[0].clone()]);

    // An update of another field keeps the ciphertext of the unchanged ones.
    let before = stored(&mut s, ada.id);
    let mut ada = ada;
    ada.segment = "private".into();
    s.update(&mut ada).unwrap();
    assert_eq!(ada.full_name, "Ada Lovelace", "the caller keeps plaintext");
    let after = stored(&mut s, ada.id);
    assert_eq!(after.full_name, before.full_name);
    assert_eq!(after.email, before.email);
    assert_eq!(after.segment, "private");
    let (b, a_img) = last_images(&mut s, ada.id);
    let (b, a_img) = (b.unwrap(), a_img.unwrap());
    assert!(b.contains(&before.full_name) && a_img.contains(&before.full_name));

    // A changed value is sealed again, its blind index follows.
    ada.email = Some("ada@lovelace.example".into());
    s.update(&mut ada).unwrap();
    let after2 = stored(&mut s, ada.id);
    assert_eq!(after2.full_name, before.full_name);
    assert_ne!(after2.email, before.email);
    assert_eq!(
        after2.email_index,
        Some(crypto.blind_index("email", "ada@lovelace.example"))
    );
    ada.email = None;
    s.update(&mut ada).unwrap();
    let after3 = stored(&mut s, ada.id);
    assert_eq!((after3.email, after3.email_index), (None, None));

    // History opens the audit images.
    let versions = s.history::<Client>(&ada.id).unwrap();
    let emails: Vec<Option<String>> = versions
        .iter()
        .map(|v| v.value.as_ref().unwrap().email.clone())
        .collect();
    assert_eq!(
        emails,
        [
            Some("ada@example.org".to_string()),
            Some("ada@example.org".to_string()),
            Some("ada@lovelace.example".to_string()),
            None
        ]
    );

    // An empty subject cannot seal: a validation error on the subject field, nothing written.
    let err = s.insert(client("", "Anon", None)).unwrap_err();
    match err {
        Error::Validation(v) => assert!(v.fields.contains_key("client_ref"), "{v:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.count(clients::table.count()).unwrap(), 4);

    // No plaintext anywhere; the chain verifies.
    let dump = dump_all(&db);
    assert!(dump.contains(&before.full_name), "the dump sees the data");
    for plain in [
        "Ada Lovelace",
        "ada@",
        "Bob Babbage",
        "bob@",
        "Cy Clerk",
        "lovelace.",
    ] {
        assert!(!dump.contains(plain), "{plain} is stored in plaintext");
    }
    db.seal_audit().unwrap();
    assert!(db.verify_audit(None).unwrap().is_intact());
}

fn erased_subjects_read_as_erased(base: &TestDb) {
    let db = crypto_db(base.kind);
    db.create_table::<Client>().unwrap();
    let crypto = db.crypto().unwrap();
    let mut s = db.session().unwrap();
    let mut ada = s
        .insert(client("cl-1", "Ada Lovelace", Some("ada@example.org")))
        .unwrap();
    let bob = s
        .insert(client("cl-2", "Bob Babbage", Some("bob@example.org")))
        .unwrap();
    let sealed_name = stored(&mut s, ada.id).full_name;

    assert!(crypto.erase_subject(&mut s, "cl-1").unwrap());
    // A handle with an empty cache, as another process would be.
    let other = reopen(&db, |_| {});
    let mut s2 = other.session().unwrap();
    for session in [&mut s, &mut s2] {
        let erased = session.get::<Client>(&ada.id).unwrap();
        assert_eq!(erased.full_name, ERASED);
        assert_eq!(erased.email.as_deref(), Some(ERASED));
        assert_eq!(session.get::<Client>(&bob.id).unwrap(), bob);
        let history = session.history::<Client>(&ada.id).unwrap();
        assert_eq!(history[0].value.as_ref().unwrap().full_name, ERASED);
    }

    // Writing an erased row back keeps its ciphertext and creates no new key for the subject.
    ada = s.get::<Client>(&ada.id).unwrap();
    ada.segment = "closed".into();
    s.update(&mut ada).unwrap();
    assert_eq!(stored(&mut s, ada.id).full_name, sealed_name);
    let keys: i64 = s
        .count(
            custodian::crypto::store::custodian_subject_keys::table
                .filter(custodian::crypto::store::custodian_subject_keys::subject.eq("cl-1"))
                .count(),
        )
        .unwrap();
    assert_eq!(keys, 0);

    let dump = dump_all(&db);
    assert!(!dump.contains("Ada Lovelace") && !dump.contains("ada@"));
    db.seal_audit().unwrap();
    assert!(db.verify_audit(None).unwrap().is_intact());

    // Ciphertext moved from Bob's row into another subject's row does not open there.
    let carol = s
        .insert(client("cl-3", "Carol", Some("carol@example.org")))
        .unwrap();
    db.raw_sql(&format!(
        "UPDATE clients SET full_name = '{}' WHERE id = {}",
        stored(&mut s, bob.id).full_name,
        carol.id
    ));
    let err = s.get::<Client>(&carol.id).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Integrity {
                kind: custodian::IntegrityKind::Ciphertext,
                ..
            }
        ),
        "{err:?}"
    );
    // Plaintext written around custodian into an encrypted column is refused on read.
    db.raw_sql(&format!(
        "UPDATE clients SET full_name = 'Carol Plain' WHERE id = {}",
        carol.id
    ));
    let err = s.get::<Client>(&carol.id).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Integrity {
                kind: custodian::IntegrityKind::Ciphertext,
                ..
            }
        ),
        "{err:?}"
    );
}

fn masks_apply_to_opened_fields(base: &TestDb) {
    let db = crypto_db(base.kind);
    db.create_table::<Client>().unwrap();
    let mut s = db.session().unwrap();
    let ada = s
        .insert(client("cl-1", "Ada Lovelace", Some("ada@example.org")))
        .unwrap();
    let sealed_email = stored(&mut s, ada.id).email;
    let rules = AccessControl::deny_by_default().entity::<Client>(
        EntityRules::new()
            .read(&["clerk", "dpo"])
            .write(&["clerk", "dpo"])
            .mask("email")
            .unmask_for("dpo"),
    );
    let clerk = db
        .with_access(rules.clone())
        .acting_as(Principal::new("clerk").with_role("clerk"));
    let mut cs = clerk.session().unwrap();
    let mut seen = cs.get::<Client>(&ada.id).unwrap();
    assert_eq!(seen.full_name, "Ada Lovelace");
    assert_eq!(seen.email, None, "masked");
    // The clerk's update keeps the masked column as stored.
    seen.segment = "private".into();
    cs.update(&mut seen).unwrap();
    assert_eq!(stored(&mut s, ada.id).email, sealed_email);
    let dpo = db
        .with_access(rules)
        .acting_as(Principal::new("dora").with_role("dpo"));
    let clear = dpo.session().unwrap().get::<Client>(&ada.id).unwrap();
    assert_eq!(clear.email.as_deref(), Some("ada@example.org"));
    assert_eq!(clear.segment, "private");
}

on_all_backends!(
    encrypted_fields_are_sealed_and_opened,
    erased_subjects_read_as_erased,
    masks_apply_to_opened_fields,
);
