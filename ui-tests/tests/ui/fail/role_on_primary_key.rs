use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key, version)]
    id: i64,
}

fn main() {}
