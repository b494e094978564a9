//! Validation: the validator crate's field and struct rules, converted to custodian's
//! field-keyed [`ValidationErrors`], and database constraint errors shown in the same shape.
//!
//! Derive `validator::Validate` on an entity (above or below `#[entity]`) and the write path runs
//! it before every insert and update, single and bulk. Struct-level rules
//! (`#[validate(schema(function = "..."))]`) report under the key `__entity`.

use crate::error::{ConstraintKind, Error, ValidationErrors};
use validator::ValidationErrorsKind;

/// Key under which entity-level (cross-field) errors are reported.
pub const ENTITY_KEY: &str = "__entity";

/// An entity as seen by the code `#[entity]` generates when it cannot tell whether the struct
/// implements `validator::Validate` (a `#[derive(Validate)]` above `#[entity]` has already been
/// expanded and removed when `#[entity]` runs). `(&ValidatorProbe(entity)).validate_if_derived()`
/// resolves to [`RunsValidator`] when the entity implements `Validate` and to [`NoValidator`]
/// otherwise: method lookup tries `&ValidatorProbe` (the impl bounded by `Validate`) before
/// `&&ValidatorProbe` (the fallback), and the entity's type is concrete in that code.
pub struct ValidatorProbe<'a, T>(pub &'a T);

/// See [`ValidatorProbe`]: runs validator's rules.
pub trait RunsValidator {
    /// [`run_validator`] on the entity.
    fn validate_if_derived(&self) -> Result<(), ValidationErrors>;
}

impl<T: validator::Validate> RunsValidator for ValidatorProbe<'_, T> {
    fn validate_if_derived(&self) -> Result<(), ValidationErrors> {
        run_validator(self.0)
    }
}

/// See [`ValidatorProbe`]: the entity has no validator rules.
pub trait NoValidator {
    /// Always valid.
    fn validate_if_derived(&self) -> Result<(), ValidationErrors>;
}

impl<T> NoValidator for &ValidatorProbe<'_, T> {
    fn validate_if_derived(&self) -> Result<(), ValidationErrors> {
        Ok(())
    }
}

/// The type-level twin of [`ValidatorProbe`]: `(&ValidatesProbe::<E>(PhantomData)).validates()`
/// is `true` when `E` implements `validator::Validate` ([`HasValidator`]) and `false`
/// otherwise ([`LacksValidator`]), without a value of `E`. The write path asks it to know,
/// before a statement runs, whether rows can still be refused after it.
pub struct ValidatesProbe<T>(pub std::marker::PhantomData<T>);

/// See [`ValidatesProbe`]: the type has validator rules.
pub trait HasValidator {
    /// `true`.
    fn validates(&self) -> bool;
}

impl<T: validator::Validate> HasValidator for ValidatesProbe<T> {
    fn validates(&self) -> bool {
        true
    }
}

/// See [`ValidatesProbe`]: the type has no validator rules.
pub trait LacksValidator {
    /// `false`.
    fn validates(&self) -> bool;
}

impl<T> LacksValidator for &ValidatesProbe<T> {
    fn validates(&self) -> bool {
        false
    }
}

/// Runs validator's rules on `value` and converts its errors.
pub fn run_validator<T: validator::Validate>(value: &T) -> Result<(), ValidationErrors> {
    match value.validate() {
        Ok(()) => Ok(()),
        Err(errors) => {
            let mut out = ValidationErrors::default();
            flatten(&errors, "", &mut out);
            Err(out)
        }
    }
}

fn flatten(errors: &validator::ValidationErrors, prefix: &str, out: &mut ValidationErrors) {
    for (field, kind) in errors.errors() {
        let name = if field == "__all__" {
            if prefix.is_empty() {
                ENTITY_KEY.to_string()
            } else {
                prefix.to_string()
            }
        } else if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e
                        .message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| describe(e));
                    out.add(name.clone(), e.code.to_string(), message);
                }
            }
            ValidationErrorsKind::Struct(inner) => flatten(inner, &name, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    flatten(inner, &format!("{name}[{i}]"), out);
                }
            }
        }
    }
}

/// A readable message for a rule without a custom one, e.g. `length (min 1, max 8)`.
fn describe(e: &validator::ValidationError) -> String {
    let mut params: Vec<String> = e
        .params
        .iter()
        .filter(|(k, _)| k.as_ref() != "value")
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    params.sort();
    if params.is_empty() {
        format!("failed `{}`", e.code)
    } else {
        format!("failed `{}` ({})", e.code, params.join(", "))
    }
}

impl Error {
    /// Field-keyed errors for invalid data, whether a Rust rule or the database refused it:
    /// `Validation` as is; unique, not-null, check and foreign-key violations under the field
    /// the database named (codes `unique`, `not_null`, `check`, `foreign_key`). `None` for other
    /// causes.
    pub fn field_errors(&self) -> Option<ValidationErrors> {
        match self {
            Error::Validation(v) => Some(v.clone()),
            Error::Conflict { source } | Error::Constraint { source } => {
                let code = match (self, source.code.as_deref()) {
                    (Error::Conflict { .. }, Some("stale_version")) => "stale_version",
                    (Error::Conflict { .. }, _) => "unique",
                    _ => source.kind.map_or("constraint", ConstraintKind::as_str),
                };
                let field = source
                    .field
                    .clone()
                    .or_else(|| source.column.clone())
                    .unwrap_or_else(|| ENTITY_KEY.to_string());
                let mut v = ValidationErrors::default();
                v.add(field, code, source.message.clone());
                Some(v)
            }
            _ => None,
        }
    }
}

/// Code of the field error for a value no backend can store faithfully (NaN, infinities).
pub const NOT_STORABLE: &str = "not_storable";

/// Refuses rows holding values that cannot be stored so that every backend and the audit image
/// agree ([`ColumnValue::unstorable`](crate::ColumnValue::unstorable)): a field-keyed
/// [`Error::Validation`], with the row's position when bulk. Runs before anything is written.
pub(crate) fn check_storable<E: crate::entity::Entity>(rows: &[E]) -> Result<(), Error> {
    for (i, row) in rows.iter().enumerate() {
        let bad = row.raw_unstorable();
        if bad.is_empty() {
            continue;
        }
        let mut v = ValidationErrors::default();
        for (column, why) in bad {
            let field = E::META.columns.get(column).map_or("?", |c| c.field);
            v.add(field, NOT_STORABLE, why);
        }
        if rows.len() > 1 {
            v.index = Some(i);
        }
        return Err(Error::Validation(v));
    }
    Ok(())
}
