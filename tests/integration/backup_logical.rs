//! Logical export and import between engines: SQLite to PostgreSQL, PostgreSQL to MariaDB and
//! MariaDB to SQLite. The imported rows must digest exactly as the source's (the canonical
//! form is the same on every engine), the audit chain must verify on the target against the
//! export's checkpoint, and the target application must write on (key generators moved past
//! the imported rows, the trail sealing on). A tampered export file is refused and nothing of
//! it stays.

use crate::backup::{bk_entries, entry, key, populate, Dir, Entry};
use crate::common::TestDb;
use custodian::backup;
use custodian::prelude::*;
use custodian::BackendKind;

fn moves_with_its_chain(from: BackendKind, to: BackendKind) {
    let source = TestDb::new(from);
    populate(&source, 30);
    let dir = Dir::new("logical");
    let manifest = backup::export(&source, &dir.join("x"), &key()).unwrap();
    assert_eq!(manifest.body.kind, backup::LOGICAL);
    assert_eq!(manifest.body.tables["bk_entries"].rows, 29);

    let target = TestDb::new(to);
    target.create_table::<Entry>().unwrap();
    let trusted = [key().verifying_key()];
    backup::import_into(&dir.join("x"), &target, &trusted).unwrap();
    let check = backup::verify(&target, &manifest, &trusted).unwrap();
    assert_eq!(check.findings, vec![], "{from} -> {to}");
    assert_eq!(
        check.rows,
        manifest.body.tables.values().map(|t| t.rows).sum::<u64>()
    );
    // Value for value: the entities read back as they were written.
    let mut s = target.session().unwrap();
    let rows: Vec<Entry> = s.select(bk_entries::table.order(bk_entries::id)).unwrap();
    let mut expected: Vec<Entry> = (1..=30)
        .filter(|i| *i != 2)
        .map(|i| Entry { id: i, ..entry(i) })
        .collect();
    expected[0].note = Some("updated".into());
    assert_eq!(rows, expected, "{from} -> {to}");
    // The application writes on, and the trail seals on and verifies.
    let added = s.insert(entry(31)).unwrap();
    assert_eq!(added.id, 31);
    target.seal_audit().unwrap();
    let report = target.verify_audit(None).unwrap();
    assert!(report.is_intact(), "{:?}", report.damage);
}

#[test]
fn sqlite_to_postgres() {
    moves_with_its_chain(BackendKind::Sqlite, BackendKind::Postgres);
}

#[test]
fn postgres_to_mariadb() {
    moves_with_its_chain(BackendKind::Postgres, BackendKind::Mysql);
}

#[test]
fn mariadb_to_sqlite() {
    moves_with_its_chain(BackendKind::Mysql, BackendKind::Sqlite);
}

/// One value changed in an export file: the import checks each file against the manifest's
/// digest and rolls back everything.
fn a_tampered_export_is_refused(db: &TestDb) {
    let source = TestDb::new(BackendKind::Sqlite);
    populate(&source, 10);
    let dir = Dir::new("tampered");
    backup::export(&source, &dir.join("x"), &key()).unwrap();
    let file = dir.join("x/tables/bk_entries.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let tampered = text.replacen("\"acct-3\"", "\"acct-4\"", 1);
    assert_ne!(text, tampered);
    std::fs::write(&file, tampered).unwrap();

    db.create_table::<Entry>().unwrap();
    let err = backup::import_into(&dir.join("x"), db, &[key().verifying_key()]).unwrap_err();
    assert_eq!(
        err.integrity_kind(),
        Some(custodian::IntegrityKind::Backup),
        "{err}"
    );
    assert!(err.to_string().contains("bk_entries"), "{err}");
    let mut s = db.session().unwrap();
    assert_eq!(s.count(bk_entries::table.count()).unwrap(), 0);
}

on_all_backends!(a_tampered_export_is_refused);

/// A parent of the load-order test, named to sort after its child.
#[entity(table = "bl_z_parents", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct ZParent {
    #[column(primary_key)]
    pub id: i64,
    pub name: String,
}

/// A child whose table name sorts before its parent's.
#[entity(table = "bl_a_children", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct AChild {
    #[column(primary_key)]
    pub id: i64,
    #[belongs_to(ZParent)]
    pub parent_id: i64,
}

/// Tables load parents first whatever their names: a child table named before its parent
/// imports on every engine (the database checks each foreign key as the rows go in).
fn parents_load_before_their_children(db: &TestDb) {
    let source = TestDb::new(BackendKind::Sqlite);
    source.create_table::<ZParent>().unwrap();
    source.create_table::<AChild>().unwrap();
    {
        let mut s = source.session().unwrap();
        s.insert(ZParent {
            id: 1,
            name: "p".into(),
        })
        .unwrap();
        s.insert(AChild {
            id: 1,
            parent_id: 1,
        })
        .unwrap();
    }
    let dir = Dir::new("order");
    backup::export(&source, &dir.join("x"), &key()).unwrap();
    db.create_table::<ZParent>().unwrap();
    db.create_table::<AChild>().unwrap();
    let trusted = [key().verifying_key()];
    let manifest = backup::import_into(&dir.join("x"), db, &trusted).unwrap();
    let check = backup::verify(db, &manifest, &trusted).unwrap();
    assert_eq!(check.findings, vec![], "{}", db.kind);
    let mut s = db.session().unwrap();
    assert_eq!(s.count(bl_a_children::table.count()).unwrap(), 1);
}

on_all_backends!(parents_load_before_their_children);
