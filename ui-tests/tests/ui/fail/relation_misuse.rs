use custodian::entity;

#[entity]
struct Department {
    #[column(primary_key)]
    id: i64,
}

#[entity(has_many(Department))]
struct Employee {
    #[column(primary_key)]
    id: i64,
    #[belongs_to(Department)]
    department_id: i64,
    #[skip]
    #[belongs_to(Department)]
    skipped: i64,
    #[belongs_to]
    a: i64,
    #[belongs_to(on_delete = "cascade")]
    b: i64,
    #[belongs_to(Vec<Department>)]
    c: i64,
    #[belongs_to(Department, on_delete = cascade)]
    d: i64,
    #[belongs_to(Department, on_delete = "cascade", on_delete = "restrict")]
    e: i64,
    #[belongs_to(Department)]
    #[belongs_to(Employee)]
    f: i64,
}

fn main() {}
