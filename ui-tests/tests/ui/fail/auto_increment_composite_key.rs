use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key, auto_increment)]
    id: i32,
    #[column(primary_key)]
    framework: String,
}

fn main() {}
