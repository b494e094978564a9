//! The entity cache in one process, attacked on every backend: write-then-read rounds that must
//! never read a stale row, rolled-back and uncommitted writes, a REPEATABLE READ snapshot
//! that must not reach the cache, tenant isolation and masks through the cache (property test
//! against an uncached oracle), a 64-thread stampede on one cold key counted in statements on
//! the wire, set-based writes, cascades and erasure, and writes made behind custodian's back
//! (seen after the TTL, as documented). Across processes: `cache_processes.rs`.

use crate::common::{count_statements, TestDb};
use crate::crypto::{with_keys, K1};
use custodian::prelude::*;
use custodian::{AccessControl, BackendKind, EntityRules, Error, Principal};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// A plain cached row.
#[entity(table = "cache_items", cache, unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    #[column(primary_key)]
    pub id: i64,
    pub value: i64,
}

/// A tenant-scoped, audited row with a masked column.
#[entity(table = "cache_docs", cache)]
#[derive(Debug, Clone, PartialEq)]
pub struct TDoc {
    #[column(primary_key)]
    pub id: i64,
    #[column(index)]
    pub tenant: String,
    pub title: String,
    pub secret: String,
}

/// A parent whose children go with it (ON DELETE CASCADE).
#[entity(table = "cache_parents", cache, unaudited, has_many(CChild))]
#[derive(Debug, Clone, PartialEq)]
pub struct CParent {
    #[column(primary_key)]
    pub id: i64,
    pub name: String,
}

/// A cached child row.
#[entity(table = "cache_children", cache, unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct CChild {
    #[column(primary_key)]
    pub id: i64,
    #[belongs_to(CParent, on_delete = "cascade")]
    pub parent_id: i64,
    pub note: String,
}

/// A cached row with an encrypted field (cached as ciphertext).
#[entity(table = "cache_secrets", subject = "owner", cache)]
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    #[column(primary_key)]
    pub id: i64,
    #[column(index)]
    pub owner: String,
    #[column(encrypted)]
    pub body: String,
    pub label: String,
}

/// The stampede's row (its own entity: nothing else reads it).
#[entity(table = "cache_hot", cache(ttl_secs = 600), unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Hot {
    #[column(primary_key)]
    pub id: i64,
    pub value: i64,
}

/// A row cached for one second.
#[entity(table = "cache_short", cache(ttl_secs = 1), unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Short {
    #[column(primary_key)]
    pub id: i64,
    pub value: i64,
}

/// Whether a `get` of `E` by `key` on `s` is served from the cache: no statement reaches the
/// server.
fn served_from_cache<E: Entity>(s: &mut Session, key: &E::Key) -> bool {
    let (row, statements) = count_statements(s, |s| s.get::<E>(key));
    row.unwrap();
    statements == 0
}

fn rollback() -> Error {
    Error::config("test", "roll back")
}

// ------------------------------------------------------------ one process, 10 000 rounds

