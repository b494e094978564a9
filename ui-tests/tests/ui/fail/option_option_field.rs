use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    note: Option<Option<String>>,
}

fn main() {}
