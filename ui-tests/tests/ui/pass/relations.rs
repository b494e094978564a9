//! `#[belongs_to]`, `has_many`, `has_one` and many-to-many through a join entity: metadata,
//! foreign keys the database enforces, session loading, and diesel joins.
#![deny(missing_docs)]

use custodian::prelude::*;
use custodian::{BelongsTo, RefAction};

/// A department.
#[entity(table = "departments", has_many(Employee), has_one(Budget))]
#[derive(Debug, Clone, PartialEq)]
pub struct Department {
    /// Key.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Name.
    pub name: String,
}

/// An employee: belongs to a department, optionally reports to another employee.
#[entity(table = "employees", has_many(Membership))]
#[derive(Debug, Clone, PartialEq)]
pub struct Employee {
    /// Key.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Department: deleting it deletes its employees.
    #[belongs_to(Department, on_delete = "cascade", on_update = "restrict")]
    pub department_id: i64,
    /// Manager, if any: `NULL` when the manager goes.
    #[belongs_to(Self, on_delete = "set_null")]
    #[column(name = "manager")]
    pub manager_id: Option<i64>,
    /// Soft delete: deleted employees are not children any more.
    #[column(deleted_at)]
    pub deleted_at: Option<chrono::NaiveDateTime>,
}

/// At most one budget per department.
#[entity(table = "budgets")]
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Key.
    #[column(primary_key, auto_increment)]
    pub id: i32,
    /// Department (nullable, default actions).
    #[belongs_to(Department)]
    #[column(unique)]
    pub department: Option<i64>,
    /// Amount in cents.
    pub cents: i64,
}

/// A project.
#[entity(table = "projects", has_many(Membership))]
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Key chosen by the application.
    #[column(primary_key)]
    pub code: String,
}

/// Many-to-many between employees and projects.
#[entity(table = "memberships")]
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// Employee.
    #[column(primary_key)]
    #[belongs_to(Employee, on_delete = "cascade")]
    pub employee: i64,
    /// Project.
    #[column(primary_key)]
    #[belongs_to(crate::Project, on_delete = "cascade")]
    pub project: String,
}

diesel::allow_tables_to_appear_in_same_query!(departments, employees, budgets, projects, memberships);

