use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i64,
    #[column(version)]
    version: i32,
    #[column(version)]
    revision: i64,
}

fn main() {}
