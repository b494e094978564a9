use custodian::entity;

#[entity(validate)]
struct Control {
    #[column(primary_key)]
    id: i64,
}

fn main() {}
