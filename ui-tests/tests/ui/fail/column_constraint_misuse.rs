use custodian::entity;

#[entity]
struct Control {
    #[column(primary_key, unique)]
    id: i64,
    #[column(unique, index)]
    a: String,
    #[column(one_of("x", "y"))]
    b: i32,
    #[column(generated, updated_at)]
    c: Option<chrono::NaiveDateTime>,
    #[column(created_at, updated_at)]
    d: chrono::NaiveDateTime,
    #[column(range(min = 5, max = 1))]
    e: i32,
    #[column(range())]
    f: i32,
    #[column(range(low = 1))]
    g: i32,
    #[column(one_of())]
    h: String,
    #[column(one_of("x", 1))]
    i: String,
    #[column(one_of("x", "x"))]
    j: String,
    #[column(default = 5)]
    k: i32,
    #[column(check)]
    l: i32,
    #[column(version = "1")]
    m: i32,
}

fn main() {}
