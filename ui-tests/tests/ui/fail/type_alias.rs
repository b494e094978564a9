use custodian::entity;

type Id = i32;

#[entity]
struct Control {
    #[column(primary_key)]
    id: Id,
}

fn main() {}
