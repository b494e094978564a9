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
    #[belongs_to(Department)]
    department_id: Option<i32>,
}

fn main() {}
