use custodian::entity;

struct Owner {
    name: String,
}

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    owner: Owner,
}

fn main() {}
