//! Access control on every backend: roles per action, tenant isolation on every read path
//! (property test with random principals), masked fields, and refused writes that write nothing
//! and are audited.

use crate::common::TestDb;
use custodian::access::ANYONE;
use custodian::audit::tables::custodian_audit as a;
use custodian::audit::AsOf;
use custodian::prelude::*;
use custodian::{AccessControl, Action, EntityRules, Error, Principal};

/// A tenant-owned document with personal data.
#[entity(table = "docs", has_many(Comment))]
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(index)]
    pub tenant: String,
    pub title: String,
    pub owner_email: Option<String>,
    pub secret_note: String,
}

/// A comment on a document, in the same tenant.
#[entity(table = "comments")]
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[belongs_to(Doc, on_delete = "cascade")]
    pub doc_id: i64,
    pub tenant: String,
    pub body: String,
}

fn policy() -> AccessControl {
    AccessControl::deny_by_default()
        .entity::<Doc>(
            EntityRules::new()
                .read(&["reader", "writer", "dpo"])
                .write(&["writer"])
                .tenant_column("tenant")
                .mask("owner_email")
                .mask("secret_note")
                .unmask_for("dpo"),
        )
        .entity::<Comment>(
            EntityRules::new()
                .read(&[ANYONE])
                .write(&["writer"])
                .tenant_column("tenant"),
        )
}

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

/// A small deterministic generator (no dependency needed for a property test).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn seed(db: &TestDb) -> Vec<Doc> {
    db.create_tables(&[Doc::META, Comment::META]).unwrap();
    let guarded = db.with_access(policy());
    let mut docs = Vec::new();
    for (t, tenant) in TENANTS.iter().enumerate() {
        let writer = guarded.acting_as(
            Principal::new(format!("w-{tenant}"))
                .with_role("writer")
                .in_tenant(*tenant),
        );
        let mut s = writer.session().unwrap();
        for i in 0..5 {
            let mut d = s
                .insert(Doc {
                    id: 0,
                    tenant: tenant.to_string(),
                    title: format!("{tenant} doc {i}"),
                    owner_email: Some(format!("owner{i}@{tenant}.example")),
                    secret_note: format!("secret of {tenant} {i}"),
                })
                .unwrap();
            s.insert(Comment {
                id: 0,
                doc_id: d.id,
                tenant: tenant.to_string(),
                body: format!("c{t}{i}"),
            })
            .unwrap();
            d.title.push_str(" (rev)");
            s.update(&mut d).unwrap();
            docs.push(d);
        }
    }
    docs
}

fn tenant_isolation_on_every_read_path(db: &TestDb) {
    let docs = seed(db);
    let all_ids: Vec<i64> = docs.iter().map(|d| d.id).collect();
    let guarded = db.with_access(policy());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked_rows = 0;
    for round in 0..40 {
        let tenant = *rng.pick(&[
            Some("acme"),
            Some("globex"),
            Some("initech"),
            Some("umbrella"),
            None,
        ]);
        let mut p = Principal::new(format!("p{round}"));
        for role in ["reader", "writer", "dpo"] {
            if rng.next() % 2 == 0 {
                p = p.with_role(role);
            }
        }
        if let Some(t) = tenant {
            p = p.in_tenant(t);
        }
        let may_read = ["reader", "writer", "dpo"].iter().any(|r| p.has_role(r));
        let dpo = p.has_role("dpo");
        let mut s = guarded.acting_as(p.clone()).session().unwrap();
        let check = |d: &Doc| {
            assert_eq!(
                Some(d.tenant.as_str()),
                tenant,
                "cross-tenant row for {p:?}: {d:?}"
            );
            if dpo {
                assert!(d.secret_note.starts_with("secret"), "dpo sees clear text");
            } else {
                assert_eq!(d.secret_note, "***", "masked for {p:?}");
                assert_eq!(d.owner_email, None, "masked for {p:?}");
            }
        };
        if !may_read {
            assert!(matches!(
                s.select::<Doc, _>(Doc::query()),
                Err(Error::Forbidden(_))
            ));
            assert!(matches!(
                s.get::<Doc>(&all_ids[0]),
                Err(Error::Forbidden(_))
            ));
            continue;
        }
        let mut seen: Vec<Doc> = Vec::new();
        seen.extend(s.select::<Doc, _>(Doc::query()).unwrap());
        seen.extend(
            s.select::<Doc, _>(Doc::query().filter(docs::title.like("%doc 1%")))
                .unwrap(),
        );
        seen.extend(s.get_many::<Doc>(&all_ids).unwrap());
        for id in &all_ids {
            seen.extend(s.find::<Doc>(id).unwrap());
            seen.extend(s.find_with_deleted::<Doc>(id).unwrap());
            seen.extend(
                s.history::<Doc>(id)
                    .unwrap()
                    .into_iter()
                    .filter_map(|v| v.value),
            );
            seen.extend(
                s.as_of::<Doc>(id, AsOf::Time(chrono::Utc::now().naive_utc()))
                    .unwrap(),
            );
        }
        seen.extend(
            s.as_of_all::<Doc>(AsOf::Time(chrono::Utc::now().naive_utc()))
                .unwrap(),
        );
        // Relationship loading, starting from rows of every tenant.
        let comments: Vec<Comment> = s
            .children::<Doc, Comment>(&docs)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        assert!(
            comments.iter().all(|c| Some(c.tenant.as_str()) == tenant),
            "children stay in the tenant"
        );
        seen.extend(
            s.parents::<Comment, Doc>(&comments)
                .unwrap()
                .into_iter()
                .flatten(),
        );
        for d in &seen {
            check(d);
        }
        match tenant {
            Some(_) => assert!(!seen.is_empty(), "a tenant member sees its own rows"),
            None => assert!(seen.is_empty(), "no tenant, no rows"),
        }
        checked_rows += seen.len();
    }
    assert!(
        checked_rows > 100,
        "the property test looked at rows: {checked_rows}"
    );
}

