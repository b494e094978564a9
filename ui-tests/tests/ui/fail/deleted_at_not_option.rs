use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i64,
    #[column(deleted_at)]
    deleted_at: chrono::NaiveDateTime,
}

fn main() {}
