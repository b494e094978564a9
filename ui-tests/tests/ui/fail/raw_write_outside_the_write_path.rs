// The entity's raw database operations skip validation, access checks, hooks and audit: only
// custodian's session may call them, so user code can neither make nor pass the proof they take.
use custodian::prelude::*;

#[entity(table = "notes")]
pub struct Note {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub body: String,
}

fn sneak_in(conn: &mut custodian::AnyConnection, rows: &[Note]) {
    let _ = Note::raw_insert(custodian::__private::Internal(()), conn, rows);
    let _ = Note::raw_delete(custodian::__private::Internal::new(), conn, &1);
}

fn main() {}
