use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i64,
    #[column(version)]
    version: Option<i32>,
}

fn main() {}
