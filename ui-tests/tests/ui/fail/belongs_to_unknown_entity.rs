use custodian::entity;

#[entity]
struct Employee {
    #[column(primary_key)]
    id: i64,
    #[belongs_to(Departmnet)]
    department_id: i64,
}

fn main() {}
