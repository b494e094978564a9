use custodian::entity;

#[entity(table = "controls", tabel = "x")]
struct Control {
    #[column(primary_key)]
    id: i32,
}

fn main() {}
