use custodian::entity;

use custodian::diesel::prelude::*;

#[entity(table = "controls")]
struct Control {
    #[column(primary_key)]
    id: i32,
    code: String,
}

fn query() {
    let _ = controls::table.filter(controls::code.eq(5));
}

fn main() {}
