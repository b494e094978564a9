use custodian::entity;

#[entity(hooks = "yes")]
struct Control {
    #[column(primary_key)]
    id: i64,
}

fn main() {}
