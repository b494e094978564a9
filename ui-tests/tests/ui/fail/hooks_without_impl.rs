use custodian::entity;

#[entity(hooks)]
struct Control {
    #[column(primary_key)]
    id: i64,
}

fn main() {}
