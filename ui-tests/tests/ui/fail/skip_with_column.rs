use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    #[column(name = "cache")]
    #[skip]
    cache: String,
}

fn main() {}
