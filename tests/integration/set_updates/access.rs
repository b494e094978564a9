//! A tenant-scoped principal neither changes nor counts another tenant's rows, nor points a
//! reference at a row it may not read.

use super::*;

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

on_all_backends!(tenant_scope_is_in_the_filter, references_must_stay_readable,);
