use custodian::DbEnum;

#[derive(DbEnum)]
enum Status {
    #[db_enum(rename = "open")]
    Open,
}

fn main() {}
