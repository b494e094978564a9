use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key, unique)]
    id: i32,
}

fn main() {}
