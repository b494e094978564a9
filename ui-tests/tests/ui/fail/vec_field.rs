use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    tags: Vec<String>,
}

fn main() {}
