use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: Option<i32>,
}

fn main() {}
