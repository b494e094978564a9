//! A composite primary key (the key is a tuple), and entities with nothing to update or insert.
use custodian::diesel::prelude::*;
use custodian::{entity, AnyConnection, Entity};

/// A control mapped to a framework: both fields form the key, nothing else to update.
#[entity(table = "control_mappings")]
#[derive(Debug, Clone, PartialEq)]
pub struct ControlMapping {
    /// First half of the key.
    #[column(primary_key)]
    pub framework: String,
    /// Second half of the key.
    #[column(primary_key, name = "control")]
    pub control_id: i32,
}

/// Every column is filled by the database.
#[entity]
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// Key.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Defaulted.
    #[column(generated)]
    pub state: String,
}

fn main() {
    let key: <ControlMapping as Entity>::Key = ("iso".to_owned(), 5);
    let m = ControlMapping { framework: "iso".into(), control_id: 5 };
    assert_eq!(m.key(), key);
    assert_eq!(ControlMapping::META.primary_key().count(), 2);

    let mut conn = AnyConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
    diesel::sql_query("CREATE TABLE control_mappings (framework TEXT, control INTEGER, PRIMARY KEY (framework, control))")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("CREATE TABLE ticket (id INTEGER PRIMARY KEY AUTOINCREMENT, state TEXT NOT NULL DEFAULT 'new')")
        .execute(&mut conn)
        .unwrap();

    let rows = [m.clone(), ControlMapping { framework: "soc2".into(), control_id: 5 }];
    assert_eq!(ControlMapping::raw_insert(&mut conn, &rows).unwrap(), 2);
    assert_eq!(ControlMapping::raw_find(&mut conn, &key, false).unwrap(), Some(m.clone()));
    // Nothing to set: the update only reports whether the row exists.
    assert_eq!(ControlMapping::raw_update(&mut conn, &m, Default::default()).unwrap(), 1);
    assert_eq!(ControlMapping::raw_delete(&mut conn, &key).unwrap(), 1);
    assert_eq!(ControlMapping::raw_update(&mut conn, &m, Default::default()).unwrap(), 0);

    let t = Ticket { id: 0, state: String::new() };
    assert_eq!(Ticket::raw_insert(&mut conn, &[t.clone(), t.clone()]).unwrap(), 2);
    let stored = Ticket::raw_find(&mut conn, &2, false).unwrap().unwrap();
    assert_eq!(stored.state, "new");
    assert_eq!(Ticket::raw_update(&mut conn, &stored, Default::default()).unwrap(), 1);
    assert_eq!(Ticket::META.insert_width(), 1);
}
