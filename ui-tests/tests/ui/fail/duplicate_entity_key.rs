use custodian::entity;

#[entity(table = "controls", table = "other")]
struct Control {
    #[column(primary_key)]
    id: i32,
}

fn main() {}
