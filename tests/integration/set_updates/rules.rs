//! One bad row rolls back every row; soft delete and version columns; cascades, hooks and
//! composite keys; encrypted fields keep their seals.

use super::*;

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

on_all_backends!(
    one_bad_row_rolls_back_all,
    soft_delete_and_versions,
    cascades_hooks_and_composite_keys,
    encrypted_fields_keep_their_seals,
);
