use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i64,
    #[column(range(min = 1), check = "level < 10")]
    level: i32,
}

fn main() {}
