//! The benchmarks' item table twice: custodian's entities on it, and plain diesel's schema and
//! structs for it, as a diesel user would write them (the `crud` and `read_by_key` benches).

#![allow(dead_code)] // each bench uses its own subset

use model::Item;

/// The custodian side: one entity.
pub(crate) mod model {
    use custodian::entity;

    /// A row of the benchmark table; not audited, so it measures custodian against diesel.
    #[entity(table = "bench_items", unaudited)]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Item {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub code: String,
        pub title: String,
        pub owner: Option<String>,
        pub risk: i32,
        pub active: bool,
    }

    /// The same row in its own table, audited (custodian's default): every write also appends
    /// a sealed audit record in the same transaction.
    #[entity(table = "bench_items_audited")]
    #[derive(Debug, Clone, PartialEq)]
    pub struct AuditedItem {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub code: String,
        pub title: String,
        pub owner: Option<String>,
        pub risk: i32,
        pub active: bool,
    }

    impl From<Item> for AuditedItem {
        fn from(i: Item) -> Self {
            AuditedItem {
                id: i.id,
                code: i.code,
                title: i.title,
                owner: i.owner,
                risk: i.risk,
                active: i.active,
            }
        }
    }
}

/// The plain diesel side: its own schema and structs for the same table.
pub(crate) mod plain {
    diesel::table! {
        bench_items (id) {
            id -> BigInt,
            code -> Text,
            title -> Text,
            owner -> Nullable<Text>,
            risk -> Integer,
            active -> Bool,
        }
    }

    diesel::table! {
        /// The audited entity's table (only the key: clean-up between passes).
        bench_items_audited (id) {
            id -> BigInt,
        }
    }

    /// A loaded row.
    #[derive(Debug, diesel::Queryable, diesel::Selectable)]
    #[diesel(table_name = bench_items)]
    #[allow(dead_code)] // read through `black_box` only
    pub struct Row {
        pub id: i64,
        pub code: String,
        pub title: String,
        pub owner: Option<String>,
        pub risk: i32,
        pub active: bool,
    }

    /// A row to insert (the key is generated) and, with the key, to update: every non-key
    /// column, as custodian's update sets them.
    #[derive(diesel::Insertable, diesel::AsChangeset)]
    #[diesel(
        table_name = bench_items,
        treat_none_as_default_value = false,
        treat_none_as_null = true
    )]
    pub struct NewRow<'a> {
        pub code: &'a str,
        pub title: &'a str,
        pub owner: Option<&'a str>,
        pub risk: i32,
        pub active: bool,
    }

    impl<'a> From<&'a super::Item> for NewRow<'a> {
        fn from(i: &'a super::Item) -> Self {
            NewRow {
                code: &i.code,
                title: &i.title,
                owner: i.owner.as_deref(),
                risk: i.risk,
                active: i.active,
            }
        }
    }
}

pub(crate) fn sample(tag: &str, i: usize) -> Item {
    Item {
        id: 0,
        code: format!("{tag}-{i:06}"),
        title: format!("Benchmark item {tag} number {i}"),
        owner: (i % 3 == 0).then(|| format!("owner-{}", i % 17)),
        risk: ((i * 37) % 100) as i32,
        active: i % 4 != 0,
    }
}
