use custodian::DbEnum;

#[derive(DbEnum)]
enum Status {}

fn main() {}
