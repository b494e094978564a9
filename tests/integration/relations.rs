//! Relationships on every backend: parents, children without N+1, has_one, many-to-many,
//! diesel joins through the generated tables, and referential actions enforced by the database.

use crate::common::{count_statements, TestDb};
use crate::model::*;
use custodian::prelude::*;
use custodian::Error;

fn create(db: &TestDb) {
    db.create_tables(&[
        Policy::META,
        Requirement::META,
        Tag::META,
        RequirementTag::META,
        PolicyException::META,
    ])
    .unwrap();
}

fn parents_children_without_n_plus_one(db: &TestDb) {
    create(db);
    let mut s = db.session().unwrap();
    let mut policies: Vec<Policy> = (0..100).map(|i| Policy::new(&format!("POL-{i}"))).collect();
    s.insert_many(&mut policies).unwrap();
    let policies: Vec<Policy> = s.load(Policy::query().order(policies::id)).unwrap();
    assert_eq!(policies.len(), 100);
    let mut reqs: Vec<Requirement> = policies
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            (0..i % 4).map(move |j| Requirement {
                id: 0,
                policy_id: p.id,
                text: format!("R{i}.{j}"),
            })
        })
        .collect();
    s.insert_many(&mut reqs).unwrap();

    let (children, statements) = count_statements(&mut s, |s| {
        s.children::<Policy, Requirement>(&policies).unwrap()
    });
    assert_eq!(statements, 1, "one query for all children");
    assert_eq!(children.len(), 100);
    for (i, (p, rs)) in policies.iter().zip(&children).enumerate() {
        assert_eq!(rs.len(), i % 4, "children of {}", p.code);
        assert!(rs.iter().all(|r| r.policy_id == p.id));
    }
    // 100 parents with their children: two queries in all, not 101.
    let (_, statements) = count_statements(&mut s, |s| {
        let ps: Vec<Policy> = s
            .load(Policy::query().order(policies::id).limit(100))
            .unwrap();
        s.children::<Policy, Requirement>(&ps).unwrap()
    });
    assert_eq!(statements, 2);

    let one = &reqs[0];
    let stored: Requirement = s
        .load(Requirement::query().filter(requirements::text.eq(one.text.clone())))
        .unwrap()
        .remove(0);
    let parent: Policy = s.parent::<Requirement, Policy>(&stored).unwrap().unwrap();
    assert_eq!(parent.id, stored.policy_id);
    let all_reqs: Vec<Requirement> = s.load(Requirement::query()).unwrap();
    let (parents, statements) = count_statements(&mut s, |s| {
        s.parents::<Requirement, Policy>(&all_reqs).unwrap()
    });
    assert_eq!(statements, 1);
    assert!(parents
        .iter()
        .zip(&all_reqs)
        .all(|(p, r)| p.as_ref().unwrap().id == r.policy_id));

    // has_one view and a diesel join over the generated tables.
    let first_child = s.child::<Policy, Requirement>(&policies[1]).unwrap();
    assert_eq!(first_child.unwrap().policy_id, policies[1].id);
    let joined: Vec<(String, String)> = s
        .load(
            requirements::table
                .inner_join(policies::table)
                .filter(policies::code.eq("POL-3"))
                .select((policies::code, requirements::text))
                .order(requirements::text),
        )
        .unwrap();
    assert_eq!(
        joined,
        [
            ("POL-3".to_string(), "R3.0".to_string()),
            ("POL-3".into(), "R3.1".into()),
            ("POL-3".into(), "R3.2".into())
        ]
    );
    let from_parent: i64 = s
        .count(
            policies::table
                .inner_join(requirements::table)
                .filter(policies::code.eq("POL-2"))
                .count(),
        )
        .unwrap();
    assert_eq!(from_parent, 2);
}

