use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    code: String,
    #[column(name = "CODE")]
    legacy_code: String,
}

fn main() {}
