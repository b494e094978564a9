//! A composite primary key (the key is a tuple), and entities with nothing to update or insert.
use custodian::diesel::prelude::*;
use custodian::{entity, Entity, Error};

/// A control mapped to a framework: both fields form the key, nothing else to update.
#[entity(table = "control_mappings", unaudited)]
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
#[entity(unaudited)]
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

    let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:").unwrap()).unwrap();
    let mut s = db.session().unwrap();
    diesel::sql_query("CREATE TABLE control_mappings (framework TEXT, control INTEGER, PRIMARY KEY (framework, control))")
        .execute(s.connection())
        .unwrap();
    diesel::sql_query("CREATE TABLE ticket (id INTEGER PRIMARY KEY AUTOINCREMENT, state TEXT NOT NULL DEFAULT 'new')")
        .execute(s.connection())
        .unwrap();

    let mut rows = [m.clone(), ControlMapping { framework: "soc2".into(), control_id: 5 }];
    assert_eq!(s.insert_many(&mut rows).unwrap(), 2);
    assert_eq!(s.find::<ControlMapping>(&key).unwrap(), Some(m.clone()));
    // Nothing to set: the update only proves the row exists.
    let mut same = m.clone();
    s.update(&mut same).unwrap();
    s.delete(&m).unwrap();
    assert!(matches!(s.update(&mut same), Err(Error::NotFound { .. })));

    let t = Ticket { id: 0, state: String::new() };
    assert_eq!(s.insert_many(&mut [t.clone(), t.clone()]).unwrap(), 2);
    let mut stored = s.get::<Ticket>(&2).unwrap();
    assert_eq!(stored.state, "new");
    s.update(&mut stored).unwrap();
    assert_eq!(Ticket::META.insert_width(), 1);
}
