use custodian::entity;

#[entity]
enum Control {
    A,
}

fn main() {}
