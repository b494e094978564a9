use custodian::entity;

#[entity(subject = "owner")]
struct Client {
    #[column(primary_key)]
    id: i64,
    owner: String,
    #[column(encrypted)]
    salary: i64,
    #[column(encrypted, unique)]
    email: String,
    #[column(encrypted = true)]
    phone: String,
    #[column(encrypted, blind_index = "email")]
    fax: String,
    #[column(blind_index = "email")]
    email_index: i32,
}

fn main() {}
