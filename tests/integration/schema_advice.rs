//! Schema advice on every backend: custodian's own DDL indexes every foreign key column, so a
//! schema it created gets no advice; once the index is gone behind its back (raw SQL: a plain
//! `DROP INDEX` on PostgreSQL and SQLite; on MariaDB, whose InnoDB keeps an index for every
//! foreign key, only after the constraint is dropped too) the foreign key is reported, by
//! `Db::schema_advice` and in `Db::health`, without making the database not ready.

use crate::common::TestDb;
use custodian::health::HealthOptions;
use custodian::prelude::*;
use custodian::{Advice, BackendKind};

/// A parent of the advice test.
#[entity(table = "sa_parents", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Parent {
    #[column(primary_key)]
    pub id: i64,
    pub name: String,
}

/// A child referencing its parent.
#[entity(table = "sa_children", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    #[column(primary_key)]
    pub id: i64,
    #[belongs_to(Parent)]
    pub parent_id: i64,
}

fn an_unindexed_foreign_key_is_advised(db: &TestDb) {
    db.create_table::<Parent>().unwrap();
    db.create_table::<Child>().unwrap();
    let entities = [Parent::META, Child::META];
    assert_eq!(db.schema_advice(&entities).unwrap(), [], "{}", db.kind);

    db.raw_sql(match db.kind {
        BackendKind::Mysql => {
            "ALTER TABLE sa_children DROP FOREIGN KEY sa_children_parent_id_fkey; \
             ALTER TABLE sa_children DROP INDEX sa_children_parent_id_idx"
        }
        _ => "DROP INDEX sa_children_parent_id_idx",
    });
    let advice = db.schema_advice(&entities).unwrap();
    assert_eq!(
        advice,
        [Advice::UnindexedForeignKey {
            table: "sa_children".into(),
            column: "parent_id".into(),
            references: "sa_parents".into(),
        }],
        "{}",
        db.kind
    );
    let report = db.health(&HealthOptions {
        entities: entities.to_vec(),
        ..HealthOptions::default()
    });
    assert_eq!(report.advice.len(), 1, "{report}");
    assert!(
        report.advice[0].contains("sa_children.parent_id"),
        "{report}"
    );
    assert!(report.to_string().contains("advice: sa_children.parent_id"));
    assert!(report.is_ready(), "advice is not a problem: {report}");

    // An index the column leads again silences it; one it does not lead does not.
    db.raw_sql("CREATE INDEX sa_other ON sa_children (id, parent_id)");
    assert_eq!(db.schema_advice(&entities).unwrap().len(), 1, "{}", db.kind);
    db.raw_sql("CREATE INDEX sa_lead ON sa_children (parent_id, id)");
    assert_eq!(db.schema_advice(&entities).unwrap(), [], "{}", db.kind);
}

on_all_backends!(an_unindexed_foreign_key_is_advised);
