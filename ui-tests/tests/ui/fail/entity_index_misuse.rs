use custodian::entity;

#[entity(unique(a, a), index(a, skipped), unique(a, b), unique(a, b))]
struct Control {
    #[column(primary_key)]
    id: i64,
    a: String,
    b: String,
    #[skip]
    skipped: String,
}

fn main() {}
