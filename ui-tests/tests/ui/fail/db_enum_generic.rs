use custodian::DbEnum;

#[derive(DbEnum)]
enum Status<T> {
    Open,
    Other(T),
}

fn main() {}
