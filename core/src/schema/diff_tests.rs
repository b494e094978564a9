//! Unit tests of [`super::diff`]: which changes two models differ by, in which order.

use super::*;
use crate::schema::loss::{losses, LossKind};
use crate::schema::model::{CheckDef, ForeignKeyDef, SNAPSHOT_FORMAT};
use crate::value::ColumnKind;

fn snap(tables: Vec<TableDef>) -> Snapshot {
    Snapshot {
        format: SNAPSHOT_FORMAT,
        tables,
    }
}

fn table(name: &str, columns: Vec<ColumnDef>) -> TableDef {
    let mut id = ColumnDef::new("id", ColumnKind::BigInt);
    id.primary_key = true;
    id.auto_increment = true;
    let mut all = vec![id];
    all.extend(columns);
    TableDef {
        table: name.into(),
        schema: None,
        columns: all,
        indexes: vec![],
    }
}

fn col(name: &str, kind: ColumnKind) -> ColumnDef {
    ColumnDef::new(name, kind)
}

fn ops(changes: &[SchemaChange]) -> &[AlterOp] {
    match changes {
        [SchemaChange::AlterTable(a)] => &a.ops,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_same_model_has_no_changes() {
    let s = snap(vec![table("t", vec![col("a", ColumnKind::Text)])]);
    assert!(diff(&s, &s).unwrap().is_empty());
}

#[test]
fn tables_are_created_and_dropped() {
    let a = table("a", vec![]);
    let b = table("b", vec![]);
    let changes = diff(&snap(vec![a.clone()]), &snap(vec![b.clone()])).unwrap();
    assert_eq!(
        changes,
        [
            SchemaChange::CreateTable(b),
            SchemaChange::DropTable(a.clone())
        ]
    );
    let lost = losses(&changes);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].kind, LossKind::DropTable);
    assert_eq!(lost[0].to_string(), "dropping table `a` deletes its rows");
}

#[test]
fn a_hinted_rename_keeps_the_column_and_reverses() {
    let mut code = col("code", ColumnKind::Text);
    code.unique = true;
    let old = snap(vec![table("t", vec![code.clone()])]);
    let mut renamed = code.clone();
    renamed.name = "ref".into();
    renamed.renamed_from = Some("code".into());
    let new = snap(vec![table("t", vec![renamed])]);
    let changes = diff(&old, &new).unwrap();
    let unique = |c: &str| IndexDef {
        name: format!("t_{c}_key"),
        columns: vec![c.into()],
        unique: true,
    };
    assert_eq!(
        ops(&changes),
        [
            AlterOp::DropIndex(unique("code")),
            AlterOp::RenameColumn {
                from: "code".into(),
                to: "ref".into()
            },
            AlterOp::AddIndex(unique("ref")),
        ]
    );
    assert!(losses(&changes).is_empty());
    let back = diff(&new, &undo_hints(&old, &changes)).unwrap();
    assert_eq!(
        ops(&back)[1],
        AlterOp::RenameColumn {
            from: "ref".into(),
            to: "code".into()
        }
    );
    // Without the hint it is a drop and an add, and the drop loses data.
    let mut plain = new.clone();
    plain.tables[0].columns[1].renamed_from = None;
    let changes = diff(&old, &plain).unwrap();
    let kinds: Vec<_> = losses(&changes).into_iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [LossKind::DropColumn, LossKind::NotNullWithoutDefault]
    );
}

#[test]
fn type_and_null_changes_are_judged() {
    let mut n = col("n", ColumnKind::Integer);
    n.nullable = true;
    let old = snap(vec![table(
        "t",
        vec![n.clone(), col("s", ColumnKind::Text)],
    )]);
    let mut wide = n.clone();
    wide.kind = ColumnKind::BigInt;
    wide.nullable = false;
    wide.default_sql = Some("0".into());
    let new = snap(vec![table("t", vec![wide, col("s", ColumnKind::Text)])]);
    let changes = diff(&old, &new).unwrap();
    assert_eq!(
        ops(&changes),
        [AlterOp::AlterColumn {
            from: "n".into(),
            to: "n".into()
        }]
    );
    assert!(losses(&changes).is_empty(), "widening, with a default");
    let mut narrow = n.clone();
    narrow.kind = ColumnKind::SmallInt;
    narrow.nullable = false;
    let new = snap(vec![table("t", vec![narrow, col("s", ColumnKind::Text)])]);
    let lost = losses(&diff(&old, &new).unwrap());
    assert_eq!(
        lost.iter().map(|l| l.kind.clone()).collect::<Vec<_>>(),
        [
            LossKind::NarrowType {
                from: ColumnKind::Integer,
                to: ColumnKind::SmallInt
            },
            LossKind::NotNullWithoutDefault
        ]
    );
    assert_eq!(lost[0].column.as_deref(), Some("n"));
}

#[test]
fn constraints_are_dropped_before_and_added_after_columns() {
    let old = snap(vec![table("t", vec![col("a", ColumnKind::Text)])]);
    let mut a = col("a", ColumnKind::Text);
    a.check = Some(CheckDef::Sql("a <> ''".into()));
    let mut p = col("p_id", ColumnKind::BigInt);
    p.nullable = true;
    p.references = Some(ForeignKeyDef {
        table: "p".into(),
        schema: None,
        columns: vec!["id".into()],
        on_delete: Default::default(),
        on_update: Default::default(),
    });
    let new = snap(vec![table("t", vec![a, p])]);
    let changes = diff(&old, &new).unwrap();
    let expected = [
        AlterOp::AddColumn {
            column: "p_id".into(),
        },
        AlterOp::AddCheck { column: "a".into() },
        AlterOp::AddIndex(IndexDef {
            name: "t_p_id_idx".into(),
            columns: vec!["p_id".into()],
            unique: false,
        }),
        AlterOp::AddForeignKey {
            column: "p_id".into(),
        },
    ];
    assert_eq!(ops(&changes), expected);
    let back = diff(&new, &old).unwrap();
    assert!(matches!(ops(&back)[0], AlterOp::DropForeignKey { .. }));
    assert!(matches!(ops(&back)[1], AlterOp::DropIndex(_)));
    assert!(matches!(ops(&back)[2], AlterOp::DropCheck { .. }));
    assert!(matches!(ops(&back)[3], AlterOp::DropColumn { .. }));
}

#[test]
fn a_foreign_key_is_refitted_around_a_type_change() {
    let mut p = col("p_id", ColumnKind::Integer);
    p.references = Some(ForeignKeyDef {
        table: "p".into(),
        schema: None,
        columns: vec!["id".into()],
        on_delete: Default::default(),
        on_update: Default::default(),
    });
    let old = snap(vec![table("t", vec![p.clone()])]);
    p.kind = ColumnKind::BigInt;
    let new = snap(vec![table("t", vec![p])]);
    let changes = diff(&old, &new).unwrap();
    assert_eq!(
        ops(&changes),
        [
            AlterOp::DropForeignKey {
                column: "p_id".into()
            },
            AlterOp::AlterColumn {
                from: "p_id".into(),
                to: "p_id".into()
            },
            AlterOp::AddForeignKey {
                column: "p_id".into()
            },
        ]
    );
}

#[test]
fn primary_key_changes_are_refused() {
    let old = snap(vec![table("t", vec![col("a", ColumnKind::Text)])]);
    let mut new = old.clone();
    new.tables[0].columns[0].kind = ColumnKind::Integer;
    let err = diff(&old, &new).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("table `t`"), "{err}");
}
