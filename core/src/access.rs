//! Access control: which roles may read, insert, update or delete each entity, which fields are
//! masked on read, and which rows a principal may see at all (tenant isolation).
//!
//! Policies are plain Rust values given to [`Db::with_access`](crate::Db::with_access). Every
//! read custodian performs for an entity (`find`, `get`, `get_many`, `select`, relationship
//! loading, history, as-of and drift) drops rows outside the principal's tenant and masks
//! fields. Audit records returned by history are judged by their own images (a deleted row's
//! record by its before image) and carry masked images. Every write checks the role, that the
//! row belongs to the principal's tenant, and that each foreign key names a parent row the
//! principal may read (a missing parent is refused in the same words, so the refusal does not
//! tell another tenant's keys). A refused operation returns
//! [`Error::Forbidden`](crate::Error::Forbidden), writes nothing, and is recorded in the audit
//! trail as a `denied` record on a connection reserved for that, outside the pool and the
//! caller's transaction; when it cannot be recorded the error says so.
//!
//! For reports, `Session::select` loads and `Session::count_visible` counts an entity query's
//! rows under the policy. Raw escape hatches, which apply no policy: `Session::load`, `first`,
//! `count`, `run`, `connection`, and the functions of [`audit::chain`](crate::audit::chain)
//! that read records.

use crate::entity::{Entity, EntityMeta};
use crate::principal::Principal;
use std::collections::{BTreeSet, HashMap};

/// An operation on an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Reading rows.
    Read,
    /// Inserting rows.
    Insert,
    /// Updating rows.
    Update,
    /// Deleting, restoring or purging rows.
    Delete,
}

impl Action {
    /// Lower-case name, e.g. `update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// The rules of one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityRules {
    allowed: HashMap<Action, BTreeSet<String>>,
    masked: BTreeSet<String>,
    unmask_role: Option<String>,
    tenant_column: Option<String>,
}

/// The role that stands for any principal in [`EntityRules`].
pub const ANYONE: &str = "*";

impl EntityRules {
    /// No action allowed to anyone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `action` to principals with one of `roles` ([`ANYONE`] for every principal).
    pub fn allow(mut self, action: Action, roles: &[&str]) -> Self {
        self.allowed
            .entry(action)
            .or_default()
            .extend(roles.iter().map(|r| r.to_string()));
        self
    }

    /// Allows reading to `roles`.
    pub fn read(self, roles: &[&str]) -> Self {
        self.allow(Action::Read, roles)
    }

    /// Allows insert, update and delete to `roles`.
    pub fn write(self, roles: &[&str]) -> Self {
        self.allow(Action::Insert, roles)
            .allow(Action::Update, roles)
            .allow(Action::Delete, roles)
    }

    /// Masks a column on read (text shows `***`, nullable columns show `NULL`) unless the
    /// principal has `unmask_role` (see [`EntityRules::unmask_for`]).
    pub fn mask(mut self, column: &str) -> Self {
        self.masked.insert(column.to_string());
        self
    }

    /// Principals with `role` see masked columns in clear.
    pub fn unmask_for(mut self, role: &str) -> Self {
        self.unmask_role = Some(role.to_string());
        self
    }

    /// Rows belong to the tenant named in `column`: principals see and write only their own
    /// tenant's rows; a principal without a tenant sees none.
    pub fn tenant_column(mut self, column: &str) -> Self {
        self.tenant_column = Some(column.to_string());
        self
    }

    fn permits(&self, action: Action, p: &Principal) -> bool {
        self.allowed
            .get(&action)
            .is_some_and(|roles| roles.contains(ANYONE) || roles.iter().any(|r| p.has_role(r)))
    }
}

/// Policies for a whole database: rules per entity, and what happens to entities without rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessControl {
    rules: HashMap<String, EntityRules>,
    allow_unlisted: bool,
    erasers: BTreeSet<String>,
}

impl AccessControl {
    /// Denies every entity without rules (the safe default).
    pub fn deny_by_default() -> Self {
        AccessControl::default()
    }

    /// Allows everything on entities without rules.
    pub fn allow_unlisted(mut self) -> Self {
        self.allow_unlisted = true;
        self
    }

    /// Principals with one of `roles` may erase data subjects (crypto-shredding); nobody else
    /// may while this policy is in force.
    pub fn erase_for(mut self, roles: &[&str]) -> Self {
        self.erasers.extend(roles.iter().map(|r| r.to_string()));
        self
    }

