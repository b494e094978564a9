use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    count: u32,
}

fn main() {}
