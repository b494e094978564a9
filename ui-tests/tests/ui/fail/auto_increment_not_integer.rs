use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key, auto_increment)]
    id: String,
}

fn main() {}
