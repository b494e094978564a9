use custodian::DbEnum;

#[derive(DbEnum)]
enum Status {
    Open,
    Closed { reason: String },
}

fn main() {}
