//! Expansion snapshots: the code `#[entity]` and `#[derive(DbEnum)]` generate for representative
//! inputs, pretty-printed and kept in `snapshots/` beside this file.
//!
//! A change to generated code shows up as a readable diff of these files. A mismatch fails the
//! test (insta writes the new version to a `.snap.new` file beside the old one outside CI, and
//! nothing under `CI`); review it with `cargo insta review`, or accept it with
//! `INSTA_UPDATE=always cargo test -p custodian-derive` and review the diff of the `.snap` files.

use proc_macro2::TokenStream;
use quote::quote;

/// The expansion as a formatted Rust file.
fn pretty(tokens: TokenStream) -> String {
    let file = syn::parse2::<syn::File>(tokens).expect("the expansion parses as a Rust file");
    prettyplease::unparse(&file)
}

/// Snapshot of `#[entity(attr)] item`, in a crate that depends on diesel.
fn entity(name: &str, attr: TokenStream, item: TokenStream) {
    let tokens = crate::entity::expand_with(attr, item, false).expect("the entity expands");
    insta::assert_snapshot!(name, pretty(tokens));
}

/// Snapshot of `#[derive(DbEnum)] item`.
fn db_enum(name: &str, item: TokenStream) {
    let input = syn::parse2::<syn::DeriveInput>(item).expect("a derive input");
    let tokens = crate::db_enum::expand(input).expect("the enum expands");
    insta::assert_snapshot!(name, pretty(tokens));
}

#[test]
fn minimal() {
    entity(
        "minimal",
        quote!(),
        quote! {
            pub struct Tag {
                #[column(primary_key)]
                pub id: i32,
                pub name: String,
            }
        },
    );
}

#[test]
fn auto_increment_with_constraints() {
    entity(
        "auto_increment_with_constraints",
        quote!(
            table = "controls",
            unique(framework, code),
            index(owner, level)
        ),
        quote! {
            #[derive(Debug, Clone)]
            pub struct Control {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                pub framework: String,
                #[column(name = "control_code")]
                pub code: String,
                #[column(unique)]
                pub slug: String,
                #[column(index)]
                pub owner: Option<String>,
                #[column(range(min = 1, max = 5), default = "1")]
                pub level: i32,
                #[column(range(min = -3))]
                pub offset: Option<i64>,
                #[column(one_of("low", "high"))]
                pub risk: String,
                #[column(check = "length(note) < 100")]
                pub note: Option<String>,
                pub status: Status,
                #[column(generated)]
                pub computed: Option<i32>,
                pub stamp: chrono::DateTime<chrono::Utc>,
                pub bytes: Vec<u8>,
                pub ratio: f64,
                #[skip]
                pub cache: Vec<String>,
            }
        },
    );
}

#[test]
fn only_generated_columns() {
    // Every column is filled by the database: inserts are `DEFAULT VALUES`.
    entity(
        "only_generated_columns",
        quote!(table = "tickets"),
        quote! {
            struct Ticket {
                #[column(primary_key, auto_increment)]
                id: i64,
            }
        },
    );
}

#[test]
fn composite_key() {
    entity(
        "composite_key",
        quote!(),
        quote! {
            pub struct Assignment {
                #[column(primary_key)]
                pub user_id: i64,
                #[column(primary_key)]
                pub role_code: String,
                pub note: Option<String>,
            }
        },
    );
}

#[test]
fn roles() {
    entity(
        "roles",
        quote!(table = "documents"),
        quote! {
            pub struct Document {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                pub title: String,
                #[column(version)]
                pub version: i32,
                #[column(created_at)]
                pub created: NaiveDateTime,
                #[column(updated_at, name = "updated")]
                pub updated_at: Option<DateTime<Utc>>,
                #[column(deleted_at)]
                pub deleted_at: Option<DateTime<Utc>>,
            }
        },
    );
}

#[test]
fn roles_big_version_utc_stamps() {
    entity(
        "roles_big_version_utc_stamps",
        quote!(),
        quote! {
            pub struct Note {
                #[column(primary_key)]
                pub code: String,
                #[column(version)]
                pub rev: i64,
                #[column(updated_at)]
                pub changed: DateTime<Utc>,
                #[column(created_at)]
                pub created: Option<DateTime<Utc>>,
                #[column(deleted_at)]
                pub gone: Option<NaiveDateTime>,
            }
        },
    );
}

#[test]
fn belongs_to_and_has_many() {
    entity(
        "belongs_to_and_has_many",
        quote!(table = "employees", has_many(Membership), has_one(Badge)),
        quote! {
            pub struct Employee {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                pub name: String,
                #[belongs_to(Department, on_delete = "cascade", on_update = "restrict")]
                pub department_id: i64,
                #[belongs_to(Self, on_delete = "set_null")]
                #[column(name = "manager")]
                pub manager_id: Option<i64>,
                #[column(deleted_at)]
                pub deleted_at: Option<chrono::NaiveDateTime>,
            }
        },
    );
}

#[test]
fn join_entity() {
    // A composite key of two foreign keys and nothing else: updates have nothing to set.
    entity(
        "join_entity",
        quote!(table = "memberships"),
        quote! {
            pub struct Membership {
                #[column(primary_key)]
                #[belongs_to(Employee, on_delete = "cascade")]
                pub employee_id: i64,
                #[column(primary_key)]
                #[belongs_to(Project)]
                pub project_code: String,
            }
        },
    );
}

#[test]
fn schema_qualified_table() {
    entity(
        "schema_qualified_table",
        quote!(table = "controls", schema = "compliance"),
        quote! {
            pub struct Control {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                #[column(name = "control_code")]
                pub code: String,
                pub title: Option<String>,
            }
        },
    );
}

#[test]
fn unaudited() {
    entity(
        "unaudited",
        quote!(table = "sessions", unaudited),
        quote! {
            pub(crate) struct WebSession {
                #[column(primary_key)]
                pub token: uuid::Uuid,
                pub data: serde_json::Value,
            }
        },
    );
}

#[test]
fn hooks_and_validate() {
    entity(
        "hooks_and_validate",
        quote!(hooks, validate),
        quote! {
            #[derive(Debug, Clone, Validate)]
            pub struct Account {
                #[column(primary_key, auto_increment)]
                pub id: i32,
                #[validate(length(min = 1))]
                pub name: String,
            }
        },
    );
}

#[test]
fn encrypted_and_blind_index() {
    entity(
        "encrypted_and_blind_index",
        quote!(subject = "client_ref"),
        quote! {
            pub struct Client {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                pub client_ref: String,
                #[column(encrypted)]
                pub full_name: String,
                #[column(encrypted)]
                pub email: Option<String>,
                #[column(blind_index = "email", unique)]
                pub email_index: Option<String>,
            }
        },
    );
}

#[test]
fn raw_identifiers() {
    entity(
        "raw_identifiers",
        quote!(table = "matches"),
        quote! {
            pub struct r#Match {
                #[column(primary_key)]
                pub r#type: i32,
                pub r#ref: String,
            }
        },
    );
}

#[test]
fn missing_diesel() {
    let tokens = crate::entity::expand_with(
        quote!(),
        quote! {
            pub struct Tag {
                #[column(primary_key)]
                pub id: i32,
            }
        },
        true,
    )
    .expect("the entity expands");
    insta::assert_snapshot!("missing_diesel", pretty(tokens));
}

#[test]
fn db_enum_names() {
    db_enum(
        "db_enum",
        quote! {
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub enum Lifecycle {
                Draft,
                #[db_enum(name = "in_review")]
                InReview,
                Retired = 10,
                r#Type,
            }
        },
    );
}
