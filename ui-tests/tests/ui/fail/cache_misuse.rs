use custodian::entity;

#[entity(cache(size = 10))]
#[derive(Clone)]
struct UnknownOption {
    #[column(primary_key)]
    id: i32,
}

#[entity(cache(ttl_secs = 0))]
#[derive(Clone)]
struct ZeroTtl {
    #[column(primary_key)]
    id: i32,
}

#[entity(cache = 60)]
#[derive(Clone)]
struct CacheWithValue {
    #[column(primary_key)]
    id: i32,
}

#[entity(cache, cache(capacity = 5))]
#[derive(Clone)]
struct CacheTwice {
    #[column(primary_key)]
    id: i32,
}

fn main() {}
