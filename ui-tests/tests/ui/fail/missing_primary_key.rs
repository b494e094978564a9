use custodian::entity;

#[entity]
struct Control {
    id: i32,
    code: String,
}

fn main() {}
