use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key = true)]
    id: i32,
}

fn main() {}
