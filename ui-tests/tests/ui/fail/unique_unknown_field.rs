use custodian::entity;

#[entity(unique(framework, cod))]
struct Control {
    #[column(primary_key)]
    id: i64,
    framework: String,
    code: String,
}

fn main() {}
