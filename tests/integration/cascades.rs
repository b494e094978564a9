//! Rows a database cascade deletes or sets to NULL when custodian deletes their parent get one
//! audit record each, in the same transaction, with their true before and after images; drift
//! detection stays clean.

use crate::common::TestDb;
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;

#[entity(table = "folders")]
#[derive(Debug, Clone, PartialEq)]
pub struct Folder {
    #[column(primary_key)]
    pub id: i64,
    pub name: String,
}

/// Deleted with its folder.
#[entity(table = "files")]
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    #[column(primary_key)]
    pub id: i64,
    #[belongs_to(Folder, on_delete = "cascade")]
    pub folder_id: i64,
    pub name: String,
}

/// Deleted with its file (so, transitively, with the folder).
#[entity(table = "revisions")]
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    #[column(primary_key)]
    pub id: i64,
    #[belongs_to(File, on_delete = "cascade")]
    pub file_id: i64,
    pub note: String,
    #[column(deleted_at)]
    pub deleted_at: Option<chrono::NaiveDateTime>,
}

/// Kept, without its folder, when the folder goes.
#[entity(table = "bookmarks")]
#[derive(Debug, Clone, PartialEq)]
pub struct Bookmark {
    #[column(primary_key)]
    pub id: i64,
    #[belongs_to(Folder, on_delete = "set_null")]
    pub folder_id: Option<i64>,
    pub label: String,
}

/// (entity, key, operation) of every audit record of these entities.
fn ops(s: &mut Session, entities: &[&str]) -> Vec<(String, String, String)> {
    let entities: Vec<String> = entities.iter().map(|e| e.to_string()).collect();
    let mut rows: Vec<(String, String, String)> = s
        .load(
            a::table
                .filter(a::entity.eq_any(entities))
                .select((a::entity, a::entity_key, a::op))
                .order(a::id),
        )
        .unwrap();
    rows.sort();
    rows
}

fn cascades_are_recorded(db: &TestDb) {
    db.create_tables(&[Folder::META, File::META, Revision::META, Bookmark::META])
        .unwrap();
    let mut s = db.session().unwrap();
    for id in [1, 2] {
        s.insert(Folder {
            id,
            name: format!("folder {id}"),
        })
        .unwrap();
    }
    // Folder 1 holds files 10 and 11; file 10 has revisions 100 and 101 (one soft-deleted).
    for (id, folder_id) in [(10, 1), (11, 1), (20, 2)] {
        s.insert(File {
            id,
            folder_id,
            name: format!("file {id}"),
        })
        .unwrap();
    }
    for (id, file_id) in [(100, 10), (101, 10), (200, 20)] {
        s.insert(Revision {
            id,
            file_id,
            note: format!("rev {id}"),
            deleted_at: None,
        })
        .unwrap();
    }
    s.delete_by_key::<Revision>(&101).unwrap();
    for (id, folder_id) in [(1000, Some(1)), (1001, Some(1)), (2000, Some(2))] {
        s.insert(Bookmark {
            id,
            folder_id,
            label: format!("mark {id}"),
        })
        .unwrap();
    }
    let before = s.count(a::table.count()).unwrap();

    s.delete_by_key::<Folder>(&1).unwrap();

    // One record per row the cascade removed or changed, and one for the folder.
    assert_eq!(s.count(a::table.count()).unwrap() - before, 1 + 2 + 2 + 2);
    let after = ops(&mut s, &["files", "revisions", "bookmarks"]);
    for (entity, key, op) in [
        ("files", "[10]", "delete"),
        ("files", "[11]", "delete"),
        ("revisions", "[100]", "delete"),
        ("revisions", "[101]", "delete"),
        ("bookmarks", "[1000]", "update"),
        ("bookmarks", "[1001]", "update"),
    ] {
        let record = (entity.to_string(), key.to_string(), op.to_string());
        assert!(after.contains(&record), "no record {record:?} in {after:?}");
    }
    assert!(!after.iter().any(|(_, k, o)| k == "[20]" && o == "delete"));

    // The records hold the rows as they were and as the database left them.
    let history = s.history::<Bookmark>(&1000).unwrap();
    let change = history.last().unwrap();
    assert_eq!(change.record.op, "update");
    assert_eq!(
        change.value,
        Some(Bookmark {
            id: 1000,
            folder_id: None,
            label: "mark 1000".into()
        })
    );
    assert_eq!(s.get::<Bookmark>(&1000).unwrap().folder_id, None);
    let revision = s.history::<Revision>(&101).unwrap();
    assert_eq!(revision.last().unwrap().value, None);
    assert!(revision.last().unwrap().record.before.is_some());

    assert_eq!(s.audit_drift::<Folder>().unwrap(), []);
    assert_eq!(s.audit_drift::<File>().unwrap(), []);
    assert_eq!(s.audit_drift::<Revision>().unwrap(), []);
    assert_eq!(s.audit_drift::<Bookmark>().unwrap(), []);

    // A rolled-back parent delete leaves no cascade record either.
    let count = s.count(a::table.count()).unwrap();
    let failed: custodian::Result<()> = db.transaction(|tx| {
        tx.delete_by_key::<Folder>(&2)?;
        Err(custodian::Error::Forbidden("changed my mind".into()))
    });
    assert!(failed.is_err());
    assert_eq!(s.count(a::table.count()).unwrap(), count);
    assert_eq!(s.get::<File>(&20).unwrap().folder_id, 2);
}

on_all_backends!(cascades_are_recorded);
