use custodian::DbEnum;

#[derive(DbEnum)]
struct Status {
    open: bool,
}

fn main() {}
