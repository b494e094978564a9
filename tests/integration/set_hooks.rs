//! Lifecycle hooks of `Session::update_where` on every backend: `before_update` sees each
//! locked row as it was, in key order, before the statement; `after_update` sees each row as
//! updated; a hook's `Err` (before or after) rolls back every row, every record and every
//! write the hooks made, while the caller's transaction goes on; a `before_update` that
//! changes the value is refused, since a set update writes only its changeset.

use crate::common::TestDb;
use crate::model::{journal, Journal};
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;
use custodian::{Error, Hooks, IntegrityKind};

/// A purse whose hooks write what they saw to the journal: `before_update` refuses a
/// `frozen` purse and renames a `rename` one; `after_update` refuses a balance above 1000.
#[entity(table = "sh_purses", hooks)]
#[derive(Debug, Clone, PartialEq)]
pub struct Purse {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
    pub note: String,
    #[column(version)]
    pub version: i32,
    #[column(updated_at)]
    pub updated_at: chrono::NaiveDateTime,
}

impl Hooks for Purse {
    fn before_update(&mut self, s: &mut Session) -> custodian::Result<()> {
        match self.note.as_str() {
            "frozen" => return Err(Error::Forbidden(format!("purse {} is frozen", self.id))),
            "rename" => self.note = "renamed".into(),
            _ => {}
        }
        s.insert(Journal {
            id: 0,
            event: format!("before {} {} {}", self.id, self.balance, self.version),
        })?;
        Ok(())
    }

    fn after_update(&self, s: &mut Session) -> custodian::Result<()> {
        if self.balance > 1000 {
            return Err(Error::integrity(
                IntegrityKind::Application,
                format!("purse {} is too rich", self.id),
            ));
        }
        s.insert(Journal {
            id: 0,
            event: format!("after {} {} {}", self.id, self.balance, self.version),
        })?;
        Ok(())
    }
}

fn setup(db: &TestDb, purses: &[(i64, i64, &str)]) -> Session {
    db.create_tables(&[Purse::META, Journal::META]).unwrap();
    let mut s = db.session().unwrap();
    for (id, balance, note) in purses {
        s.insert(Purse {
            id: *id,
            balance: *balance,
            note: note.to_string(),
            version: 0,
            updated_at: chrono::NaiveDateTime::default(),
        })
        .unwrap();
    }
    s
}

fn events(s: &mut Session) -> Vec<String> {
    s.load(journal::table.select(journal::event).order(journal::id))
        .unwrap()
}

/// (id, balance, version) of every purse, read with plain SQL.
fn purses(s: &mut Session) -> Vec<(i64, i64, i32)> {
    s.load(sh_purses::table.order(sh_purses::id).select((
        sh_purses::id,
        sh_purses::balance,
        sh_purses::version,
    )))
    .unwrap()
}

fn records(s: &mut Session) -> i64 {
    s.count(a::table.filter(a::entity.eq("sh_purses")).count())
        .unwrap()
}

/// The hooks see the true images: `before_update` the rows as locked (old balance and
/// version), all of them before any `after_update`, which sees the rows as updated.
fn hooks_see_true_images(db: &TestDb) {
    let mut s = setup(db, &[(1, 10, ""), (2, 20, ""), (3, 30, "")]);
    let v = purses(&mut s)[0].2;
    let n = s
        .update_where::<Purse>(
            sh_purses::id.ge(2),
            sh_purses::balance.eq(sh_purses::balance + 5),
        )
        .unwrap();
    assert_eq!(n, 2);
    let w = v + 1;
    assert_eq!(
        events(&mut s),
        [
            format!("before 2 20 {v}"),
            format!("before 3 30 {v}"),
            format!("after 2 25 {w}"),
            format!("after 3 35 {w}"),
        ]
    );
    assert_eq!(purses(&mut s), [(1, 10, v), (2, 25, w), (3, 35, w)]);
}

/// An `Err` from `after_update` or `before_update` rolls back every row, record and journal
/// entry of the set update; inside the caller's transaction only the set update is undone
/// and the caller's own writes commit. A `before_update` that changes the value is refused.
fn a_hook_error_rolls_everything_back(db: &TestDb) {
    let mut s = setup(db, &[(1, 10, ""), (2, 20, ""), (3, 900, "")]);
    let before = purses(&mut s);
    let audit = records(&mut s);
    let unchanged = |s: &mut Session| {
        assert_eq!(purses(s), before, "{}", db.kind);
        assert_eq!(records(s), audit, "{}", db.kind);
    };

    // after_update refuses purse 3 (balance 1100): purses 1 and 2 are rolled back too.
    let err = s
        .update_where::<Purse>(
            sh_purses::id.ge(1),
            sh_purses::balance.eq(sh_purses::balance + 200),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
    unchanged(&mut s);
    assert!(events(&mut s).is_empty(), "{:?}", events(&mut s));

    // Inside the caller's transaction: the set update is undone, the caller goes on.
    s.transaction(|tx| {
        tx.insert(Journal {
            id: 0,
            event: "mine".into(),
        })?;
        let err = tx
            .update_where::<Purse>(
                sh_purses::id.ge(1),
                sh_purses::balance.eq(sh_purses::balance + 200),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
        Ok(())
    })
    .unwrap();
    unchanged(&mut s);
    assert_eq!(events(&mut s), ["mine"]);

    // before_update refuses a frozen purse: nothing is updated.
    s.update_where::<Purse>(sh_purses::id.eq(2), sh_purses::note.eq("frozen"))
        .unwrap();
    let before = purses(&mut s);
    let audit = records(&mut s);
    let err = s
        .update_where::<Purse>(sh_purses::id.ge(1), sh_purses::balance.eq(0))
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert_eq!(purses(&mut s), before);
    assert_eq!(records(&mut s), audit);

    // before_update changes the value: refused, not silently dropped.
    s.update_where::<Purse>(sh_purses::id.eq(1), sh_purses::note.eq("rename"))
        .unwrap();
    let before = purses(&mut s);
    let err = s
        .update_where::<Purse>(sh_purses::id.eq(1), sh_purses::balance.eq(1))
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_eq!(purses(&mut s), before);
}

on_all_backends!(hooks_see_true_images, a_hook_error_rolls_everything_back);
