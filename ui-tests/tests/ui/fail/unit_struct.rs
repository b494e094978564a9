use custodian::entity;

#[entity]
struct Control;

fn main() {}
