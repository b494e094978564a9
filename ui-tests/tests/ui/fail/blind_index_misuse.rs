use custodian::entity;

#[entity(subject = "owner")]
struct UnknownSource {
    #[column(primary_key)]
    id: i64,
    owner: String,
    #[column(encrypted)]
    email: String,
    #[column(blind_index = "mail")]
    email_index: String,
}

#[entity(subject = "owner")]
struct PlainSource {
    #[column(primary_key)]
    id: i64,
    owner: String,
    #[column(encrypted)]
    email: String,
    #[column(blind_index = "owner")]
    owner_index: String,
}

#[entity(subject = "owner")]
struct NullabilityMismatch {
    #[column(primary_key)]
    id: i64,
    owner: String,
    #[column(encrypted)]
    email: Option<String>,
    #[column(blind_index = "email")]
    email_index: String,
}

fn main() {}