    /// Whether `principal` may erase a data subject.
    pub fn may_erase(&self, principal: Option<&Principal>) -> bool {
        principal.is_some_and(|p| {
            self.erasers.contains(ANYONE) || self.erasers.iter().any(|r| p.has_role(r))
        })
    }

    /// Sets the rules of entity `E`.
    pub fn entity<E: Entity>(mut self, rules: EntityRules) -> Self {
        self.rules.insert(E::META.table.to_string(), rules);
        self
    }

    fn rules_of(&self, meta: &EntityMeta) -> Option<&EntityRules> {
        self.rules.get(meta.table)
    }

    /// Whether `principal` may do `action` on entity `meta` at all.
    pub fn permits(
        &self,
        meta: &EntityMeta,
        action: Action,
        principal: Option<&Principal>,
    ) -> bool {
        match (self.rules_of(meta), principal) {
            (None, _) => self.allow_unlisted,
            (Some(_), None) => false,
            (Some(r), Some(p)) => r.permits(action, p),
        }
    }

    /// Whether rows of `meta` are scoped to tenants.
    pub fn has_row_scope(&self, meta: &EntityMeta) -> bool {
        self.rules_of(meta)
            .is_some_and(|r| r.tenant_column.is_some())
    }

    /// Whether a row (its JSON image) is visible to and writable by `principal`.
    pub fn row_in_scope(
        &self,
        meta: &EntityMeta,
        image: &serde_json::Map<String, serde_json::Value>,
        principal: Option<&Principal>,
    ) -> bool {
        let Some(column) = self.rules_of(meta).and_then(|r| r.tenant_column.as_deref()) else {
            return true;
        };
        match (
            principal.and_then(|p| p.tenant.as_deref()),
            image.get(column),
        ) {
            (Some(tenant), Some(serde_json::Value::String(row))) => row == tenant,
            _ => false,
        }
    }

    /// The column naming each row's tenant on `meta`, if its rows are scoped to tenants.
    pub fn tenant_column(&self, meta: &EntityMeta) -> Option<&str> {
        self.rules_of(meta).and_then(|r| r.tenant_column.as_deref())
    }