fn refused_writes_write_nothing_and_are_audited(db: &TestDb) {
    let docs = seed(db);
    let guarded = db.with_access(policy());
    let acme_doc = docs.iter().find(|d| d.tenant == "acme").unwrap().clone();
    let denied_before = db
        .session()
        .unwrap()
        .count(a::table.filter(a::op.eq("denied")).count())
        .unwrap();

    // A writer of another tenant can neither change nor delete acme's document.
    let globex = guarded.acting_as(
        Principal::new("mallory")
            .with_role("writer")
            .in_tenant("globex"),
    );
    let mut s = globex.session().unwrap();
    let mut hijack = acme_doc.clone();
    hijack.title = "hijacked".into();
    assert!(matches!(s.update(&mut hijack), Err(Error::Forbidden(_))));
    assert!(matches!(s.delete(&acme_doc), Err(Error::Forbidden(_))));
    let mut planted = acme_doc.clone();
    planted.id = 0;
    assert!(
        matches!(s.insert(planted), Err(Error::Forbidden(_))),
        "cannot write into another tenant"
    );
    // Inside a transaction that rolls back, the refusal is still on record.
    let _ = s.transaction(|tx| tx.delete(&acme_doc));
    // A reader cannot write at all.
    let reader = guarded.acting_as(Principal::new("rita").with_role("reader").in_tenant("acme"));
    let mut r = reader.session().unwrap();
    let mut mine = r.get::<Doc>(&acme_doc.id).unwrap();
    mine.title = "edit".into();
    assert!(matches!(r.update(&mut mine), Err(Error::Forbidden(_))));

    let mut admin = db.session().unwrap();
    let stored = admin.get::<Doc>(&acme_doc.id).unwrap();
    assert_eq!(stored.title, acme_doc.title, "nothing written");
    assert_eq!(admin.count(docs::table.count()).unwrap(), docs.len() as i64);
    let denied: Vec<(String, Option<String>)> = admin
        .load(
            a::table
                .filter(a::op.eq("denied"))
                .order(a::id)
                .select((a::actor, a::after_image)),
        )
        .unwrap();
    assert_eq!(denied.len() as i64 - denied_before, 5, "{denied:?}");
    assert!(denied
        .iter()
        .any(|(actor, why)| actor == "rita" && why.as_deref().unwrap_or("").contains("update")));
    assert!(
        denied
            .iter()
            .filter(|(actor, _)| actor == "mallory")
            .count()
            == 4
    );

    // The writer of acme may.
    let acme = guarded.acting_as(Principal::new("w").with_role("writer").in_tenant("acme"));
    let mut w = acme.session().unwrap();
    let mut masked = w.get::<Doc>(&acme_doc.id).unwrap();
    assert_eq!(masked.secret_note, "***", "writers see masked values too");
    masked.title = "approved".into();
    w.update(&mut masked).unwrap();
    let stored = admin.get::<Doc>(&acme_doc.id).unwrap();
    assert_eq!(stored.title, "approved");
    assert_eq!(
        stored.secret_note, acme_doc.secret_note,
        "masked columns are kept, not overwritten"
    );
    assert_eq!(stored.owner_email, acme_doc.owner_email);
    drop((s, r, w, admin));
    db.seal_audit().unwrap();
    assert!(db.verify_audit(None).unwrap().is_intact());
}

on_all_backends!(
    tenant_isolation_on_every_read_path,
    refused_writes_write_nothing_and_are_audited
);

#[test]
fn actions_have_names() {
    assert_eq!(Action::Delete.as_str(), "delete");
}

/// Erasing a data subject is governed too: only the roles named by `erase_for` may.
fn erasure_needs_an_eraser_role(db: &TestDb) {
    let db = TestDb::with(db.kind, |c| {
        c.crypto.keys.insert("k1".into(), "22".repeat(32));
    });
    db.create_table::<Doc>().unwrap();
    let open = AccessControl::deny_by_default()
        .entity::<Doc>(EntityRules::new().read(&[ANYONE]).write(&[ANYONE]));
    let crypto = db.crypto().unwrap();
    let mut s = db.session().unwrap();
    crypto
        .seal(&mut s, "cust-1", &"secret".to_string())
        .unwrap();
    drop(s);
    let clerk = db
        .with_access(open.clone())
        .acting_as(Principal::new("clerk").with_role("dpo"));
    let err = crypto
        .erase_subject(&mut clerk.session().unwrap(), "cust-1")
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    // The refusal is in the trail, naming the subject; the key is still there.
    let denied: Vec<(String, String, String, Option<String>)> = db
        .session()
        .unwrap()
        .load(a::table.filter(a::op.eq("denied")).select((
            a::actor,
            a::entity,
            a::entity_key,
            a::after_image,
        )))
        .unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    let (actor, entity, key, why) = &denied[0];
    assert_eq!(
        (actor.as_str(), entity.as_str(), key.as_str()),
        ("clerk", "custodian_subject_keys", r#"["cust-1"]"#)
    );
    assert!(why.as_deref().unwrap_or("").contains("erase"), "{why:?}");
    let dpo = db
        .with_access(open.erase_for(&["dpo"]))
        .acting_as(Principal::new("dora").with_role("dpo"));
    assert!(crypto
        .erase_subject(&mut dpo.session().unwrap(), "cust-1")
        .unwrap());
}

on_all_backends!(erasure_needs_an_eraser_role);
