//! Set-based writes (`Session::update_where`, `Session::delete_where`) on every backend,
//! attacking their guarantees: concurrent `balance = balance + d` transfers at the default
//! isolation lose nothing and need no retry; every changed row gets exactly one audit record
//! with its true before and after images; a tenant-scoped principal neither changes nor counts
//! another tenant's rows; a validator or a database check failing on one row rolls back every
//! row and records nothing; soft delete and version columns behave.

use crate::common::TestDb;
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;
use custodian::{AccessControl, ConstraintKind, EntityRules, Error, Principal, TxOptions};
use std::collections::HashMap;

/// An account: the validator caps the balance, the database refuses one below -1000.
#[derive(Debug, Clone, PartialEq, validator::Validate)]
#[entity(table = "su_accounts")]
pub struct Account {
    #[column(primary_key)]
    pub id: i64,
    #[column(index)]
    pub tenant: String,
    #[column(range(min = -1000))]
    #[validate(range(max = 1_000_000))]
    pub balance: i64,
    pub note: String,
    #[column(version)]
    pub version: i64,
    #[column(updated_at)]
    pub updated_at: chrono::NaiveDateTime,
}

/// A soft-deletable, versioned ticket.
#[entity(table = "su_tickets")]
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    #[column(primary_key)]
    pub id: i64,
    pub state: String,
    #[column(version)]
    pub version: i32,
    #[column(updated_at)]
    pub updated_at: chrono::NaiveDateTime,
    #[column(deleted_at)]
    pub deleted_at: Option<chrono::NaiveDateTime>,
}

fn account(id: i64, tenant: &str, balance: i64) -> Account {
    Account {
        id,
        tenant: tenant.into(),
        balance,
        note: String::new(),
        version: 0,
        updated_at: chrono::NaiveDateTime::default(),
    }
}

/// (id, balance, version) of every account, read with plain SQL (no policy, no entity).
fn raw_accounts(s: &mut Session) -> Vec<(i64, i64, i64)> {
    s.load(su_accounts::table.order(su_accounts::id).select((
        su_accounts::id,
        su_accounts::balance,
        su_accounts::version,
    )))
    .unwrap()
}

/// (entity, key, op, before, after) of every record, in id order.
type Record = (String, String, String, Option<String>, Option<String>);

fn trail(s: &mut Session) -> Vec<Record> {
    s.load(a::table.order(a::id).select((
        a::entity,
        a::entity_key,
        a::op,
        a::before_image,
        a::after_image,
    )))
    .unwrap()
}

fn json(image: &Option<String>) -> serde_json::Value {
    serde_json::from_str(image.as_deref().expect("an image")).unwrap()
}

/// The update records of accounts, by account id.
fn account_updates(s: &mut Session) -> HashMap<i64, Vec<(serde_json::Value, serde_json::Value)>> {
    let mut out: HashMap<i64, Vec<_>> = HashMap::new();
    for (entity, key, op, before, after) in trail(s) {
        if entity == "su_accounts" && op == "update" {
            let key: serde_json::Value = serde_json::from_str(&key).unwrap();
            let id = key
                .as_i64()
                .or_else(|| key[0].as_i64())
                .expect("an integer key");
            out.entry(id)
                .or_default()
                .push((json(&before), json(&after)));
        }
    }
    out
}

