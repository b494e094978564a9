use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key, uniq)]
    id: i32,
}

fn main() {}
