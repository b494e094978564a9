use custodian::entity;

#[entity(table = "code")]
struct Control {
    #[column(primary_key)]
    id: i32,
    code: String,
}

fn main() {}
