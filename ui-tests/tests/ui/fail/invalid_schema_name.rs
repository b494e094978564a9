use custodian::entity;

#[entity(schema = "type")]
struct Control {
    #[column(primary_key)]
    id: i32,
}

fn main() {}
