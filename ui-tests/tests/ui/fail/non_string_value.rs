use custodian::entity;

#[entity(table = controls)]
struct Control {
    #[column(primary_key)]
    id: i32,
}

fn main() {}
