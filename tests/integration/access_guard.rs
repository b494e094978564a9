//! Access control without side doors, on every backend: history, as-of and drift under the
//! policy (tenant scope and masks, the raw audit images included), references to parent rows
//! the principal may not read, and refusals that stay on record when the caller's pool is
//! exhausted and its transaction rolls back.

use crate::common::TestDb;
use custodian::access::ANYONE;
use custodian::audit::tables::custodian_audit as a;
use custodian::audit::{AsOf, DriftKind};
use custodian::prelude::*;
use custodian::{AccessControl, EntityRules, Error, Principal};
use std::collections::{BTreeSet, HashMap};

/// A supplier of one tenant, with bank details and a contact that policies may mask.
#[entity(table = "vendors", has_many(Invoice))]
#[derive(Debug, Clone, PartialEq)]
pub struct Vendor {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(index)]
    pub tenant: String,
    pub name: String,
    pub iban: String,
    pub contact_email: Option<String>,
}

/// An invoice of a vendor, in the vendor's tenant.
#[entity(table = "invoices")]
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[belongs_to(Vendor)]
    pub vendor_id: i64,
    pub tenant: String,
    pub amount: i64,
    pub memo: Option<String>,
}

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const MASKABLE: [&str; 2] = ["iban", "contact_email"];

/// Vendors readable by readers and writers, written by writers, scoped by tenant, with
/// `masks` masked unless the principal has `unmask`; invoices readable by anyone in the tenant,
/// their memo always masked.
pub(crate) fn policy(masks: &[&str], unmask: Option<&str>) -> AccessControl {
    let mut vendors = EntityRules::new()
        .read(&["reader", "writer"])
        .write(&["writer"])
        .tenant_column("tenant");
    for column in masks {
        vendors = vendors.mask(column);
    }
    if let Some(role) = unmask {
        vendors = vendors.unmask_for(role);
    }
    AccessControl::deny_by_default()
        .entity::<Vendor>(vendors)
        .entity::<Invoice>(
            EntityRules::new()
                .read(&[ANYONE])
                .write(&["writer"])
                .tenant_column("tenant")
                .mask("memo"),
        )
}

pub(crate) fn writer(tenant: &str) -> Principal {
    Principal::new(format!("w-{tenant}"))
        .with_role("writer")
        .in_tenant(tenant)
}

/// A small deterministic generator (no dependency needed for a property test).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn coin(&mut self) -> bool {
        self.next() % 2 == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// What the seed wrote: every vendor and invoice id with its tenant, the live vendors.
pub(crate) struct Seeded {
    pub(crate) tenant_of_vendor: HashMap<i64, String>,
    pub(crate) tenant_of_invoice: HashMap<i64, String>,
    pub(crate) live: Vec<Vendor>,
}

/// Per tenant: four vendors written through custodian (each updated once; two with an
/// invoice, the fourth deleted again), then drift made behind custodian's back: the second
/// vendor renamed, the third deleted, one vendor inserted.
pub(crate) fn seed(db: &TestDb) -> Seeded {
    db.create_tables(&[Vendor::META, Invoice::META]).unwrap();
    let guarded = db.with_access(policy(&[], None));
    let mut tenant_of_vendor = HashMap::new();
    let mut tenant_of_invoice = HashMap::new();
    for tenant in TENANTS {
        let mut s = guarded.acting_as(writer(tenant)).session().unwrap();
        let mut ids = Vec::new();
        for i in 0..4 {
            let mut v = s
                .insert(Vendor {
                    id: 0,
                    tenant: tenant.into(),
                    name: format!("{tenant} vendor {i}"),
                    iban: format!("IBAN-{tenant}-{i}"),
                    contact_email: Some(format!("ap{i}@{tenant}.example")),
                })
                .unwrap();
            tenant_of_vendor.insert(v.id, tenant.to_string());
            ids.push(v.id);
            if i < 2 {
                let inv = s
                    .insert(Invoice {
                        id: 0,
                        vendor_id: v.id,
                        tenant: tenant.into(),
                        amount: 100 + i,
                        memo: Some(format!("memo of {tenant}")),
                    })
                    .unwrap();
                tenant_of_invoice.insert(inv.id, tenant.to_string());
            }
            v.name.push_str(" (rev)");
            s.update(&mut v).unwrap();
            if i == 3 {
                s.delete(&v).unwrap();
            }
        }
        drop(s);
        db.raw_sql(&format!(
            "UPDATE vendors SET name = 'renamed' WHERE id = {}",
            ids[1]
        ));
        db.raw_sql(&format!("DELETE FROM vendors WHERE id = {}", ids[2]));
        db.raw_sql(&format!(
            "INSERT INTO vendors (tenant, name, iban, contact_email) \
             VALUES ('{tenant}', 'rogue', 'IBAN-{tenant}-rogue', 'rogue@{tenant}.example')"
        ));
    }
    let live: Vec<Vendor> = db.session().unwrap().load(Vendor::query()).unwrap();
    for v in &live {
        tenant_of_vendor.insert(v.id, v.tenant.clone());
    }
    db.seal_audit().unwrap();
    Seeded {
        tenant_of_vendor,
        tenant_of_invoice,
        live,
    }
}