fn many_to_many_attach_detach(db: &TestDb) {
    create(db);
    let mut s = db.session().unwrap();
    let p = s.insert(Policy::new("ACC-1")).unwrap();
    let r1 = s
        .insert(Requirement {
            id: 0,
            policy_id: p.id,
            text: "MFA".into(),
        })
        .unwrap();
    let r2 = s
        .insert(Requirement {
            id: 0,
            policy_id: p.id,
            text: "Logs".into(),
        })
        .unwrap();
    let sox = s
        .insert(Tag {
            id: 0,
            name: "sox".into(),
        })
        .unwrap();
    let gdpr = s
        .insert(Tag {
            id: 0,
            name: "gdpr".into(),
        })
        .unwrap();
    s.attach(RequirementTag {
        requirement_id: r1.id,
        tag_id: sox.id,
    })
    .unwrap();
    s.attach(RequirementTag {
        requirement_id: r1.id,
        tag_id: gdpr.id,
    })
    .unwrap();
    s.attach(RequirementTag {
        requirement_id: r2.id,
        tag_id: sox.id,
    })
    .unwrap();
    let dup = s
        .attach(RequirementTag {
            requirement_id: r2.id,
            tag_id: sox.id,
        })
        .unwrap_err();
    assert!(matches!(dup, Error::Conflict { .. }), "{dup:?}");

    let (tags, statements) = count_statements(&mut s, |s| {
        s.related::<Requirement, RequirementTag, Tag>(&[r1.clone(), r2.clone()])
            .unwrap()
    });
    assert_eq!(statements, 2);
    let names = |ts: &Vec<Tag>| {
        let mut n: Vec<String> = ts.iter().map(|t| t.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&tags[0]), ["gdpr", "sox"]);
    assert_eq!(names(&tags[1]), ["sox"]);
    // The other direction uses the same join entity.
    let reqs = s
        .related::<Tag, RequirementTag, Requirement>(std::slice::from_ref(&sox))
        .unwrap();
    assert_eq!(reqs[0].len(), 2);

    s.detach(&RequirementTag {
        requirement_id: r1.id,
        tag_id: sox.id,
    })
    .unwrap();
    let tags = s
        .related::<Requirement, RequirementTag, Tag>(std::slice::from_ref(&r1))
        .unwrap();
    assert_eq!(names(&tags[0]), ["gdpr"]);
}

fn referential_actions_are_enforced(db: &TestDb) {
    create(db);
    let mut s = db.session().unwrap();
    let p = s.insert(Policy::new("REF-1")).unwrap();
    let r = s
        .insert(Requirement {
            id: 0,
            policy_id: p.id,
            text: "keep evidence".into(),
        })
        .unwrap();
    let t = s
        .insert(Tag {
            id: 0,
            name: "pci".into(),
        })
        .unwrap();
    s.attach(RequirementTag {
        requirement_id: r.id,
        tag_id: t.id,
    })
    .unwrap();
    let ex = s
        .insert(PolicyException {
            id: 0,
            requirement_id: Some(r.id),
            reason: "legacy".into(),
        })
        .unwrap();

    // A dangling reference is refused by the database.
    let err = s
        .insert(Requirement {
            id: 0,
            policy_id: 999_999,
            text: "orphan".into(),
        })
        .unwrap_err();
    assert!(matches!(err, Error::Constraint { .. }), "{err:?}");
    assert_eq!(
        err.field_errors()
            .unwrap()
            .fields
            .keys()
            .next()
            .map(String::as_str),
        Some("policy_id"),
        "{err:?}"
    );

    // restrict: a tag in use cannot go.
    let err = s.purge(&t).unwrap_err();
    assert!(matches!(err, Error::Constraint { .. }), "{err:?}");

    // cascade + set null: purging the requirement removes its links and keeps the exception.
    s.purge(&r).unwrap();
    assert_eq!(s.count(requirement_tags::table.count()).unwrap(), 0);
    let kept = s.get::<PolicyException>(&ex.id).unwrap();
    assert_eq!(kept.requirement_id, None);
    s.purge(&t).unwrap();

    // cascade from the policy (a hard delete; soft delete leaves children alone).
    let r2 = s
        .insert(Requirement {
            id: 0,
            policy_id: p.id,
            text: "second".into(),
        })
        .unwrap();
    s.delete(&p).unwrap();
    assert!(
        s.find::<Requirement>(&r2.id).unwrap().is_some(),
        "soft delete does not cascade"
    );
    s.purge(&p).unwrap();
    assert!(
        s.find::<Requirement>(&r2.id).unwrap().is_none(),
        "purge cascades"
    );
}

on_all_backends!(
    parents_children_without_n_plus_one,
    many_to_many_attach_detach,
    referential_actions_are_enforced
);
