use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i64,
    #[column(created_at)]
    created_at: chrono::NaiveDate,
}

fn main() {}
