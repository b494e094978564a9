use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key, generated)]
    id: i32,
}

fn main() {}