/// Checks one audit image (JSON text) seen by a principal of `tenant`: in the tenant, and the
/// `masked` columns masked (`***` or null). Returns how many masked values it looked at.
fn check_image(text: &str, tenant: &str, masked: &[&str], clear: &[&str]) -> usize {
    let image: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(image["tenant"], tenant, "cross-tenant audit image: {text}");
    for column in masked {
        let v = &image[*column];
        assert!(
            v.is_null() || *v == "***",
            "{column} in clear in an audit image: {text}"
        );
    }
    for column in clear {
        assert!(
            image[*column].as_str().is_some_and(|s| s != "***"),
            "{column} should be in clear: {text}"
        );
    }
    masked.len()
}

fn audit_reads_apply_the_policy(db: &TestDb) {
    let seeded = seed(db);
    let vendor_ids: Vec<i64> = seeded.tenant_of_vendor.keys().copied().collect();
    let invoice_ids: Vec<i64> = seeded.tenant_of_invoice.keys().copied().collect();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let (mut images, mut masked_values, mut deleted_versions, mut drifted) = (0, 0, 0, 0);
    for round in 0..24 {
        let tenant = *rng.pick(&[Some("acme"), Some("globex"), Some("initech"), None]);
        let mut p = Principal::new(format!("p{round}"));
        for role in ["reader", "writer", "dpo"] {
            if rng.coin() {
                p = p.with_role(role);
            }
        }
        if let Some(t) = tenant {
            p = p.in_tenant(t);
        }
        let masks: Vec<&str> = MASKABLE.iter().copied().filter(|_| rng.coin()).collect();
        let unmask = if rng.coin() { Some("dpo") } else { None };
        let unmasked = unmask.is_some_and(|r| p.has_role(r));
        let vendor_masked: Vec<&str> = if unmasked { Vec::new() } else { masks.clone() };
        let vendor_clear: Vec<&str> = MASKABLE
            .iter()
            .copied()
            .filter(|c| !vendor_masked.contains(c))
            .collect();
        let may_read = p.has_role("reader") || p.has_role("writer");
        let guarded = db.with_access(policy(&masks, unmask)).acting_as(p.clone());
        let mut s = guarded.session().unwrap();
        let now = AsOf::Time(chrono::Utc::now().naive_utc());
        let head = AsOf::Seq(i64::MAX);

        if !may_read {
            let id = vendor_ids[0];
            assert!(matches!(
                s.count_visible::<Vendor, _>(Vendor::query()),
                Err(Error::Forbidden(_))
            ));
            assert!(matches!(s.history::<Vendor>(&id), Err(Error::Forbidden(_))));
            assert!(matches!(
                s.as_of::<Vendor>(&id, now),
                Err(Error::Forbidden(_))
            ));
            assert!(matches!(
                s.audit_drift::<Vendor>(),
                Err(Error::Forbidden(_))
            ));
            continue;
        }
        let check_vendor = |v: &Vendor| {
            assert_eq!(Some(v.tenant.as_str()), tenant, "cross-tenant vendor {v:?}");
            if vendor_masked.contains(&"iban") {
                assert_eq!(v.iban, "***", "masked for {p:?}");
            } else {
                assert!(v.iban.starts_with("IBAN-"), "clear for {p:?}: {v:?}");
            }
            if vendor_masked.contains(&"contact_email") {
                assert_eq!(v.contact_email, None, "masked for {p:?}");
            }
        };
        let mut seen: Vec<Vendor> = Vec::new();
        seen.extend(s.select::<Vendor, _>(Vendor::query()).unwrap());
        seen.extend(s.get_many::<Vendor>(&vendor_ids).unwrap());
        seen.extend(s.as_of_all::<Vendor>(now).unwrap());
        seen.extend(s.as_of_all::<Vendor>(head).unwrap());
        for id in &vendor_ids {
            seen.extend(s.find::<Vendor>(id).unwrap());
            seen.extend(s.find_with_deleted::<Vendor>(id).unwrap());
            seen.extend(s.as_of::<Vendor>(id, now).unwrap());
            seen.extend(s.as_of::<Vendor>(id, head).unwrap());
            for version in s.history::<Vendor>(id).unwrap() {
                let r = &version.record;
                for text in [&r.before, &r.after].into_iter().flatten() {
                    let t = tenant.expect("no tenant, no versions");
                    masked_values += check_image(text, t, &vendor_masked, &vendor_clear);
                    images += 1;
                }
                if r.op == "delete" {
                    deleted_versions += 1;
                }
                seen.extend(version.value);
            }
        }
        for id in &invoice_ids {
            for version in s.history::<Invoice>(id).unwrap() {
                let r = &version.record;
                for text in [&r.before, &r.after].into_iter().flatten() {
                    let t = tenant.expect("no tenant, no versions");
                    masked_values += check_image(text, t, &["memo"], &[]);
                    images += 1;
                }
                let value = version.value.expect("invoices are not deleted");
                assert_eq!(value.memo, None, "memo masked");
                assert_eq!(Some(value.tenant.as_str()), tenant);
            }
            if let Some(value) = s.as_of::<Invoice>(id, now).unwrap() {
                assert_eq!(Some(value.tenant.as_str()), tenant);
                assert_eq!(value.memo, None, "memo masked");
            }
        }
        // Relationship loading, starting from every tenant's vendors.
        let invoices: Vec<Invoice> = s
            .children::<Vendor, Invoice>(&seeded.live)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        assert!(invoices
            .iter()
            .all(|i| Some(i.tenant.as_str()) == tenant && i.memo.is_none()));
        seen.extend(
            s.parents::<Invoice, Vendor>(&invoices)
                .unwrap()
                .into_iter()
                .flatten(),
        );
        for v in &seen {
            check_vendor(v);
        }
        // Report counts: the tenant's rows only, the filter's binds and the scope's together.
        let ours = seeded
            .live
            .iter()
            .filter(|v| Some(v.tenant.as_str()) == tenant)
            .count() as i64;
        assert_eq!(s.count_visible::<Vendor, _>(Vendor::query()).unwrap(), ours);
        let revised = Vendor::query().filter(vendors::name.like("%(rev)"));
        let expected = s.select::<Vendor, _>(revised).unwrap().len() as i64;
        assert_eq!(
            s.count_visible::<Vendor, _>(Vendor::query().filter(vendors::name.like("%(rev)")))
                .unwrap(),
            expected
        );
        assert_eq!(
            s.count_visible::<Invoice, _>(Invoice::query()).unwrap(),
            seeded
                .tenant_of_invoice
                .values()
                .filter(|t| Some(t.as_str()) == tenant)
                .count() as i64
        );
        // Drift: exactly the principal's tenant's three drifted rows.
        let drift = s.audit_drift::<Vendor>().unwrap();
        for row in &drift {
            let id: Vec<i64> = serde_json::from_str(&row.key).unwrap();
            assert_eq!(
                seeded.tenant_of_vendor.get(&id[0]).map(String::as_str),
                tenant,
                "drift of another tenant's row for {p:?}: {row:?}"
            );
        }
        let kinds: BTreeSet<DriftKind> = drift.iter().map(|d| d.kind).collect();
        match tenant {
            Some(_) => {
                assert!(!seen.is_empty(), "a tenant member sees its rows");
                assert_eq!(drift.len(), 3, "{drift:?}");
                assert_eq!(kinds.len(), 3, "changed, unrecorded, missing: {drift:?}");
            }
            None => {
                assert!(seen.is_empty(), "no tenant, no rows: {seen:?}");
                assert!(drift.is_empty(), "no tenant, no drift: {drift:?}");
            }
        }
        drifted += drift.len();
    }
    assert!(images > 100, "the property test looked at images: {images}");
    assert!(masked_values > 50, "and at masked values: {masked_values}");
    assert!(deleted_versions > 0, "and at deleted rows' versions");
    assert!(drifted > 0, "and at drift");
    let mut admin = db.session().unwrap();
    let all = admin.audit_drift::<Vendor>().unwrap();
    assert_eq!(all.len(), 9, "without a policy every drift shows: {all:?}");
    assert_eq!(
        admin.count_visible::<Vendor, _>(Vendor::query()).unwrap(),
        seeded.live.len() as i64,
        "without a policy every row counts"
    );
}