/// 10 000 rounds of a write (through every write form) followed by a read through the cache
/// on another session: not one stale read.
fn write_then_read_rounds(db: &TestDb) {
    db.create_table::<Item>().unwrap();
    let mut w = db.session().unwrap();
    let mut r = db.session().unwrap();
    w.insert(Item { id: 1, value: 0 }).unwrap();
    assert_eq!(r.get::<Item>(&1).unwrap().value, 0);
    assert!(served_from_cache::<Item>(&mut r, &1), "the row is cached");
    let mut stale = 0;
    for i in 1..=10_000i64 {
        match i % 5 {
            0 => {
                w.update_where::<Item>(cache_items::id.eq(1), cache_items::value.eq(i))
                    .unwrap();
            }
            1 => w.update(&mut Item { id: 1, value: i }).unwrap(),
            2 => w
                .transaction(|t| t.update(&mut Item { id: 1, value: i }))
                .unwrap(),
            3 => w
                .transaction(|t| {
                    // Read inside the transaction (bypasses the cache), then write.
                    let mut row = t.get::<Item>(&1)?;
                    row.value = i;
                    t.update(&mut row)
                })
                .unwrap(),
            _ => w
                .transaction(|t| t.transaction(|sp| sp.update(&mut Item { id: 1, value: i })))
                .unwrap(),
        }
        let seen = if i % 2 == 0 {
            r.get::<Item>(&1).unwrap().value
        } else {
            r.get_many::<Item>(&[1]).unwrap()[0].value
        };
        if seen != i {
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "stale reads in 10 000 write-then-read rounds");
    assert!(
        served_from_cache::<Item>(&mut r, &1),
        "still read through the cache"
    );
}

// ------------------------------------------------------- rollback, uncommitted, snapshots

/// A rolled-back write is never served; a write in an open transaction is not seen by another
/// session before it commits; a REPEATABLE READ snapshot read inside a transaction does not
/// reach the cache.
fn uncommitted_and_rolled_back_writes_are_never_served(db: &TestDb) {
    db.create_table::<Item>().unwrap();
    let mut w = db.session().unwrap();
    let mut r = db.session().unwrap();
    w.insert(Item { id: 2, value: 0 }).unwrap();
    assert_eq!(r.get::<Item>(&2).unwrap().value, 0);

    // Rolled back: the other session before and after, and the writer itself after.
    let out: Result<(), Error> = w.transaction(|t| {
        t.update(&mut Item { id: 2, value: 1 })?;
        assert_eq!(
            t.get::<Item>(&2)?.value,
            1,
            "the transaction sees its own write"
        );
        assert_eq!(
            r.get::<Item>(&2)?.value,
            0,
            "uncommitted write seen elsewhere"
        );
        Err(rollback())
    });
    assert!(out.is_err());
    assert_eq!(
        r.get::<Item>(&2).unwrap().value,
        0,
        "rolled-back write served"
    );
    assert_eq!(
        w.get::<Item>(&2).unwrap().value,
        0,
        "rolled-back write served"
    );

    // A savepoint rolled back inside a committed transaction.
    w.transaction(|t| {
        let _ = t.transaction(|sp| {
            sp.update(&mut Item { id: 2, value: 5 })?;
            Err::<(), _>(rollback())
        });
        assert_eq!(r.get::<Item>(&2)?.value, 0);
        Ok(())
    })
    .unwrap();
    assert_eq!(r.get::<Item>(&2).unwrap().value, 0);

    // Committed: seen at once.
    w.transaction(|t| {
        t.update(&mut Item { id: 2, value: 3 })?;
        assert_eq!(
            r.get::<Item>(&2)?.value,
            0,
            "uncommitted write seen elsewhere"
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(r.get::<Item>(&2).unwrap().value, 3);

    // A snapshot transaction reads the row, another session commits a change, the snapshot
    // reads the old row again: that old row must not be what the cache serves afterwards.
    let mut other = db.session().unwrap();
    let snapshot = TxOptions::new().isolation(IsolationLevel::RepeatableRead);
    w.transaction_with(&snapshot, |t| {
        assert_eq!(t.get::<Item>(&2)?.value, 3);
        other.update(&mut Item { id: 2, value: 7 })?;
        let again = t.get::<Item>(&2)?.value;
        assert_eq!(again, 3, "{}: the snapshot keeps the old row", db.kind);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        r.get::<Item>(&2).unwrap().value,
        7,
        "a snapshot's row was cached"
    );
    assert_eq!(
        w.get::<Item>(&2).unwrap().value,
        7,
        "a snapshot's row was cached"
    );
}

// ------------------------------------------------------------------ tenants and masks

fn tenant_policy() -> AccessControl {
    AccessControl::deny_by_default().entity::<TDoc>(
        EntityRules::new()
            .read(&["reader", "dpo"])
            .write(&["nobody"])
            .tenant_column("tenant")
            .mask("secret")
            .unmask_for("dpo"),
    )
}

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random principals read random keys through the cache while rows change and move between
/// tenants: every answer equals the same principal's uncached answer (a read inside a
/// transaction), no row of another tenant ever comes back, and masks apply.
fn tenant_property_through_the_cache(db: &TestDb) {
    db.create_table::<TDoc>().unwrap();
    const ROWS: i64 = 30;
    let mut admin = db.session().unwrap();
    for id in 1..=ROWS {
        admin
            .insert(TDoc {
                id,
                tenant: TENANTS[id as usize % 3].into(),
                title: format!("doc {id}"),
                secret: format!("secret {id}"),
            })
            .unwrap();
    }
    let scoped = db.with_access(tenant_policy());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut checked, mut cross) = (0, 0);
    for round in 0..600 {
        if round % 7 == 0 {
            // Move a row to another tenant, or retitle it (through custodian: evicted).
            let id = 1 + rng.below(ROWS as u64) as i64;
            let mut row = admin.get::<TDoc>(&id).unwrap();
            row.tenant = TENANTS[rng.below(3) as usize].into();
            row.title = format!("doc {id} r{round}");
            admin.update(&mut row).unwrap();
        }
        let tenant = TENANTS[rng.below(3) as usize];
        let role = if rng.below(4) == 0 { "dpo" } else { "reader" };
        let who = scoped.acting_as(Principal::new("u").with_role(role).in_tenant(tenant));
        let mut s = who.session().unwrap();
        let keys: Vec<i64> = (0..3).map(|_| 1 + rng.below(ROWS as u64) as i64).collect();
        let (cached, fresh) = match rng.below(3) {
            0 => (
                s.find::<TDoc>(&keys[0])
                    .unwrap()
                    .into_iter()
                    .collect::<Vec<_>>(),
                s.transaction(|t| t.find::<TDoc>(&keys[0]))
                    .unwrap()
                    .into_iter()
                    .collect::<Vec<_>>(),
            ),
            1 => {
                let got = s.get::<TDoc>(&keys[0]);
                let fresh = s.transaction(|t| t.find::<TDoc>(&keys[0])).unwrap();
                match (got, fresh) {
                    (Ok(row), Some(f)) => (vec![row], vec![f]),
                    (Err(Error::NotFound { .. }), None) => (vec![], vec![]),
                    (got, fresh) => panic!("get {got:?} but uncached {fresh:?}"),
                }
            }
            _ => {
                let mut a = s.get_many::<TDoc>(&keys).unwrap();
                let mut b = s.transaction(|t| t.get_many::<TDoc>(&keys)).unwrap();
                a.sort_by_key(|d| d.id);
                b.sort_by_key(|d| d.id);
                (a, b)
            }
        };
        assert_eq!(
            cached, fresh,
            "cached and uncached reads differ ({tenant}, {role})"
        );
        for row in &cached {
            checked += 1;
            if row.tenant != tenant {
                cross += 1;
            }
            if role == "dpo" {
                assert!(row.secret.starts_with("secret"), "{row:?}");
            } else {
                assert_eq!(row.secret, "***", "mask not applied to a cached row");
            }
        }
    }
    assert_eq!(cross, 0, "cross-tenant rows through the cache");
    assert!(
        checked > 100,
        "the property test saw too few rows ({checked})"
    );
    // The cache was in use for these reads, and a principal the policy refuses is refused
    // even for a cached row.
    let mut row = admin.get::<TDoc>(&1).unwrap();
    row.tenant = "globex".into();
    admin.update(&mut row).unwrap();
    let reader = scoped.acting_as(Principal::new("u").with_role("reader").in_tenant("globex"));
    let mut s = reader.session().unwrap();
    s.get::<TDoc>(&1).unwrap();
    assert!(served_from_cache::<TDoc>(&mut s, &1));
    let stranger = scoped.acting_as(Principal::new("x").with_role("guest").in_tenant("globex"));
    let refused = stranger.session().unwrap().get::<TDoc>(&1);
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
}

// ----------------------------------------------- set writes, cascades, erasure, outside

/// `update_where`, `delete_where` and a cascading delete evict what they changed.
fn set_writes_and_cascades_invalidate(db: &TestDb) {
    db.create_table::<Item>().unwrap();
    db.create_table::<CParent>().unwrap();
    db.create_table::<CChild>().unwrap();
    let mut w = db.session().unwrap();
    let mut r = db.session().unwrap();
    for id in 10..15 {
        w.insert(Item { id, value: 1 }).unwrap();
    }
    let keys: Vec<i64> = (10..15).collect();
    assert_eq!(r.get_many::<Item>(&keys).unwrap().len(), 5);
    assert!(served_from_cache::<Item>(&mut r, &12));
    let n = w
        .update_where::<Item>(cache_items::id.ge(12), cache_items::value.eq(2))
        .unwrap();
    assert_eq!(n, 3);
    let mut rows = r.get_many::<Item>(&keys).unwrap();
    rows.sort_by_key(|i| i.id);
    let values: Vec<i64> = rows.iter().map(|i| i.value).collect();
    assert_eq!(values, vec![1, 1, 2, 2, 2], "update_where not evicted");
    let n = w.delete_where::<Item>(cache_items::id.eq(13)).unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        r.find::<Item>(&13).unwrap(),
        None,
        "delete_where not evicted"
    );
    assert_eq!(r.get_many::<Item>(&keys).unwrap().len(), 4);

    w.insert(CParent {
        id: 1,
        name: "p".into(),
    })
    .unwrap();
    for id in 1..=2 {
        w.insert(CChild {
            id,
            parent_id: 1,
            note: "c".into(),
        })
        .unwrap();
    }
    assert!(r.find::<CChild>(&1).unwrap().is_some());
    assert!(served_from_cache::<CChild>(&mut r, &1));
    w.delete_by_key::<CParent>(&1).unwrap();
    assert_eq!(r.find::<CChild>(&1).unwrap(), None, "cascade not evicted");
    assert!(r.get_many::<CChild>(&[1, 2]).unwrap().is_empty());
}

/// Erasing a subject evicts the cached rows of entities with encrypted fields: the next read
/// goes to the database (it sees a column changed behind custodian's back while the row was
/// cached), and reads the value as erased.
fn erasure_evicts(kind: BackendKind) {
    let db = TestDb::with(kind, |c| with_keys(c, &[("k1", K1)], "k1"));
    db.create_table::<Secret>().unwrap();
    let mut w = db.session().unwrap();
    let mut r = db.session().unwrap();
    w.insert(Secret {
        id: 1,
        owner: "subj-1".into(),
        body: "the plaintext".into(),
        label: "before".into(),
    })
    .unwrap();
    assert_eq!(r.get::<Secret>(&1).unwrap().body, "the plaintext");
    assert!(served_from_cache::<Secret>(&mut r, &1));
    db.raw_sql("UPDATE cache_secrets SET label = 'after' WHERE id = 1");
    assert_eq!(r.get::<Secret>(&1).unwrap().label, "before", "still cached");
    let crypto = db.crypto().unwrap();
    assert!(crypto.erase_subject(&mut w, "subj-1").unwrap());
    let row = r.get::<Secret>(&1).unwrap();
    assert_eq!(
        row.label, "after",
        "erasure did not evict the subject's cached row"
    );
    assert_eq!(row.body, custodian::crypto::ERASED);
}

/// A write made behind custodian's back (raw SQL) is not seen until the entry's TTL runs out,
/// as the README says; then it is.
fn outside_writes_are_seen_after_the_ttl(db: &TestDb) {
    db.create_table::<Short>().unwrap();
    let mut s = db.session().unwrap();
    s.insert(Short { id: 1, value: 0 }).unwrap();
    assert_eq!(s.get::<Short>(&1).unwrap().value, 0);
    db.raw_sql("UPDATE cache_short SET value = 5 WHERE id = 1");
    assert_eq!(
        s.get::<Short>(&1).unwrap().value,
        0,
        "documented: an outside write is not seen before the TTL"
    );
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(s.get::<Short>(&1).unwrap().value, 5, "seen after the TTL");
}

crate::on_all_backends!(
    write_then_read_rounds,
    uncommitted_and_rolled_back_writes_are_never_served,
    tenant_property_through_the_cache,
    set_writes_and_cascades_invalidate,
    outside_writes_are_seen_after_the_ttl,
);

mod erasure {
    #[test]
    fn postgres() {
        super::erasure_evicts(custodian::BackendKind::Postgres);
    }
    #[test]
    fn mariadb() {
        super::erasure_evicts(custodian::BackendKind::Mysql);
    }
    #[test]
    fn sqlite() {
        super::erasure_evicts(custodian::BackendKind::Sqlite);
    }
}

// --------------------------------------------------------------------------- stampede

/// 64 threads ask for one cold key at once: one statement reaches the server, counted on each
/// session's connection. On PostgreSQL and MariaDB the table is locked while the threads
/// start, so every one of them is waiting on the key together; SQLite (WAL) readers cannot be
/// held back that way, so there the threads race from a barrier.
fn stampede(kind: BackendKind) {
    const THREADS: usize = 64;
    let db = TestDb::with(kind, |c| {
        c.pool.max_size = THREADS as u32 + 2;
        c.pool.min_idle = Some(1);
    });
    db.create_table::<Hot>().unwrap();
    db.session()
        .unwrap()
        .insert(Hot { id: 1, value: 42 })
        .unwrap();
    let lock = hold_table_lock(&db);
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let statements = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (db, barrier, statements) = ((*db).clone(), barrier.clone(), statements.clone());
            std::thread::spawn(move || {
                let mut s = db.session().unwrap();
                barrier.wait();
                let (row, n) = count_statements(&mut s, |s| s.get::<Hot>(&1));
                statements.fetch_add(n, Ordering::SeqCst);
                row.unwrap().value
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(300));
    drop(lock);
    for h in handles {
        assert_eq!(h.join().unwrap(), 42);
    }
    assert_eq!(
        statements.load(Ordering::SeqCst),
        1,
        "{kind}: {THREADS} threads on one cold key"
    );
}

/// A raw connection holding a lock that blocks reads of `cache_hot` until dropped (PostgreSQL,
/// MariaDB); nothing on SQLite.
fn hold_table_lock(db: &TestDb) -> Option<Box<dyn std::any::Any>> {
    use custodian::diesel::connection::SimpleConnection;
    use custodian::diesel::Connection;
    match db.kind {
        BackendKind::Postgres => {
            let mut c = custodian::diesel::PgConnection::establish(&db.url).unwrap();
            c.batch_execute("BEGIN; LOCK TABLE cache_hot IN ACCESS EXCLUSIVE MODE")
                .unwrap();
            struct Held(custodian::diesel::PgConnection);
            impl Drop for Held {
                fn drop(&mut self) {
                    let _ = self.0.batch_execute("COMMIT");
                }
            }
            Some(Box::new(Held(c)))
        }
        BackendKind::Mysql => {
            let mut c = custodian::diesel::MysqlConnection::establish(&db.url).unwrap();
            c.batch_execute("LOCK TABLES cache_hot WRITE").unwrap();
            struct Held(custodian::diesel::MysqlConnection);
            impl Drop for Held {
                fn drop(&mut self) {
                    let _ = self.0.batch_execute("UNLOCK TABLES");
                }
            }
            Some(Box::new(Held(c)))
        }
        _ => None,
    }
}

mod stampede {
    #[test]
    fn postgres() {
        super::stampede(custodian::BackendKind::Postgres);
    }
    #[test]
    fn mariadb() {
        super::stampede(custodian::BackendKind::Mysql);
    }
    #[test]
    fn sqlite() {
        super::stampede(custodian::BackendKind::Sqlite);
    }
}
