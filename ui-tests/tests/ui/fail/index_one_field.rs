use custodian::entity;

#[entity(index(framework))]
struct Control {
    #[column(primary_key)]
    id: i64,
    framework: String,
}

fn main() {}
