use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    range: (i32, i32),
}

fn main() {}
