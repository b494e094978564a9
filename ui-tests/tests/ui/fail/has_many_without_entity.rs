use custodian::entity;

#[entity(has_many)]
struct Control {
    #[column(primary_key)]
    id: i64,
}

fn main() {}
