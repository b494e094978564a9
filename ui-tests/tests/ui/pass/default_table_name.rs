//! Without `table = ...` the table is the struct name in snake_case; private entities work too.
use custodian::{entity, Entity};

#[entity]
struct AuditFinding {
    #[column(primary_key)]
    id: i64,
    text: String,
}

mod nested {
    /// Visible outside its module, and so is its table module.
    #[custodian::entity]
    pub struct HTTPServer {
        /// Key.
        #[column(primary_key)]
        pub host: String,
    }
}

fn main() {
    assert_eq!(AuditFinding::META.table, "audit_finding");
    assert_eq!(AuditFinding::META.schema, None);
    let _: audit_finding::table = audit_finding::table;
    let f = AuditFinding { id: 1, text: String::new() };
    assert_eq!(f.key(), 1);
    assert_eq!(f.text, "");
    assert_eq!(nested::HTTPServer::META.table, "http_server");
    let _ = nested::http_server::host;
}