    /// Whether every image an audit record holds of a row of `meta` (before and after, as JSON
    /// text) is in `principal`'s scope. A record is judged by its images, not by the live row,
    /// so a version of a row deleted since, or moved to another tenant, is judged as it was.
    /// A malformed image is out of scope (fail closed).
    pub fn record_in_scope(
        &self,
        meta: &EntityMeta,
        images: [Option<&str>; 2],
        principal: Option<&Principal>,
    ) -> bool {
        if !self.has_row_scope(meta) {
            return true;
        }
        images.into_iter().flatten().all(|text| {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(image)) => self.row_in_scope(meta, &image, principal),
                _ => false,
            }
        })
    }

    /// An audit image (JSON text) with the columns `principal` may not see in clear masked,
    /// as [`AccessControl::mask`] masks a row; `None` when the text is not a JSON object.
    pub fn mask_image_text(
        &self,
        meta: &EntityMeta,
        text: &str,
        principal: Option<&Principal>,
    ) -> Option<String> {
        let serde_json::Value::Object(mut image) = serde_json::from_str(text).ok()? else {
            return None;
        };
        if self.mask(meta, &mut image, principal) {
            Some(serde_json::Value::Object(image).to_string())
        } else {
            Some(text.to_string())
        }
    }

    /// The columns `principal` sees masked on `meta`.
    pub fn masked_columns(&self, meta: &EntityMeta, principal: Option<&Principal>) -> Vec<String> {
        match self.rules_of(meta) {
            Some(r)
                if !r
                    .unmask_role
                    .as_deref()
                    .is_some_and(|role| principal.is_some_and(|p| p.has_role(role))) =>
            {
                r.masked.iter().cloned().collect()
            }
            _ => Vec::new(),
        }
    }

    /// Masks the columns `principal` may not see in clear, in place. Returns whether anything
    /// was masked.
    pub fn mask(
        &self,
        meta: &EntityMeta,
        image: &mut serde_json::Map<String, serde_json::Value>,
        principal: Option<&Principal>,
    ) -> bool {
        let Some(rules) = self.rules_of(meta) else {
            return false;
        };
        if rules.masked.is_empty()
            || rules
                .unmask_role
                .as_deref()
                .is_some_and(|role| principal.is_some_and(|p| p.has_role(role)))
        {
            return false;
        }
        for column in &rules.masked {
            let nullable = meta.column_named(column).is_some_and(|c| c.nullable);
            if let Some(v) = image.get_mut(column) {
                *v = if nullable {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String("***".into())
                };
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::ColumnMeta;
    use crate::value::ColumnKind;

    const META: EntityMeta = EntityMeta {
        name: "Doc",
        table: "docs",
        schema: None,
        columns: &[
            ColumnMeta {
                name: "tenant",
                field: "tenant",
                kind: ColumnKind::Text,
                ..ColumnMeta::PLAIN
            },
            ColumnMeta {
                name: "email",
                field: "email",
                kind: ColumnKind::Text,
                nullable: true,
                ..ColumnMeta::PLAIN
            },
        ],
        indexes: &[],
    };

    fn ac() -> AccessControl {
        let mut ac = AccessControl::deny_by_default();
        ac.rules.insert(
            "docs".into(),
            EntityRules::new()
                .read(&[ANYONE])
                .write(&["editor"])
                .tenant_column("tenant")
                .mask("email")
                .unmask_for("dpo"),
        );
        ac
    }

    #[test]
    fn roles_tenants_and_masks() {
        let ac = ac();
        let alice = Principal::new("alice").in_tenant("a");
        let editor = Principal::new("ed").with_role("editor").in_tenant("b");
        assert!(ac.permits(&META, Action::Read, Some(&alice)));
        assert!(!ac.permits(&META, Action::Update, Some(&alice)));
        assert!(ac.permits(&META, Action::Update, Some(&editor)));
        assert!(!ac.permits(&META, Action::Read, None));
        let mut row = serde_json::json!({"tenant": "a", "email": "x@y"})
            .as_object()
            .unwrap()
            .clone();
        assert!(ac.row_in_scope(&META, &row, Some(&alice)));
        assert!(!ac.row_in_scope(&META, &row, Some(&editor)));
        assert!(!ac.row_in_scope(&META, &row, Some(&Principal::new("nobody"))));
        assert!(ac.mask(&META, &mut row, Some(&alice)));
        assert_eq!(row["email"], serde_json::Value::Null);
        let dpo = Principal::new("d").with_role("dpo");
        let mut clear = serde_json::json!({"tenant": "a", "email": "x@y"})
            .as_object()
            .unwrap()
            .clone();
        assert!(!ac.mask(&META, &mut clear, Some(&dpo)));
        let other = EntityMeta {
            table: "other",
            ..META
        };
        assert!(
            !ac.permits(&other, Action::Read, Some(&alice)),
            "deny by default"
        );
        assert!(ac
            .clone()
            .allow_unlisted()
            .permits(&other, Action::Read, Some(&alice)));
        assert!(!ac.may_erase(Some(&dpo)), "nobody erases unless named");
        assert!(ac.clone().erase_for(&["dpo"]).may_erase(Some(&dpo)));
        assert!(!ac.erase_for(&["dpo"]).may_erase(Some(&alice)));
    }

    #[test]
    fn audit_images_are_judged_and_masked() {
        let ac = ac();
        let alice = Principal::new("alice").in_tenant("a");
        let ours = r#"{"email":"x@y","tenant":"a"}"#;
        let theirs = r#"{"email":"z@w","tenant":"b"}"#;
        assert!(ac.record_in_scope(&META, [Some(ours), None], Some(&alice)));
        assert!(ac.record_in_scope(&META, [None, Some(ours)], Some(&alice)));
        assert!(
            !ac.record_in_scope(&META, [Some(theirs), None], Some(&alice)),
            "a deleted row is judged by its before image"
        );
        assert!(
            !ac.record_in_scope(&META, [Some(ours), Some(theirs)], Some(&alice)),
            "every image must be in scope"
        );
        assert!(!ac.record_in_scope(&META, [Some("not json"), None], Some(&alice)));
        assert_eq!(
            ac.mask_image_text(&META, ours, Some(&alice)).as_deref(),
            Some(r#"{"email":null,"tenant":"a"}"#)
        );
        let dpo = Principal::new("d").with_role("dpo").in_tenant("a");
        assert_eq!(
            ac.mask_image_text(&META, ours, Some(&dpo)).as_deref(),
            Some(ours)
        );
        assert_eq!(ac.mask_image_text(&META, "[1]", Some(&alice)), None);
    }
}
