use custodian::entity;

#[entity]
struct Wide {
    #[column(primary_key)]
    id: i32,
    c1: i32,
    c2: i32,
    c3: i32,
    c4: i32,
    c5: i32,
    c6: i32,
    c7: i32,
    c8: i32,
    c9: i32,
    c10: i32,
    c11: i32,
    c12: i32,
    c13: i32,
    c14: i32,
    c15: i32,
    c16: i32,
    c17: i32,
    c18: i32,
    c19: i32,
    c20: i32,
    c21: i32,
    c22: i32,
    c23: i32,
    c24: i32,
    c25: i32,
    c26: i32,
    c27: i32,
    c28: i32,
    c29: i32,
    c30: i32,
    c31: i32,
    c32: i32,
}

fn main() {}
