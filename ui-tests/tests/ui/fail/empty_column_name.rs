use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key, name = "")]
    id: i32,
}

fn main() {}
