use custodian::entity;

#[entity]
struct Department {
    #[column(primary_key)]
    id: i64,
}

#[entity]
struct Transfer {
    #[column(primary_key)]
    id: i64,
    #[belongs_to(Department)]
    from_department: i64,
    #[belongs_to(Department)]
    to_department: i64,
}

fn main() {}
