//! Mapping of a field's Rust type to the diesel SQL type of its column.
//!
//! The mapping is syntactic: it looks at the last path segment of the type as written
//! (`i32`, `String`, `Option<...>`, `DateTime<Utc>`, ...), because `diesel::table!` needs concrete
//! SQL types (associated-type projections break diesel's coherence). Every field also gets a
//! compile-time `assert_column::<FieldTy, SqlTy>()` check, so a type alias or a type that is not
//! a custodian column value is caught by the compiler under the field's type.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{GenericArgument, PathArguments, Type};

/// The diesel SQL type of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlType {
    /// `SmallInt` (`i16`).
    SmallInt,
    /// `Integer` (`i32`).
    Integer,
    /// `BigInt` (`i64`).
    BigInt,
    /// `Float` (`f32`).
    Float,
    /// `Double` (`f64`).
    Double,
    /// `Bool` (`bool`).
    Bool,
    /// `Text` (`String`, `Uuid`, `Value`, `Decimal`, enums).
    Text,
    /// `Binary` (`Vec<u8>`).
    Binary,
    /// `Date` (`NaiveDate`).
    Date,
    /// custodian's `Datetime` (`NaiveDateTime`, `DateTime<Utc>`): bound as `TIMESTAMP` on
    /// PostgreSQL and SQLite, `DATETIME` on MariaDB.
    Datetime,
    /// `Nullable<T>` (`Option<T>`).
    Nullable(Box<SqlType>),
}

impl SqlType {
    /// Whether values of this type are integers (allowed for `auto_increment`).
    pub(crate) fn is_integer(&self) -> bool {
        matches!(self, SqlType::SmallInt | SqlType::Integer | SqlType::BigInt)
    }

    /// Whether values are text (compared byte for byte where the guard of an update needs it).
    pub(crate) fn is_text(&self) -> bool {
        match self {
            SqlType::Text => true,
            SqlType::Nullable(inner) => inner.is_text(),
            _ => false,
        }
    }

    /// Whether the column accepts `NULL`.
    pub(crate) fn is_nullable(&self) -> bool {
        matches!(self, SqlType::Nullable(_))
    }