/// Four threads move money between eight accounts with `balance = balance ± d` (each transfer
/// updates its lower key first) and now and then add interest to every account in one set
/// update, all at the default isolation level with retries off: every transaction succeeds
/// first time, each account ends with exactly its expected balance (no lost update), the sum
/// is preserved but for the interest, and every account has one audit record per change
/// whose images chain (each before is the previous after).
fn concurrent_transfers_lose_nothing(db: &TestDb) {
    db.create_table::<Account>().unwrap();
    const ACCOUNTS: i64 = 8;
    const THREADS: u64 = 4;
    const TRANSFERS: u64 = 25;
    {
        let mut s = db.session().unwrap();
        let mut rows: Vec<Account> = (1..=ACCOUNTS).map(|id| account(id, "t", 1000)).collect();
        s.insert_many(&mut rows).unwrap();
    }
    let no_retry = TxOptions::new().immediate().no_retry();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db: Db = (**db).clone();
            let opts = no_retry.clone();
            std::thread::spawn(move || {
                let mut s = db.session().unwrap();
                let mut rng = t * 7919 + 17;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                // Net change per account, and the number of changes per account.
                let mut net: HashMap<i64, i64> = HashMap::new();
                let mut changes: HashMap<i64, usize> = HashMap::new();
                for i in 0..TRANSFERS {
                    if i % 10 == 9 {
                        let n = s
                            .transaction_with(&opts, |tx| {
                                tx.update_where::<Account>(
                                    su_accounts::tenant.eq("t"),
                                    su_accounts::balance.eq(su_accounts::balance + 1),
                                )
                            })
                            .expect("interest without retry");
                        assert_eq!(n, ACCOUNTS as usize);
                        for id in 1..=ACCOUNTS {
                            *net.entry(id).or_default() += 1;
                            *changes.entry(id).or_default() += 1;
                        }
                        continue;
                    }
                    let from = (next() % ACCOUNTS as u64) as i64 + 1;
                    let to = (from + (next() % (ACCOUNTS as u64 - 1)) as i64) % ACCOUNTS + 1;
                    assert_ne!(from, to);
                    let d = (next() % 50) as i64 + 1;
                    let (first, first_d, second, second_d) = if from < to {
                        (from, -d, to, d)
                    } else {
                        (to, d, from, -d)
                    };
                    s.transaction_with(&opts, |tx| {
                        let n = tx.update_where::<Account>(
                            su_accounts::id.eq(first),
                            su_accounts::balance.eq(su_accounts::balance + first_d),
                        )?;
                        let m = tx.update_where::<Account>(
                            su_accounts::id.eq(second),
                            su_accounts::balance.eq(su_accounts::balance + second_d),
                        )?;
                        assert_eq!((n, m), (1, 1));
                        Ok(())
                    })
                    .expect("transfer without retry");
                    *net.entry(from).or_default() -= d;
                    *net.entry(to).or_default() += d;
                    *changes.entry(from).or_default() += 1;
                    *changes.entry(to).or_default() += 1;
                }
                (net, changes)
            })
        })
        .collect();
    let mut net: HashMap<i64, i64> = HashMap::new();
    let mut changes: HashMap<i64, usize> = HashMap::new();
    for h in handles {
        let (n, c) = h.join().unwrap();
        for (k, v) in n {
            *net.entry(k).or_default() += v;
        }
        for (k, v) in c {
            *changes.entry(k).or_default() += v;
        }
    }
    let mut s = db.session().unwrap();
    let rows = raw_accounts(&mut s);
    let interest = (THREADS * (TRANSFERS / 10)) as i64;
    for (id, balance, version) in &rows {
        let expected = 1000 + net.get(id).copied().unwrap_or(0);
        assert_eq!(*balance, expected, "account {id}");
        assert_eq!(*version as usize, 1 + changes.get(id).copied().unwrap_or(0));
    }
    let total: i64 = rows.iter().map(|r| r.1).sum();
    assert_eq!(total, 1000 * ACCOUNTS + interest * ACCOUNTS);
    // One record per change; replayed in order, the images chain from the insert to the end.
    let records = account_updates(&mut s);
    for (id, balance, version) in &rows {
        let recs = &records[id];
        assert_eq!(recs.len(), changes[id], "records of account {id}");
        let mut versions: Vec<&(serde_json::Value, serde_json::Value)> = recs.iter().collect();
        versions.sort_by_key(|(b, _)| b["version"].as_i64().unwrap());
        let mut expect_before = (1000, 1);
        for (before, after) in versions {
            assert_eq!(
                (
                    before["balance"].as_i64().unwrap(),
                    before["version"].as_i64().unwrap()
                ),
                expect_before,
                "account {id}"
            );
            assert_eq!(
                after["version"].as_i64().unwrap(),
                before["version"].as_i64().unwrap() + 1
            );
            expect_before = (
                after["balance"].as_i64().unwrap(),
                after["version"].as_i64().unwrap(),
            );
        }
        assert_eq!(expect_before, (*balance, *version));
    }
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// Rows changed by an expression get one record each, whose before and after images are the
/// rows as plain SQL reads them before and after; rows not matched get none. `updated_at` is
/// set on every changed row and the stamps reach the after image.
fn records_hold_true_images(db: &TestDb) {
    db.create_table::<Account>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Account> = (1..=4).map(|id| account(id, "t", id * 10)).collect();
    s.insert_many(&mut rows).unwrap();
    let before = raw_accounts(&mut s);
    let stamped_before: Vec<Account> = s.select(Account::query().order(su_accounts::id)).unwrap();
    let n = s
        .update_where::<Account>(
            su_accounts::id.le(3).and(su_accounts::id.ne(2)),
            (
                su_accounts::balance.eq(su_accounts::balance * 2 + 1),
                su_accounts::note.eq("doubled"),
            ),
        )
        .unwrap();
    assert_eq!(n, 2);
    let after = raw_accounts(&mut s);
    assert_eq!(after[0], (1, 21, 2));
    assert_eq!(after[1], before[1]);
    assert_eq!(after[2], (3, 61, 2));
    assert_eq!(after[3], before[3]);
    let stamped: Vec<Account> = s.select(Account::query().order(su_accounts::id)).unwrap();
    assert!(stamped[0].updated_at > stamped_before[0].updated_at);
    assert_eq!(stamped[1].updated_at, stamped_before[1].updated_at);
    assert_eq!(stamped[0].note, "doubled");

    let records = account_updates(&mut s);
    assert_eq!(records.len(), 2, "{records:?}");
    for (i, id) in [(0usize, 1i64), (2, 3)] {
        let recs = &records[&id];
        assert_eq!(recs.len(), 1);
        let (b, a) = &recs[0];
        assert_eq!(b["balance"].as_i64(), Some(before[i].1));
        assert_eq!(b["version"].as_i64(), Some(before[i].2));
        assert_eq!(b["note"], "");
        assert_eq!(a["balance"].as_i64(), Some(after[i].1));
        assert_eq!(a["version"].as_i64(), Some(after[i].2));
        assert_eq!(a["note"], "doubled");
        // The after image is the row as stored, stamps included.
        let stored: Account = s.get(&id).unwrap();
        let image: serde_json::Value = serde_json::Value::Object(stored.raw_image().unwrap());
        assert_eq!(a, &image);
    }
    // Nothing matched: nothing written, nothing recorded.
    let count = trail(&mut s).len();
    let n = s
        .update_where::<Account>(su_accounts::balance.gt(1_000), su_accounts::balance.eq(0))
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(trail(&mut s).len(), count);
    assert!(db.verify_audit(None).unwrap().is_intact());
}

