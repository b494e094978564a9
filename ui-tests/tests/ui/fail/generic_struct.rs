use custodian::entity;

#[entity]
struct Control<T> {
    #[column(primary_key)]
    id: i32,
    value: T,
}

fn main() {}