    fn name(&self) -> &'static str {
        match self {
            SqlType::SmallInt => "SmallInt",
            SqlType::Integer => "Integer",
            SqlType::BigInt => "BigInt",
            SqlType::Float => "Float",
            SqlType::Double => "Double",
            SqlType::Bool => "Bool",
            SqlType::Text => "Text",
            SqlType::Binary => "Binary",
            SqlType::Date => "Date",
            SqlType::Datetime => "Datetime",
            SqlType::Nullable(_) => "Nullable",
        }
    }

    /// The type as written inside `diesel::table!`, where `diesel::sql_types::*` is in scope.
    pub(crate) fn table_tokens(&self) -> TokenStream {
        let name = quote::format_ident!("{}", self.name());
        match self {
            SqlType::Nullable(inner) => {
                let inner = inner.table_tokens();
                quote!(#name<#inner>)
            }
            // custodian's own type: binds as DATETIME on MariaDB (full 1000-9999 range).
            SqlType::Datetime => quote!(::custodian::__private::sql_types::#name),
            _ => quote!(#name),
        }
    }

    /// The fully qualified path of the type, for generated code outside `table!`.
    pub(crate) fn path_tokens(&self) -> TokenStream {
        let name = quote::format_ident!("{}", self.name());
        let prefix = quote!(::custodian::__private::diesel::sql_types);
        match self {
            SqlType::Nullable(inner) => {
                let inner = inner.path_tokens();
                quote!(#prefix::#name<#inner>)
            }
            SqlType::Datetime => quote!(::custodian::__private::sql_types::#name),
            _ => quote!(#prefix::#name),
        }
    }
}

impl SqlType {
    /// The storage type bound to and read from this SQL type, named concretely so that the
    /// diesel side of the generated code type-checks even when the field type is wrong (the
    /// field-type check then reports the problem once, under the field's type).
    ///
    /// `ty` is the field type, used as is for `Date` (whose storage is the field type itself).
    pub(crate) fn storage_tokens(&self, ty: &Type) -> TokenStream {
        match self {
            SqlType::SmallInt => quote!(i16),
            SqlType::Integer => quote!(i32),
            SqlType::BigInt => quote!(i64),
            SqlType::Float => quote!(f32),
            SqlType::Double => quote!(f64),
            SqlType::Bool => quote!(bool),
            SqlType::Text => quote!(::std::string::String),
            SqlType::Binary => quote!(::std::vec::Vec<u8>),
            SqlType::Date => quote!(#ty),
            SqlType::Datetime => quote!(::custodian::__private::sql_types::StoredDatetime),
            SqlType::Nullable(inner) => {
                let inner = inner.storage_tokens(option_inner(ty).unwrap_or(ty));
                quote!(::core::option::Option<#inner>)
            }
        }
    }
}

impl SqlType {
    /// Whether the storage type of a field of type `ty` is `ty` itself (integers, floats, bool,
    /// `String`, `Vec<u8>`, `NaiveDate`, and `Option`s of them), so generated code can bind the
    /// field by reference instead of converting (cloning) it. Converted types (UUID, JSON,
    /// decimal, enums, timestamps) answer `false`.
    pub(crate) fn stored_as_is(&self, ty: &Type) -> bool {
        match self {
            SqlType::SmallInt
            | SqlType::Integer
            | SqlType::BigInt
            | SqlType::Float
            | SqlType::Double
            | SqlType::Bool
            | SqlType::Binary
            | SqlType::Date => true,
            // Uuid, serde_json::Value, Decimal and enums are text too, stored converted.
            SqlType::Text => is_named(ty, "String"),
            SqlType::Datetime => false,
            SqlType::Nullable(inner) => option_inner(ty).is_some_and(|t| inner.stored_as_is(t)),
        }
    }
}

/// `T` of a type written `Option<T>`.
pub(crate) fn option_inner(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Paren(p) => option_inner(&p.elem),
        Type::Group(g) => option_inner(&g.elem),
        Type::Path(p) => {
            let last = p.path.segments.last()?;
            match &last.arguments {
                PathArguments::AngleBracketed(args) if last.ident == "Option" => {
                    match args.args.first() {
                        Some(GenericArgument::Type(inner)) => Some(inner),
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// For a timestamp field (`NaiveDateTime` or `DateTime<Utc>`, optionally in `Option`):
/// `(is DateTime<Utc>, is in an Option)`.
pub(crate) fn datetime_of(ty: &Type) -> Option<(bool, bool)> {
    let (inner, nullable) = match option_inner(ty) {
        Some(inner) => (inner, true),
        None => (ty, false),
    };
    match sql_type_of(inner).ok()? {
        SqlType::Datetime => Some((!is_named(inner, "NaiveDateTime"), nullable)),
        _ => None,
    }
}

/// Chooses the SQL type of a field from its type as written, or explains why it cannot be a
/// column (the error sits under the offending part of the type).
pub(crate) fn sql_type_of(ty: &Type) -> syn::Result<SqlType> {
    match ty {
        Type::Paren(p) => sql_type_of(&p.elem),
        Type::Group(g) => sql_type_of(&g.elem),
        Type::Reference(_) => Err(error(
            ty,
            "references cannot be stored in a column: use an owned type such as `String` or `Vec<u8>`",
        )),
        Type::Tuple(t) if t.elems.is_empty() => {
            Err(error(ty, "`()` cannot be stored in a column"))
        }
        Type::Tuple(_) => Err(error(
            ty,
            "tuples cannot be stored in a column: give each part its own field",
        )),
        Type::Array(_) | Type::Slice(_) => Err(error(
            ty,
            "arrays and slices cannot be stored in a column: use `Vec<u8>` for bytes",
        )),
        Type::Path(p) if p.qself.is_some() => Err(error(
            ty,
            "associated types cannot be column types: name the type directly",
        )),
        Type::Path(p) => {
            let Some(last) = p.path.segments.last() else {
                return Err(error(ty, "this type cannot be stored in a column"));
            };
            let name = last.ident.to_string();
            match name.as_str() {
                "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => Err(error(
                    ty,
                    format!(
                        "`{name}` cannot be stored in a column: unsigned integers do not \
                         round-trip on PostgreSQL, use i16/i32/i64"
                    ),
                )),
                "i8" | "i128" | "isize" => Err(error(
                    ty,
                    format!(
                        "`{name}` cannot be stored in a column: it has no SQL type shared by \
                         PostgreSQL, MariaDB and SQLite, use i16/i32/i64"
                    ),
                )),
                "char" => Err(error(
                    ty,
                    "`char` cannot be stored in a column: use `String`",
                )),
                "Option" => {
                    let inner = single_type_arg(last, ty, "Option<T>")?;
                    let inner_sql = sql_type_of(inner)?;
                    if inner_sql.is_nullable() {
                        return Err(error(
                            inner,
                            "`Option<Option<T>>` cannot be stored in a column: SQL has a single NULL",
                        ));
                    }
                    Ok(SqlType::Nullable(Box::new(inner_sql)))
                }
                "Vec" => {
                    let inner = single_type_arg(last, ty, "Vec<u8>")?;
                    if is_named(inner, "u8") {
                        Ok(SqlType::Binary)
                    } else {
                        Err(error(
                            inner,
                            "only `Vec<u8>` (bytes) can be stored in a column; \
                             store lists in a table of their own",
                        ))
                    }
                }
                "DateTime" => {
                    let tz = single_type_arg(last, ty, "DateTime<Utc>")?;
                    if is_named(tz, "Utc") {
                        Ok(SqlType::Datetime)
                    } else {
                        Err(error(
                            tz,
                            "only `DateTime<Utc>` can be stored in a column: convert to UTC first \
                             (or use `NaiveDateTime`)",
                        ))
                    }
                }
                "i16" => plain(last, SqlType::SmallInt),
                "i32" => plain(last, SqlType::Integer),
                "i64" => plain(last, SqlType::BigInt),
                "f32" => plain(last, SqlType::Float),
                "f64" => plain(last, SqlType::Double),
                "bool" => plain(last, SqlType::Bool),
                "NaiveDate" => plain(last, SqlType::Date),
                "NaiveDateTime" => plain(last, SqlType::Datetime),
                // String, Uuid, serde_json::Value, Decimal/BigDecimal and `DbEnum` enums are text;
                // anything else is caught by the `ColumnValue` check with a clear message.
                _ => Ok(SqlType::Text),
            }
        }
        _ => Err(error(ty, "this type cannot be stored in a column")),
    }
}

/// Accepts a type without generic arguments.
fn plain(seg: &syn::PathSegment, sql: SqlType) -> syn::Result<SqlType> {
    match seg.arguments {
        PathArguments::None => Ok(sql),
        _ => Err(error(
            &seg.arguments,
            format!("`{}` takes no generic arguments", seg.ident),
        )),
    }
}

/// The single type argument of `Option<T>`, `Vec<T>` or `DateTime<T>`.
fn single_type_arg<'a>(
    seg: &'a syn::PathSegment,
    ty: &Type,
    expected: &str,
) -> syn::Result<&'a Type> {
    if let PathArguments::AngleBracketed(args) = &seg.arguments {
        if args.args.len() == 1 {
            if let Some(GenericArgument::Type(inner)) = args.args.first() {
                return Ok(inner);
            }
        }
    }
    Err(error(ty, format!("expected `{expected}`")))
}

/// Whether `ty` is a path whose last segment is `name` without arguments.
fn is_named(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == name && s.arguments.is_none()),
        Type::Paren(p) => is_named(&p.elem, name),
        Type::Group(g) => is_named(&g.elem, name),
        _ => false,
    }
}

fn error(tokens: impl quote::ToTokens, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new_spanned(tokens, msg)
}
