//! The fast path of `Session::update_where` inside a caller's transaction, on every backend: an
//! entity without validators or hooks, whose changeset assigns neither the tenant column nor
//! a foreign key, is updated without a savepoint, in the fewest statements the database
//! allows (PostgreSQL one, SQLite two, MariaDB three), with true images in its records; an
//! unaudited one needs no images and is one `UPDATE` on every backend, still scoped to the
//! principal's tenant and to live rows; and when a fast-path update fails after its statement
//! ran, the caller's transaction (or savepoint) can no longer commit, so no half-done set
//! update is ever kept.

use crate::common::{count_statements, TestDb};
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;
use custodian::{AccessControl, BackendKind, EntityRules, Error, IntegrityKind, Principal};

/// An audited, versioned ledger without validators or hooks.
#[entity(table = "sf_ledgers")]
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
    pub note: String,
    #[column(version)]
    pub version: i32,
    #[column(updated_at)]
    pub updated_at: chrono::NaiveDateTime,
}

fn ledger(id: i64, balance: i64) -> Ledger {
    Ledger {
        id,
        balance,
        note: String::new(),
        version: 0,
        updated_at: chrono::NaiveDateTime::default(),
    }
}

/// (id, balance, note, version) of every ledger, read with plain SQL.
fn raw_ledgers(s: &mut Session) -> Vec<(i64, i64, String, i32)> {
    s.load(sf_ledgers::table.order(sf_ledgers::id).select((
        sf_ledgers::id,
        sf_ledgers::balance,
        sf_ledgers::note,
        sf_ledgers::version,
    )))
    .unwrap()
}

/// (key, op, before, after) of every ledger record, in id order.
fn ledger_records(s: &mut Session) -> Vec<(String, String, serde_json::Value, serde_json::Value)> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = s
        .load(
            a::table
                .filter(a::entity.eq("sf_ledgers"))
                .order(a::id)
                .select((a::entity_key, a::op, a::before_image, a::after_image)),
        )
        .unwrap();
    let json = |i: Option<String>| match i {
        Some(i) => serde_json::from_str(&i).unwrap(),
        None => serde_json::Value::Null,
    };
    rows.into_iter()
        .map(|(k, op, b, a)| (k, op, json(b), json(a)))
        .collect()
}

/// Inside a transaction, a set update of three rows sends one statement on PostgreSQL (the
/// locking read inside the update, both images returned), two on SQLite (the read, the
/// update returning the rows) and three on MariaDB (locking read, update, read back); the
/// records hold each row's true before and after image.
fn statements_without_a_savepoint(db: &TestDb) {
    db.create_table::<Ledger>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Ledger> = (1..=4).map(|id| ledger(id, id * 10)).collect();
    s.insert_many(&mut rows).unwrap();
    let before = raw_ledgers(&mut s);
    let statements = s
        .transaction(|tx| {
            let (n, statements) = count_statements(tx, |tx| {
                tx.update_where::<Ledger>(
                    sf_ledgers::id.ne(2),
                    sf_ledgers::balance.eq(sf_ledgers::balance * 3 - 1),
                )
            });
            assert_eq!(n?, 3);
            Ok(statements)
        })
        .unwrap();
    let expected = match db.kind {
        BackendKind::Postgres => 1,
        BackendKind::Sqlite => 2,
        _ => 3,
    };
    assert_eq!(statements, expected, "{}", db.kind);
    let after = raw_ledgers(&mut s);
    assert_eq!(
        after.iter().map(|r| (r.0, r.1, r.3)).collect::<Vec<_>>(),
        [(1, 29, 2), (2, 20, 1), (3, 89, 2), (4, 119, 2)]
    );
    let updates: Vec<_> = ledger_records(&mut s)
        .into_iter()
        .filter(|r| r.1 == "update")
        .collect();
    assert_eq!(updates.len(), 3, "one record per changed row");
    for (key, _, b, a) in &updates {
        let id: i64 = serde_json::from_str::<serde_json::Value>(key).unwrap()[0]
            .as_i64()
            .or_else(|| key.parse().ok())
            .unwrap();
        let was = before.iter().find(|r| r.0 == id).unwrap();
        let now = after.iter().find(|r| r.0 == id).unwrap();
        assert_eq!(b["balance"], was.1, "before image of {id}");
        assert_eq!(b["version"], was.3, "before image of {id}");
        assert_eq!(a["balance"], now.1, "after image of {id}");
        assert_eq!(a["version"], now.3, "after image of {id}");
        assert_ne!(a["updated_at"], b["updated_at"], "updated_at of {id}");
    }
}

