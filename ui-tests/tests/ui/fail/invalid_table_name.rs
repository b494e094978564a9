use custodian::entity;

#[entity(table = "control-list")]
struct Control {
    #[column(primary_key)]
    id: i32,
}

fn main() {}
