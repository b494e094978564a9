//! The SeaORM side (PostgreSQL only): SeaORM 2 entities for the same tables, its own sqlx pool
//! (`Database::connect`), async on tokio. Each operation is one SeaORM call on the
//! `DatabaseConnection`, which checks a connection out of the pool for it, as an application
//! does.

use crate::{sample_fields, Res, Rng, Scale};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::NotSet, ConnectOptions, Database, DatabaseConnection, Set};
use sea_orm::{QuerySelect, TransactionTrait};

pub mod items {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "peer_items")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub code: String,
        pub title: String,
        pub owner: Option<String>,
        pub risk: i32,
        pub active: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod accounts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tpcb_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub aid: i32,
        pub bid: i32,
        pub abalance: i32,
        pub filler: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod tellers {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tpcb_tellers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tid: i32,
        pub bid: i32,
        pub tbalance: i32,
        pub filler: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod branches {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tpcb_branches")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub bid: i32,
        pub bbalance: i32,
        pub filler: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod history {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tpcb_history")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub hid: i64,
        pub tid: i32,
        pub bid: i32,
        pub aid: i32,
        pub delta: i32,
        pub filler: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Opens SeaORM's pool of `size` connections (all opened up front, SeaORM's defaults
/// otherwise: `test_before_acquire` on).
pub async fn open(url: &str, size: u32) -> Res<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(size)
        .min_connections(size)
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

fn one(what: &str, n: u64) -> Res<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(format!("SeaORM {what}: {n} rows, expected 1").into())
    }
}

/// One CRUD cycle: insert (key returned), find by id, update (every non-key column, by key),
/// delete by id.
pub async fn crud(db: &DatabaseConnection, tag: u64, i: u64) -> Res<()> {
    let (code, title, owner, risk, active) = sample_fields(tag, i);
    let inserted = items::Entity::insert(items::ActiveModel {
        id: NotSet,
        code: Set(code),
        title: Set(title),
        owner: Set(owner),
        risk: Set(risk),
        active: Set(active),
    })
    .exec(db)
    .await?;
    let key = inserted.last_insert_id;
    let row = items::Entity::find_by_id(key)
        .one(db)
        .await?
        .ok_or("SeaORM find: no row")?;
    let changes = items::ActiveModel {
        id: NotSet,
        code: Set(row.code),
        title: Set(format!("changed {i}")),
        owner: Set(row.owner),
        risk: Set((row.risk + 1) % 100),
        active: Set(!row.active),
    };
    let n = items::Entity::update_many()
        .set(changes)
        .filter(items::Column::Id.eq(key))
        .exec(db)
        .await?
        .rows_affected;
    one("update", n)?;
    let n = items::Entity::delete_by_id(key)
        .exec(db)
        .await?
        .rows_affected;
    one("delete", n)
}

/// A read by primary key.
pub async fn get(db: &DatabaseConnection, key: i64) -> Res<()> {
    let row = items::Entity::find_by_id(key).one(db).await?;
    std::hint::black_box(row.ok_or("SeaORM get: no row")?);
    Ok(())
}

/// pgbench's `tpcb-like` transaction at the default isolation level.
pub async fn tpcb(db: &DatabaseConnection, rng: &mut Rng, scale: &Scale) -> Res<()> {
    let (aid, tid, bid, delta) = rng.tpcb(scale);
    let txn = db.begin().await?;
    let n = accounts::Entity::update_many()
        .col_expr(
            accounts::Column::Abalance,
            Expr::col(accounts::Column::Abalance).add(delta),
        )
        .filter(accounts::Column::Aid.eq(aid))
        .exec(&txn)
        .await?
        .rows_affected;
    one("accounts", n)?;
    let balance: Option<i32> = accounts::Entity::find_by_id(aid)
        .select_only()
        .column(accounts::Column::Abalance)
        .into_tuple()
        .one(&txn)
        .await?;
    std::hint::black_box(balance);
    let n = tellers::Entity::update_many()
        .col_expr(
            tellers::Column::Tbalance,
            Expr::col(tellers::Column::Tbalance).add(delta),
        )
        .filter(tellers::Column::Tid.eq(tid))
        .exec(&txn)
        .await?
        .rows_affected;
    one("tellers", n)?;
    let n = branches::Entity::update_many()
        .col_expr(
            branches::Column::Bbalance,
            Expr::col(branches::Column::Bbalance).add(delta),
        )
        .filter(branches::Column::Bid.eq(bid))
        .exec(&txn)
        .await?
        .rows_affected;
    one("branches", n)?;
    history::Entity::insert(history::ActiveModel {
        hid: NotSet,
        tid: Set(tid),
        bid: Set(bid),
        aid: Set(aid),
        delta: Set(delta),
        filler: Set(None),
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    Ok(())
}
