use custodian::entity;

#[entity]
struct Control {
    #[skip]
    cache: Vec<String>,
}

fn main() {}
