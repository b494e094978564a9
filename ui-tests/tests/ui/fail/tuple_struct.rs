use custodian::entity;

#[entity]
struct Control(i32, String);

fn main() {}
