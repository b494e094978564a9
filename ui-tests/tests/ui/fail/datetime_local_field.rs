use custodian::entity;

use chrono::{DateTime, Local};

#[entity]
struct Control {
    #[column(primary_key)]
    id: i32,
    at: DateTime<Local>,
}

fn main() {
    let _: Option<DateTime<Local>> = None;
}
