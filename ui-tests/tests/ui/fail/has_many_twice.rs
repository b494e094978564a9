use custodian::entity;

#[entity(has_many(Employee), has_one(Employee))]
struct Department {
    #[column(primary_key)]
    id: i64,
}

#[entity]
struct Employee {
    #[column(primary_key)]
    id: i64,
    #[belongs_to(Department)]
    department_id: i64,
}

fn main() {}
