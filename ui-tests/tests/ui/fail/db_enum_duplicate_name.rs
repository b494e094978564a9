use custodian::DbEnum;

#[derive(DbEnum)]
enum Status {
    Open,
    #[db_enum(name = "Open")]
    Reopened,
}

fn main() {}