fn main() -> custodian::Result<()> {
    let fk = Employee::META.column("department_id").unwrap().references.unwrap();
    assert_eq!((fk.parent)().table, "departments");
    assert_eq!((fk.on_delete, fk.on_update), (RefAction::Cascade, RefAction::Restrict));
    let fk = Employee::META.column("manager_id").unwrap().references.unwrap();
    assert_eq!(((fk.parent)().table, fk.on_delete, fk.on_update), ("employees", RefAction::SetNull, RefAction::NoAction));
    assert_eq!(<Employee as BelongsTo<Department>>::FOREIGN_KEY, "department_id");
    assert_eq!(<Employee as BelongsTo<Employee>>::FOREIGN_KEY, "manager_id");
    assert_eq!(<Membership as BelongsTo<Project>>::FOREIGN_KEY, "project");

    let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?.acting_as(custodian::Principal::new("ui-test"));
    db.create_tables(&[Membership::META, Project::META, Budget::META, Employee::META, Department::META])?;
    let mut s = db.session()?;
    let ops = s.insert(Department { id: 0, name: "ops".into() })?;
    let dev = s.insert(Department { id: 0, name: "dev".into() })?;
    let empty = s.insert(Department { id: 0, name: "empty".into() })?;
    let emp = |name: &str, department_id: i64, manager_id: Option<i64>| Employee {
        id: 0,
        name: name.into(),
        department_id,
        manager_id,
        deleted_at: None,
    };
    let ann = s.insert(emp("ann", ops.id, None))?;
    let bob = s.insert(emp("bob", ops.id, Some(ann.id)))?;
    let cid = s.insert(emp("cid", dev.id, Some(ann.id)))?;
    s.insert(Budget { id: 0, department: Some(dev.id), cents: 100 })?;
    s.insert(Budget { id: 0, department: None, cents: 5 })?;

    // The database enforces the foreign key.
    assert!(s.insert(emp("ghost", 999, None)).is_err());

    // Parents and children, one statement per relation.
    assert_eq!(s.parent::<Employee, Department>(&bob)?, Some(ops.clone()));
    assert_eq!(s.parent::<Employee, Employee>(&bob)?, Some(ann.clone()));
    assert_eq!(s.parent::<Employee, Employee>(&ann)?, None);
    let parents = s.parents::<Employee, Department>(&[ann.clone(), cid.clone()])?;
    assert_eq!(parents, [Some(ops.clone()), Some(dev.clone())]);
    let kids = s.children::<Department, Employee>(&[ops.clone(), dev.clone(), empty.clone()])?;
    let names: Vec<Vec<&str>> = kids.iter().map(|k| k.iter().map(|e| e.name.as_str()).collect()).collect();
    assert_eq!(names.len(), 3);
    assert_eq!(names[1], ["cid"]);
    assert!(names[2].is_empty());
    let mut ops_names = names[0].clone();
    ops_names.sort_unstable();
    assert_eq!(ops_names, ["ann", "bob"]);
    let reports = s.children::<Employee, Employee>(std::slice::from_ref(&ann))?;
    assert_eq!(reports[0].len(), 2);
    assert_eq!(s.child::<Department, Budget>(&dev)?.map(|b| b.cents), Some(100));
    assert_eq!(s.child::<Department, Budget>(&ops)?, None);

    // Soft-deleted children are not loaded.
    s.delete(&bob)?;
    assert_eq!(s.children::<Department, Employee>(std::slice::from_ref(&ops))?[0].len(), 1);

    // Many-to-many through Membership.
    let p1 = s.insert(Project { code: "p1".into() })?;
    let p2 = s.insert(Project { code: "p2".into() })?;
    s.attach(Membership { employee: ann.id, project: "p1".into() })?;
    s.attach(Membership { employee: ann.id, project: "p2".into() })?;
    let link = s.attach(Membership { employee: cid.id, project: "p2".into() })?;
    let projects = s.related::<Employee, Membership, Project>(&[ann.clone(), cid.clone()])?;
    assert_eq!(projects[0].len(), 2);
    assert_eq!(projects[1], std::slice::from_ref(&p2));
    let people = s.related::<Project, Membership, Employee>(&[p1.clone(), p2.clone()])?;
    assert_eq!(people[0], std::slice::from_ref(&ann));
    assert_eq!(people[1].len(), 2);
    s.detach(&link)?;
    assert!(s.related::<Employee, Membership, Project>(std::slice::from_ref(&cid))?[0].is_empty());

    // diesel joins in both directions.
    let rows: Vec<(String, String)> = s.load(
        employees::table
            .inner_join(departments::table)
            .select((employees::name, departments::name))
            .order(employees::name),
    )?;
    assert_eq!(rows[0], ("ann".to_string(), "ops".to_string()));
    let rows: Vec<(String, i64)> = s.load(
        departments::table
            .inner_join(budgets::table)
            .select((departments::name, budgets::cents)),
    )?;
    assert_eq!(rows, [("dev".to_string(), 100)]);
    let n: i64 = s.count(projects::table.inner_join(memberships::table).count())?;
    assert_eq!(n, 2);
    let n: i64 = s.count(memberships::table.inner_join(employees::table).count())?;
    assert_eq!(n, 2);

    // on_delete = "cascade": purging the department removes its employees (and their links);
    // on_delete = "set_null": their reports lose their manager.
    s.purge(&ops)?;
    assert!(s.find_with_deleted::<Employee>(&ann.id)?.is_none());
    assert_eq!(s.find::<Employee>(&cid.id)?.unwrap().manager_id, None);
    Ok(())
}
