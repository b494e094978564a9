use custodian::entity;

#[entity(subject = "owner")]
struct NothingEncrypted {
    #[column(primary_key)]
    id: i64,
    owner: String,
}

#[entity(subject = "nobody")]
struct UnknownSubject {
    #[column(primary_key)]
    id: i64,
    #[column(encrypted)]
    email: String,
}

#[entity(subject = "id")]
struct GeneratedSubject {
    #[column(primary_key, auto_increment)]
    id: i64,
    #[column(encrypted)]
    email: String,
}

#[entity(subject = "email")]
struct EncryptedSubject {
    #[column(primary_key)]
    id: i64,
    #[column(encrypted)]
    email: String,
}

fn main() {}
