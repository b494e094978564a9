use custodian::entity;

#[entity(has_many(Employee))]
struct Department {
    #[column(primary_key)]
    id: i64,
}

#[entity]
struct Employee {
    #[column(primary_key)]
    id: i64,
    department_id: i64,
}

fn main() {}
