use custodian::entity;

#[entity]
struct Department {
    #[column(primary_key)]
    id: i64,
}

#[entity]
struct Employee {
    #[column(primary_key)]
    id: i64,
    #[belongs_to(Department, on_delete = "delete")]
    department_id: i64,
}

fn main() {}