fn tenant_policy() -> AccessControl {
    AccessControl::deny_by_default().entity::<Account>(
        EntityRules::new()
            .read(&["teller", "viewer"])
            .write(&["teller"])
            .tenant_column("tenant")
            .mask("note"),
    )
}

/// A teller of tenant `a` updates and deletes "every" account: only `a`'s rows change, the
/// counts are `a`'s, other tenants' rows are untouched and have no records; moving a row to
/// another tenant is refused and rolls back; a principal without a tenant matches nothing; a
/// viewer may not update at all.
fn tenant_scope_is_in_the_filter(db: &TestDb) {
    db.create_table::<Account>().unwrap();
    {
        let mut s = db.session().unwrap();
        let mut rows = vec![
            account(1, "a", 100),
            account(2, "b", 100),
            account(3, "a", 100),
            account(4, "b", 100),
            account(5, "c", 100),
        ];
        s.insert_many(&mut rows).unwrap();
    }
    let guarded = db.with_access(tenant_policy());
    let teller = guarded.acting_as(
        Principal::new("teller-a")
            .with_role("teller")
            .in_tenant("a"),
    );
    let mut s = teller.session().unwrap();
    let n = s
        .update_where::<Account>(
            su_accounts::balance.ge(0),
            su_accounts::balance.eq(su_accounts::balance + 7),
        )
        .unwrap();
    assert_eq!(n, 2);
    drop(s);
    let mut raw = db.session().unwrap();
    assert_eq!(
        raw_accounts(&mut raw),
        [
            (1, 107, 2),
            (2, 100, 1),
            (3, 107, 2),
            (4, 100, 1),
            (5, 100, 1)
        ]
    );
    let records = account_updates(&mut raw);
    assert_eq!(
        records
            .keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [1, 3].into()
    );

    // Moving rows to another tenant: refused, nothing changed.
    let mut s = teller.session().unwrap();
    let err = s
        .update_where::<Account>(su_accounts::id.eq(1), su_accounts::tenant.eq("b"))
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    // A masked column is read-only for the principal.
    let err = s
        .update_where::<Account>(su_accounts::id.eq(1), su_accounts::note.eq("x"))
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    // Another tenant's key, named outright: not matched, not counted.
    let n = s
        .update_where::<Account>(su_accounts::id.eq(2), su_accounts::balance.eq(0))
        .unwrap();
    assert_eq!(n, 0);
    let n = s.delete_where::<Account>(su_accounts::id.ge(0)).unwrap();
    assert_eq!(n, 2);
    drop(s);
    assert_eq!(
        raw_accounts(&mut raw),
        [(2, 100, 1), (4, 100, 1), (5, 100, 1)]
    );

    // No tenant: no row is in scope.
    let homeless = guarded.acting_as(Principal::new("teller-x").with_role("teller"));
    let mut s = homeless.session().unwrap();
    assert_eq!(
        s.update_where::<Account>(su_accounts::id.ge(0), su_accounts::balance.eq(0))
            .unwrap(),
        0
    );
    drop(s);
    // A viewer may not update.
    let viewer = guarded.acting_as(
        Principal::new("viewer-b")
            .with_role("viewer")
            .in_tenant("b"),
    );
    let mut s = viewer.session().unwrap();
    let err = s
        .update_where::<Account>(su_accounts::id.ge(0), su_accounts::balance.eq(0))
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    drop(s);
    assert_eq!(
        raw_accounts(&mut raw),
        [(2, 100, 1), (4, 100, 1), (5, 100, 1)]
    );
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// One row failing the validator, or the database's check constraint, or the write path's own
/// columns assigned by the changeset: every row stays as it was and nothing is recorded, with
/// a typed error.
fn one_bad_row_rolls_back_all(db: &TestDb) {
    db.create_table::<Account>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows = vec![
        account(1, "t", 0),
        account(2, "t", 100),
        account(3, "t", 50),
    ];
    s.insert_many(&mut rows).unwrap();
    let before = raw_accounts(&mut s);
    let records = trail(&mut s).len();

    // Row 2 would exceed the validator's maximum.
    let err = s
        .update_where::<Account>(
            su_accounts::id.ge(1),
            su_accounts::balance.eq(su_accounts::balance + 999_950),
        )
        .unwrap_err();
    match err {
        Error::Validation(v) => {
            assert_eq!(v.index, Some(1), "{v:?}");
            assert!(v.fields.contains_key("balance"), "{v:?}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(raw_accounts(&mut s), before);
    assert_eq!(trail(&mut s).len(), records);

    // Row 1 would go below the database's check.
    let err = s
        .update_where::<Account>(
            su_accounts::id.ge(1),
            su_accounts::balance.eq(su_accounts::balance - 1_050),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Constraint { .. }), "{err:?}");
    assert_eq!(
        err.constraint_kind(),
        Some(ConstraintKind::Check),
        "{err:?}"
    );
    assert_eq!(raw_accounts(&mut s), before);
    assert_eq!(trail(&mut s).len(), records);

    // Inside the caller's transaction, a failing set write rolls back only itself (a
    // savepoint): the caller's other writes stay and commit.
    s.transaction(|tx| {
        tx.update_where::<Account>(su_accounts::id.eq(3), su_accounts::note.eq("kept"))?;
        let err = tx
            .update_where::<Account>(
                su_accounts::id.ge(1),
                su_accounts::balance.eq(su_accounts::balance - 1_050),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Constraint { .. }), "{err:?}");
        let err = tx
            .update_where::<Account>(
                su_accounts::id.ge(1),
                su_accounts::balance.eq(su_accounts::balance + 999_950),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
        Ok(())
    })
    .unwrap();
    let kept = raw_accounts(&mut s);
    assert_eq!(
        kept,
        [before[0], before[1], (3, 50, 2)],
        "only the caller's own update"
    );
    assert_eq!(s.get::<Account>(&3).unwrap().note, "kept");
    assert_eq!(trail(&mut s).len(), records + 1);

    // The write path's own columns.
    let count = trail(&mut s).len();
    let now = raw_accounts(&mut s);
    let err = s
        .update_where::<Account>(su_accounts::id.ge(1), su_accounts::version.eq(7))
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let err = s
        .update_where::<Account>(
            su_accounts::id.ge(1),
            (
                su_accounts::note.eq("late"),
                su_accounts::updated_at.eq(custodian::stored(&chrono::NaiveDateTime::default())),
            ),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let err = s
        .update_where::<Account>(su_accounts::id.eq(1), su_accounts::id.eq(10))
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert_eq!(raw_accounts(&mut s), now);
    assert_eq!(trail(&mut s).len(), count);
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// Soft delete: only live rows match and are counted, `deleted_at` is set (restorable), each
/// deleted row gets one `delete` record with its before and after images; set updates do not
/// see deleted rows; `version` goes up by one per update.
fn soft_delete_and_versions(db: &TestDb) {
    db.create_table::<Ticket>().unwrap();
    let mut s = db.session().unwrap();
    for id in 1..=5 {
        s.insert(Ticket {
            id,
            state: "open".into(),
            version: 0,
            updated_at: chrono::NaiveDateTime::default(),
            deleted_at: None,
        })
        .unwrap();
    }
    s.delete_by_key::<Ticket>(&5).unwrap();
    let n = s
        .update_where::<Ticket>(su_tickets::id.ge(2), su_tickets::state.eq("triaged"))
        .unwrap();
    assert_eq!(n, 3);
    let n = s
        .delete_where::<Ticket>(su_tickets::state.eq("triaged").or(su_tickets::id.eq(5)))
        .unwrap();
    assert_eq!(n, 3, "the deleted ticket 5 is not matched again");
    let live: Vec<Ticket> = s.select(Ticket::query()).unwrap();
    assert_eq!(live.iter().map(|t| t.id).collect::<Vec<_>>(), [1]);
    assert_eq!(live[0].version, 1);
    let deleted = s.deleted::<Ticket>().unwrap();
    assert_eq!(deleted.len(), 4);
    for t in &deleted {
        assert!(t.deleted_at.is_some());
        let expected_version = if t.id == 5 { 1 } else { 2 };
        assert_eq!(t.version, expected_version, "ticket {}", t.id);
    }
    // Deleted rows are not updated.
    let n = s
        .update_where::<Ticket>(su_tickets::id.ge(0), su_tickets::state.eq("closed"))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(s.restore::<Ticket>(&3).unwrap().state, "triaged");

    let deletes: Vec<Record> = trail(&mut s)
        .into_iter()
        .filter(|r| r.0 == "su_tickets" && r.2 == "delete")
        .collect();
    assert_eq!(deletes.len(), 4, "{deletes:?}");
    for (_, key, _, before, after) in &deletes {
        let (b, a) = (json(before), json(after));
        assert!(b["deleted_at"].is_null(), "{key}");
        assert!(!a["deleted_at"].is_null(), "{key}");
        assert_eq!(b["version"], a["version"]);
        if key != "5" && key != "[5]" {
            assert_eq!(b["state"], "triaged");
        }
    }
    let updates = trail(&mut s)
        .into_iter()
        .filter(|r| r.0 == "su_tickets" && r.2 == "update")
        .count();
    assert_eq!(updates, 4);
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// A hard `delete_where` records the rows the database's cascades delete, as a single delete
/// does; an entity with hooks runs `before_delete` and `after_delete` for every row (a hook
/// refusing one row rolls every row back); a composite key works. (`update_where`'s hooks:
/// `set_hooks`.)
fn cascades_hooks_and_composite_keys(db: &TestDb) {
    use crate::cascades::{files, folders, File, Folder};
    use crate::entities::{memberships, Membership};
    use crate::model::{hooked, journal, Hooked, Journal};
    db.create_tables(&[Folder::META, File::META]).unwrap();
    let mut s = db.session().unwrap();
    for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
        s.insert(Folder {
            id,
            name: name.into(),
        })
        .unwrap();
    }
    for (id, folder_id) in [(10, 1), (11, 1), (20, 2), (30, 3)] {
        s.insert(File {
            id,
            folder_id,
            name: format!("f{id}"),
        })
        .unwrap();
    }
    let mark = trail(&mut s).len();
    assert_eq!(s.delete_where::<Folder>(folders::id.le(2)).unwrap(), 2);
    let files_left: Vec<i64> = s.load(files::table.select(files::id)).unwrap();
    assert_eq!(files_left, [30]);
    let mut recorded: Vec<(String, String, String)> = trail(&mut s)[mark..]
        .iter()
        .map(|(e, k, o, b, a)| {
            assert!(b.is_some() && a.is_none(), "{e} {k}");
            (e.clone(), k.clone(), o.clone())
        })
        .collect();
    recorded.sort();
    let expected: Vec<(String, String, String)> = [
        ("files", "[10]"),
        ("files", "[11]"),
        ("files", "[20]"),
        ("folders", "[1]"),
        ("folders", "[2]"),
    ]
    .iter()
    .map(|(e, k)| (e.to_string(), k.to_string(), "delete".to_string()))
    .collect();
    assert_eq!(recorded, expected);

    db.create_tables(&[Hooked::META, Journal::META]).unwrap();
    for code in ["a", "b", "keep"] {
        s.insert(Hooked {
            id: 0,
            code: code.into(),
        })
        .unwrap();
    }
    let err = s.delete_where::<Hooked>(hooked::id.ge(0)).unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert_eq!(s.count(hooked::table.count()).unwrap(), 3);
    assert_eq!(s.count(journal::table.count()).unwrap(), 3);
    assert_eq!(
        s.delete_where::<Hooked>(hooked::code.ne("KEEP")).unwrap(),
        2
    );
    let events: Vec<String> = s
        .load(journal::table.select(journal::event).order(journal::id))
        .unwrap();
    assert!(
        events[3].starts_with("delete ") && events[3].ends_with(" A"),
        "{events:?}"
    );
    assert!(
        events[4].starts_with("delete ") && events[4].ends_with(" B"),
        "{events:?}"
    );
    assert_eq!(events.len(), 5);

    db.create_table::<Membership>().unwrap();
    for (team, member) in [("audit", 1), ("audit", 2), ("ops", 1)] {
        s.insert(Membership {
            team: team.into(),
            member,
            role: "member".into(),
            created_at: None,
            scratch: Vec::new(),
        })
        .unwrap();
    }
    let mark = trail(&mut s).len();
    let n = s
        .update_where::<Membership>(memberships::team.eq("audit"), memberships::role.eq("lead"))
        .unwrap();
    assert_eq!(n, 2);
    let roles: Vec<(String, i32, String)> = s
        .load(
            memberships::table
                .select((memberships::team, memberships::member, memberships::role))
                .order((memberships::team, memberships::member)),
        )
        .unwrap();
    assert_eq!(
        roles,
        [
            ("audit".to_string(), 1, "lead".to_string()),
            ("audit".to_string(), 2, "lead".to_string()),
            ("ops".to_string(), 1, "member".to_string()),
        ]
    );
    assert_eq!(
        s.delete_where::<Membership>(memberships::member.eq(1))
            .unwrap(),
        2
    );
    let ops: Vec<String> = trail(&mut s)[mark..]
        .iter()
        .map(|r| format!("{} {}", r.2, r.1))
        .collect();
    assert_eq!(ops.len(), 4, "{ops:?}");
    assert_eq!(ops.iter().filter(|o| o.starts_with("update")).count(), 2);
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// Statements of a set update of three rows of a validated entity inside a transaction: a
/// savepoint, the locking read and the update (one statement on PostgreSQL, which returns
/// both images), which returns the rows as updated where the backend has `RETURNING`
/// (SQLite); MariaDB reads them back by key. The audit records go with the commit.
fn statements_of_a_set_update(db: &TestDb) {
    db.create_table::<Account>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Account> = (1..=3).map(|id| account(id, "t", 10)).collect();
    s.insert_many(&mut rows).unwrap();
    let statements = s
        .transaction(|tx| {
            let (n, statements) = crate::common::count_statements(tx, |tx| {
                tx.update_where::<Account>(
                    su_accounts::id.ge(1),
                    su_accounts::balance.eq(su_accounts::balance + 1),
                )
            });
            assert_eq!(n?, 3);
            Ok(statements)
        })
        .unwrap();
    // A savepoint around the set update (the entity's validator may refuse a row as
    // updated): 2 statements; then PostgreSQL's update with the locking read inside it: 1;
    // SQLite's read and update: 2; MariaDB's locking read, update and read back: 3.
    let expected = match db.kind {
        custodian::BackendKind::Postgres => 3,
        custodian::BackendKind::Sqlite => 4,
        _ => 5,
    };
    assert_eq!(statements, expected, "{}", db.kind);
    assert_eq!(raw_accounts(&mut s), [(1, 11, 2), (2, 11, 2), (3, 11, 2)]);
    assert_eq!(account_updates(&mut s).len(), 3);
}

/// An entity with encrypted fields: a set update of a plain column keeps every seal and blind
/// index as stored (the images hold the ciphertext, as single updates record it); assigning
/// an encrypted field, its blind index or the data subject is refused before any SQL, since
/// the database would store it unsealed.
fn encrypted_fields_keep_their_seals(base: &TestDb) {
    use crate::encrypted::{clients, Client};
    let db = crate::crypto::crypto_db(base.kind);
    db.create_table::<Client>().unwrap();
    let mut s = db.session().unwrap();
    let mut ids = Vec::new();
    for (subject, name) in [("cl-1", "Ada Lovelace"), ("cl-2", "Bob Noyce")] {
        let c = s
            .insert(Client {
                id: 0,
                client_ref: subject.into(),
                full_name: name.into(),
                email: Some(format!("{subject}@example.org")),
                email_index: None,
                segment: "retail".into(),
            })
            .unwrap();
        ids.push(c.id);
    }
    type Sealed = (i64, String, Option<String>, Option<String>, String);
    let raw = |s: &mut Session| -> Vec<Sealed> {
        s.load(clients::table.order(clients::id).select((
            clients::id,
            clients::full_name,
            clients::email,
            clients::email_index,
            clients::segment,
        )))
        .unwrap()
    };
    let sealed = raw(&mut s);
    assert!(!sealed[0].1.contains("Ada"), "stored sealed");
    let n = s
        .update_where::<Client>(
            clients::segment.eq("retail"),
            clients::segment.eq("private"),
        )
        .unwrap();
    assert_eq!(n, 2);
    let now = raw(&mut s);
    for (b, a) in sealed.iter().zip(&now) {
        assert_eq!((&b.0, &b.1, &b.2, &b.3), (&a.0, &a.1, &a.2, &a.3));
        assert_eq!(a.4, "private");
    }
    let ada: Client = s.get(&ids[0]).unwrap();
    assert_eq!(
        (ada.full_name.as_str(), ada.segment.as_str()),
        ("Ada Lovelace", "private")
    );
    let (before, after): (Option<String>, Option<String>) = s
        .first(
            a::table
                .filter(a::entity.eq("clients"))
                .filter(a::op.eq("update"))
                .filter(a::entity_key.eq(format!("[{}]", ids[0])))
                .select((a::before_image, a::after_image)),
        )
        .unwrap()
        .unwrap();
    let (before, after) = (json(&before), json(&after));
    assert_eq!(before["full_name"], sealed[0].1.as_str());
    assert_eq!(after["full_name"], sealed[0].1.as_str());
    assert_eq!(after["segment"], "private");

    let refused = [
        s.update_where::<Client>(clients::id.eq(ids[0]), clients::full_name.eq("in clear")),
        s.update_where::<Client>(clients::id.eq(ids[0]), clients::email_index.eq("guess")),
        s.update_where::<Client>(clients::id.eq(ids[0]), clients::client_ref.eq("cl-2")),
    ];
    for err in refused {
        assert!(matches!(err, Err(Error::Forbidden(_))), "{err:?}");
    }
    assert_eq!(raw(&mut s), now);
    assert_eq!(
        s.delete_where::<Client>(clients::client_ref.eq("cl-2"))
            .unwrap(),
        1
    );
    drop(s);
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// A set update may not point a foreign key at a parent the principal may not read (another
/// tenant's): refused and rolled back, as a single update is.
fn references_must_stay_readable(db: &TestDb) {
    use crate::access::{comments, Comment, Doc};
    db.create_tables(&[Doc::META, Comment::META]).unwrap();
    let mut s = db.session().unwrap();
    let doc = |tenant: &str| Doc {
        id: 0,
        tenant: tenant.into(),
        title: format!("{tenant} doc"),
        owner_email: None,
        secret_note: String::new(),
    };
    let ours = s.insert(doc("acme")).unwrap().id;
    let theirs = s.insert(doc("globex")).unwrap().id;
    let other = s.insert(doc("acme")).unwrap().id;
    let comment = s
        .insert(Comment {
            id: 0,
            doc_id: ours,
            tenant: "acme".into(),
            body: "hi".into(),
        })
        .unwrap()
        .id;
    drop(s);
    let rules = || {
        EntityRules::new()
            .read(&["writer"])
            .write(&["writer"])
            .tenant_column("tenant")
    };
    let policy = AccessControl::deny_by_default()
        .entity::<Doc>(rules())
        .entity::<Comment>(rules());
    let writer = db.with_access(policy).acting_as(
        Principal::new("w-acme")
            .with_role("writer")
            .in_tenant("acme"),
    );
    let mut s = writer.session().unwrap();
    let err = s
        .update_where::<Comment>(comments::id.eq(comment), comments::doc_id.eq(theirs))
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let doc_of = |s: &mut Session| -> i64 {
        s.first(comments::table.select(comments::doc_id))
            .unwrap()
            .unwrap()
    };
    assert_eq!(doc_of(&mut s), ours);
    assert_eq!(
        s.update_where::<Comment>(comments::id.eq(comment), comments::doc_id.eq(other))
            .unwrap(),
        1
    );
    assert_eq!(doc_of(&mut s), other);
}

on_all_backends!(
    concurrent_transfers_lose_nothing,
    records_hold_true_images,
    tenant_scope_is_in_the_filter,
    one_bad_row_rolls_back_all,
    soft_delete_and_versions,
    cascades_hooks_and_composite_keys,
    statements_of_a_set_update,
    encrypted_fields_keep_their_seals,
    references_must_stay_readable,
);
