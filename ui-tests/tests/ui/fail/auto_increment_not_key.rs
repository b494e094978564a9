use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    #[column(auto_increment)]
    seq: i64,
}

fn main() {}