/// Makes a set update that assigns `note = 'poison'` fail after its statement ran: on
/// PostgreSQL and MariaDB a trigger bumps the version by 5 more (the write path refuses a
/// version not bumped by exactly one); on SQLite the version sits at `i32::MAX`, and the
/// version the update returns no longer fits the field.
fn poison(db: &TestDb) {
    match db.kind {
        BackendKind::Postgres => db.raw_sql(
            "CREATE FUNCTION sf_bump() RETURNS trigger AS $$ BEGIN \
             NEW.version := NEW.version + 5; RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER sf_bump BEFORE UPDATE ON sf_ledgers FOR EACH ROW \
             WHEN (NEW.note = 'poison') EXECUTE FUNCTION sf_bump();",
        ),
        BackendKind::Mysql => db.raw_sql(
            "CREATE TRIGGER sf_bump BEFORE UPDATE ON sf_ledgers FOR EACH ROW \
             SET NEW.version = IF(NEW.note = 'poison', NEW.version + 5, NEW.version)",
        ),
        _ => db.raw_sql("UPDATE sf_ledgers SET version = 2147483647 WHERE id = 1"),
    }
}

/// A fast-path set update that fails after its statement ran cannot be undone by itself (it
/// has no savepoint): the caller who swallows the error still cannot commit. The transaction
/// fails with `RollbackOnly` and keeps nothing (neither the set update nor the caller's own
/// writes); inside a savepoint, only the savepoint is refused and rolled back, and the
/// transaction around it commits its own writes.
fn a_half_done_update_cannot_commit(db: &TestDb) {
    db.create_table::<Ledger>().unwrap();
    let mut s = db.session().unwrap();
    s.insert_many(&mut [ledger(1, 10), ledger(2, 20)]).unwrap();
    poison(db);
    let before = raw_ledgers(&mut s);
    let records = ledger_records(&mut s).len();
    let poisoned = |tx: &mut Session| -> custodian::Result<()> {
        let err = tx
            .update_where::<Ledger>(sf_ledgers::id.eq(1), sf_ledgers::note.eq("poison"))
            .unwrap_err();
        assert!(
            matches!(err, Error::Forbidden(_) | Error::Integrity { .. }),
            "{err:?}"
        );
        Ok(())
    };

    let err = s
        .transaction(|tx| {
            tx.update_where::<Ledger>(sf_ledgers::id.eq(2), sf_ledgers::note.eq("mine"))?;
            poisoned(tx)
        })
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Integrity {
                kind: IntegrityKind::RollbackOnly,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(raw_ledgers(&mut s), before, "{}", db.kind);
    assert_eq!(ledger_records(&mut s).len(), records);

    s.transaction(|tx| {
        tx.update_where::<Ledger>(sf_ledgers::id.eq(2), sf_ledgers::note.eq("mine"))?;
        let inner = tx.transaction(poisoned).unwrap_err();
        assert!(
            matches!(
                &inner,
                Error::Integrity {
                    kind: IntegrityKind::RollbackOnly,
                    ..
                }
            ),
            "{inner:?}"
        );
        Ok(())
    })
    .unwrap();
    let after = raw_ledgers(&mut s);
    assert_eq!(after[0], before[0], "the poisoned row is as it was");
    assert_eq!((after[1].2.as_str(), after[1].3), ("mine", before[1].3 + 1));
    assert_eq!(ledger_records(&mut s).len(), records + 1);
}

/// An unaudited, tenant-scoped, soft-deletable tally without validators or hooks.
#[entity(table = "sf_tallies", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    #[column(primary_key)]
    pub id: i64,
    pub tenant: String,
    pub count: i64,
    #[column(version)]
    pub version: i32,
    #[column(deleted_at)]
    pub deleted_at: Option<chrono::NaiveDateTime>,
}

