use custodian::entity;

#[entity]
struct Control {
    #[skip]
    #[column(primary_key)]
    id: i32,
    code: String,
}

fn main() {}
