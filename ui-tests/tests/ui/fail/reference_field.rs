use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    code: &'static str,
}

fn main() {}
