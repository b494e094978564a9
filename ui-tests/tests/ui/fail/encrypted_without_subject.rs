use custodian::entity;

#[entity]
struct Client {
    #[column(primary_key)]
    id: i64,
    #[column(encrypted)]
    email: String,
}

fn main() {}
