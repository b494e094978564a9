use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    #[column(primary_key)]
    id: i32,
}

fn main() {}