fn references_to_unreadable_parents_are_refused_alike(db: &TestDb) {
    let seeded = seed(db);
    let vendor_of = |t: &str| seeded.live.iter().find(|v| v.tenant == t).unwrap().clone();
    let (ours, theirs) = (vendor_of("acme"), vendor_of("globex"));
    let missing = seeded.tenant_of_vendor.keys().max().unwrap() + 1_000;
    let deleted = *seeded
        .tenant_of_vendor
        .iter()
        .find(|(id, t)| *t == "acme" && !seeded.live.iter().any(|v| v.id == **id))
        .unwrap()
        .0;
    let guarded = db.with_access(policy(&[], None));
    let mut s = guarded.acting_as(writer("acme")).session().unwrap();
    let invoice = |vendor_id: i64| Invoice {
        id: 0,
        vendor_id,
        tenant: "acme".into(),
        amount: 7,
        memo: None,
    };
    let denied_before = db
        .session()
        .unwrap()
        .count(a::table.filter(a::op.eq("denied")).count())
        .unwrap();

    let cross = s.insert(invoice(theirs.id)).unwrap_err();
    let absent = s.insert(invoice(missing)).unwrap_err();
    let gone = s.insert(invoice(deleted)).unwrap_err();
    assert!(matches!(cross, Error::Forbidden(_)), "{cross:?}");
    assert_eq!(
        cross.to_string(),
        absent.to_string(),
        "no hint of existence"
    );
    assert_eq!(cross.to_string(), gone.to_string());
    let mut mine = s.insert(invoice(ours.id)).unwrap();
    mine.vendor_id = theirs.id;
    let cross = s.update(&mut mine).unwrap_err();
    mine.vendor_id = missing;
    let absent = s.update(&mut mine).unwrap_err();
    assert!(matches!(cross, Error::Forbidden(_)), "{cross:?}");
    assert_eq!(cross.to_string(), absent.to_string());
    // A bulk write with one bad reference writes nothing; with good ones it goes through.
    let mut batch: Vec<Invoice> = (0..5).map(|_| invoice(ours.id)).collect();
    batch.push(invoice(theirs.id));
    assert!(matches!(
        s.insert_many(&mut batch),
        Err(Error::Forbidden(_))
    ));
    let mut batch: Vec<Invoice> = (0..5).map(|_| invoice(ours.id)).collect();
    assert_eq!(s.insert_many(&mut batch).unwrap(), 5);
    // A parent inserted earlier in the same transaction is readable.
    s.transaction(|tx| {
        let v = tx.insert(Vendor {
            id: 0,
            tenant: "acme".into(),
            name: "new".into(),
            iban: "IBAN-acme-new".into(),
            contact_email: None,
        })?;
        tx.insert(invoice(v.id))
    })
    .unwrap();
    // Without the right to read vendors at all, no reference to one.
    let clerks = db.with_access(
        AccessControl::deny_by_default()
            .entity::<Vendor>(EntityRules::new().read(&["reader"]).tenant_column("tenant"))
            .entity::<Invoice>(EntityRules::new().read(&[ANYONE]).write(&[ANYONE])),
    );
    let mut clerk = clerks
        .acting_as(Principal::new("clerk").in_tenant("acme"))
        .session()
        .unwrap();
    assert!(matches!(
        clerk.insert(invoice(ours.id)),
        Err(Error::Forbidden(_))
    ));

    let mut admin = db.session().unwrap();
    let stored: Vec<Invoice> = admin
        .load(Invoice::query().filter(invoices::tenant.eq("acme")))
        .unwrap();
    assert!(
        !stored.iter().any(|i| i.vendor_id == missing
            || seeded
                .tenant_of_vendor
                .get(&i.vendor_id)
                .is_some_and(|t| t != "acme")),
        "nothing written: {stored:?}"
    );
    assert_eq!(admin.get::<Invoice>(&mine.id).unwrap().vendor_id, ours.id);
    let denied = admin
        .count(a::table.filter(a::op.eq("denied")).count())
        .unwrap();
    assert_eq!(denied - denied_before, 7, "every refusal is on record");
}

on_all_backends!(
    audit_reads_apply_the_policy,
    references_to_unreadable_parents_are_refused_alike
);
