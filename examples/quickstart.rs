use custodian::prelude::*;

#[entity(table = "controls")]
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub code: String,
    pub owner: Option<String>,
}

fn main() -> custodian::Result<()> {
    // A demo without an audit key allows unkeyed seals explicitly; in production set
    // CUSTODIAN_AUDIT_KEY and call custodian::connect(url).
    let config = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
    // Writes are audited: say who acts.
    let db = custodian::open(config)?.acting_as(custodian::Principal::new("alice"));
    db.create_table::<Control>()?; // also creates the audit tables

    let mut s = db.session()?; // holds a pooled connection until dropped
    let new = Control {
        id: 0,
        code: "AC-1".into(),
        owner: None,
    };
    let mut c = s.insert(new)?; // c.id is assigned by the database
    let unowned: Vec<Control> = s.select(
        Control::query()
            .filter(controls::owner.is_null())
            .order(controls::code)
            .limit(50),
    )?;
    assert_eq!(unowned, [c.clone()]);

    c.owner = Some("alice".into());
    s.update(&mut c)?;
    assert_eq!(s.get::<Control>(&c.id)?, c);

    // Commit on Ok, rollback on Err or panic.
    s.transaction(|tx| {
        tx.delete(&c)?;
        let next = Control {
            id: 0,
            code: "AC-2".into(),
            owner: None,
        };
        tx.insert_many(&mut [next])?;
        Ok(())
    })?;
    assert!(s.find::<Control>(&c.id)?.is_none());
    println!("{} control(s)", s.count(controls::table.count())?);
    Ok(())
}