/// An unaudited set update is one `UPDATE` on every backend, inside a transaction or not:
/// a teller of tenant `a` changes and counts only `a`'s live rows (versions bumped, another
/// tenant's rows and a soft-deleted row untouched); a changeset moving a row to another
/// tenant takes the checked path and is refused.
fn unaudited_is_one_statement(db: &TestDb) {
    db.create_table::<Tally>().unwrap();
    {
        let mut s = db.session().unwrap();
        let mut rows: Vec<Tally> = [(1, "a"), (2, "b"), (3, "a"), (4, "a")]
            .iter()
            .map(|(id, tenant)| Tally {
                id: *id,
                tenant: tenant.to_string(),
                count: 0,
                version: 0,
                deleted_at: None,
            })
            .collect();
        s.insert_many(&mut rows).unwrap();
        assert_eq!(s.delete_where::<Tally>(sf_tallies::id.eq(4)).unwrap(), 1);
    }
    let policy = AccessControl::deny_by_default().entity::<Tally>(
        EntityRules::new()
            .read(&["teller"])
            .write(&["teller"])
            .tenant_column("tenant"),
    );
    let teller = db.with_access(policy).acting_as(
        Principal::new("teller-a")
            .with_role("teller")
            .in_tenant("a"),
    );
    let mut s = teller.session().unwrap();
    let (n, statements) = count_statements(&mut s, |s| {
        s.update_where::<Tally>(
            sf_tallies::id.ge(0),
            sf_tallies::count.eq(sf_tallies::count + 1),
        )
    });
    assert_eq!((n.unwrap(), statements), (2, 1), "{}", db.kind);
    let statements = s
        .transaction(|tx| {
            let (n, statements) = count_statements(tx, |tx| {
                tx.update_where::<Tally>(
                    sf_tallies::id.ge(0),
                    sf_tallies::count.eq(sf_tallies::count + 10),
                )
            });
            assert_eq!(n?, 2);
            Ok(statements)
        })
        .unwrap();
    assert_eq!(statements, 1, "{}", db.kind);
    let err = s
        .update_where::<Tally>(sf_tallies::id.eq(1), sf_tallies::tenant.eq("b"))
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let mut raw = db.session().unwrap();
    let rows: Vec<(i64, String, i64, i32)> = raw
        .load(sf_tallies::table.order(sf_tallies::id).select((
            sf_tallies::id,
            sf_tallies::tenant,
            sf_tallies::count,
            sf_tallies::version,
        )))
        .unwrap();
    let v = rows[1].3;
    let expect =
        |id: i64, tenant: &str, count: i64, version: i32| (id, tenant.to_string(), count, version);
    assert_eq!(
        rows,
        [
            expect(1, "a", 11, v + 2),
            expect(2, "b", 0, v),
            expect(3, "a", 11, v + 2),
            expect(4, "a", 0, rows[3].3),
        ]
    );
}

/// Makes a set delete of ledgers 1 and 2 fail after its statement ran, where the note of
/// ledger 2 is `keep`: on PostgreSQL a trigger silently skips that row (`RETURN NULL`) and on
/// SQLite likewise (`RAISE(IGNORE)`), so fewer rows are deleted than were locked; on MariaDB a
/// trigger fails the statement on that row.
fn keep_trigger(db: &TestDb) {
    match db.kind {
        BackendKind::Postgres => db.raw_sql(
            "CREATE FUNCTION sf_keep() RETURNS trigger AS $$ BEGIN \
             IF OLD.note = 'keep' THEN RETURN NULL; END IF; RETURN OLD; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER sf_keep BEFORE DELETE ON sf_ledgers FOR EACH ROW \
             EXECUTE FUNCTION sf_keep();",
        ),
        BackendKind::Mysql => db.raw_sql(
            "CREATE TRIGGER sf_keep BEFORE DELETE ON sf_ledgers FOR EACH ROW \
             BEGIN IF OLD.note = 'keep' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'kept'; END IF; END",
        ),
        _ => db.raw_sql(
            "CREATE TRIGGER sf_keep BEFORE DELETE ON sf_ledgers FOR EACH ROW \
             WHEN OLD.note = 'keep' BEGIN SELECT RAISE(IGNORE); END",
        ),
    }
}

/// A set delete of an entity without hooks takes no savepoint inside a transaction (the
/// locking read and the delete: two statements on every backend, the records go in at
/// commit), and when it fails after its statement was sent, the caller who swallows the error
/// still cannot commit: the transaction fails with `RollbackOnly` and keeps nothing, neither
/// the rows the delete did remove nor the caller's own update.
fn a_half_done_delete_cannot_commit(db: &TestDb) {
    db.create_table::<Ledger>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Ledger> = (1..=4).map(|id| ledger(id, id * 10)).collect();
    s.insert_many(&mut rows).unwrap();
    let statements = s
        .transaction(|tx| {
            let (n, statements) =
                count_statements(tx, |tx| tx.delete_where::<Ledger>(sf_ledgers::id.ge(3)));
            assert_eq!(n?, 2);
            Ok(statements)
        })
        .unwrap();
    assert_eq!(statements, 2, "{}", db.kind);

    s.update_where::<Ledger>(sf_ledgers::id.eq(2), sf_ledgers::note.eq("keep"))
        .unwrap();
    keep_trigger(db);
    let before = raw_ledgers(&mut s);
    let records = ledger_records(&mut s).len();
    let err = s
        .transaction(|tx| {
            tx.update_where::<Ledger>(sf_ledgers::id.eq(2), sf_ledgers::balance.eq(0))?;
            let failed = tx.delete_where::<Ledger>(sf_ledgers::id.le(2)).unwrap_err();
            assert!(
                matches!(failed, Error::Integrity { .. } | Error::Database { .. }),
                "{failed:?}"
            );
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Integrity {
                kind: IntegrityKind::RollbackOnly,
                ..
            }
        ),
        "{}: {err:?}",
        db.kind
    );
    assert_eq!(raw_ledgers(&mut s), before, "{}", db.kind);
    assert_eq!(ledger_records(&mut s).len(), records);
}

on_all_backends!(
    unaudited_is_one_statement,
    statements_without_a_savepoint,
    a_half_done_update_cannot_commit,
    a_half_done_delete_cannot_commit,
);
