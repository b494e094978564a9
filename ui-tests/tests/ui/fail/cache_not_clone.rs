use custodian::entity;

// The cache hands out copies of a row: a cached entity must be `Clone`, and the error points
// at `cache`.
#[entity(cache(capacity = 100))]
struct Control {
    #[column(primary_key)]
    id: i32,
    title: String,
}

fn main() {}
