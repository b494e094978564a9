use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    digest: [u8; 32],
}

fn main() {}
