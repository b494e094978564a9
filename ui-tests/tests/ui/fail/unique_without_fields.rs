use custodian::entity;

#[entity(unique)]
struct Control {
    #[column(primary_key)]
    id: i64,
}

fn main() {}
