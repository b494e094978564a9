use custodian::entity;

#[entity]
struct Type {
    #[column(primary_key)]
    id: i32,
}

fn main() {}
