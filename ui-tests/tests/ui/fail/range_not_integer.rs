use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i64,
    #[column(range(min = 1, max = 5))]
    level: f64,
}

fn main() {}
