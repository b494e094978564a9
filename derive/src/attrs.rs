//! Parsing of the attributes the macros understand: `#[entity(...)]`, `#[column(...)]`,
//! `#[belongs_to(...)]`, `#[skip]` and `#[db_enum(...)]`.
//!
//! Parsing only checks the grammar (known keys, no duplicates, string values, no empty strings);
//! the rules that relate several fields to each other live in [`crate::model`].

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Path, Token, UnOp};

/// Arguments of `#[entity(...)]`.
#[derive(Default)]
pub(crate) struct EntityArgs {
    /// `table = "..."`: table name (default: the struct name in snake_case).
    pub table: Option<LitStr>,
    /// `schema = "..."`: schema (PostgreSQL) or database (MariaDB) holding the table.
    pub schema: Option<LitStr>,
    /// `unique(a, b)`: multi-column unique constraints.
    pub unique: Vec<FieldList>,
    /// `index(a, b)`: multi-column indexes.
    pub index: Vec<FieldList>,
    /// `has_many(Child)`: child entities that belong to this one.
    pub has_many: Vec<Path>,
    /// `has_one(Child)`: child entities that belong to this one, at most one per parent.
    pub has_one: Vec<Path>,
    /// Span of the `hooks` flag, if present.
    pub hooks: Option<Span>,
    /// Span of the `validate` flag, if present.
    pub validate: Option<Span>,
    /// Span of the `unaudited` flag, if present.
    pub unaudited: Option<Span>,
    /// `subject = "field"`: the field naming the data subject of encrypted columns.
    pub subject: Option<LitStr>,
}

/// The field names of `unique(...)` or `index(...)`, with the keyword for error spans.
pub(crate) struct FieldList {
    /// The `unique` or `index` keyword.
    pub keyword: Ident,
    /// The field names, as written.
    pub fields: Vec<Ident>,
}

impl EntityArgs {
    /// Parses the tokens inside `#[entity(...)]`.
    pub(crate) fn parse(attr: TokenStream) -> syn::Result<Self> {
        let mut args = EntityArgs::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("table") {
                string_value(&meta, "table", &mut args.table)
            } else if meta.path.is_ident("schema") {
                string_value(&meta, "schema", &mut args.schema)
            } else if meta.path.is_ident("unique") {
                args.unique.push(field_list(&meta, "unique")?);
                Ok(())
            } else if meta.path.is_ident("index") {
                args.index.push(field_list(&meta, "index")?);
                Ok(())
            } else if meta.path.is_ident("has_many") {
                entity_list(&meta, "has_many", &mut args.has_many)
            } else if meta.path.is_ident("has_one") {
                entity_list(&meta, "has_one", &mut args.has_one)
            } else if meta.path.is_ident("hooks") {
                flag(&meta, "hooks", &mut args.hooks)
            } else if meta.path.is_ident("validate") {
                flag(&meta, "validate", &mut args.validate)
            } else if meta.path.is_ident("unaudited") {
                flag(&meta, "unaudited", &mut args.unaudited)
            } else if meta.path.is_ident("subject") {
                string_value(&meta, "subject", &mut args.subject)
            } else {
                Err(meta.error(format!(
                    "unknown entity attribute `{}`, expected one of `table`, `schema`, `unique`, \
                     `index`, `has_many`, `has_one`, `hooks`, `validate`, `unaudited`, `subject`",
                    path_name(&meta.path)
                )))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(args)
    }
}

/// Parses `key(field_a, field_b)`.
fn field_list(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<FieldList> {
    let keyword = meta
        .path
        .get_ident()
        .cloned()
        .unwrap_or_else(|| Ident::new(key, meta.path.span()));
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`{key}` expects field names: `{key}(field_a, field_b)`"
        )));
    }
    let mut fields = Vec::new();
    meta.parse_nested_meta(|inner| {
        let Some(ident) = inner.path.get_ident() else {
            return Err(inner.error(format!("`{key}(...)` expects field names")));
        };
        if !inner.input.is_empty() && !inner.input.peek(Token![,]) {
            return Err(inner.error(format!("`{key}(...)` expects field names only")));
        }
        fields.push(ident.clone());
        Ok(())
    })?;
    Ok(FieldList { keyword, fields })
}

/// Parses `key(EntityA, EntityB)` into `out`.
fn entity_list(meta: &ParseNestedMeta<'_>, key: &str, out: &mut Vec<Path>) -> syn::Result<()> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!("`{key}` expects entity types: `{key}(Child)`")));
    }
    let mut any = false;
    meta.parse_nested_meta(|inner| {
        if !inner.input.is_empty() && !inner.input.peek(Token![,]) {
            return Err(inner.error(format!("`{key}(...)` expects entity types only")));
        }
        out.push(inner.path.clone());
        any = true;
        Ok(())
    })?;
    if !any {
        return Err(meta.error(format!("`{key}` expects entity types: `{key}(Child)`")));
    }
    Ok(())
}

/// The column attributes of one field: `#[column(...)]` and `#[skip]`.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `name = "..."`: column name in the database.
    pub name: Option<LitStr>,
    /// Span of the `primary_key` flag, if present.
    pub primary_key: Option<Span>,
    /// Span of the `auto_increment` flag, if present.
    pub auto_increment: Option<Span>,
    /// Span of the `generated` flag, if present.
    pub generated: Option<Span>,
    /// Span of the `unique` flag, if present.
    pub unique: Option<Span>,
    /// Span of the `index` flag, if present.
    pub index: Option<Span>,
    /// `default = "..."`: SQL default expression.
    pub default: Option<LitStr>,
    /// The check constraint and the span of its key.
    pub check: Option<(CheckAttr, Span)>,
    /// The role and the span of its key.
    pub role: Option<(Role, Span)>,
    /// `#[belongs_to(...)]`.
    pub belongs_to: Option<BelongsToAttr>,
    /// Span of the first `#[column]` attribute, if any.
    pub column: Option<Span>,
    /// Span of the `#[skip]` attribute, if present.
    pub skip: Option<Span>,
    /// Span of the `encrypted` flag, if present.
    pub encrypted: Option<Span>,
    /// `blind_index = "field"`: this column holds the blind index of an encrypted field.
    pub blind_index: Option<LitStr>,
    /// `renamed_from = "old"`: the column's previous name, for generated migrations.
    pub renamed_from: Option<LitStr>,
}

impl FieldAttrs {
    /// Parses and removes `#[column(...)]` and `#[skip]` from `attrs`, keeping every other
    /// attribute in place.
    pub(crate) fn take(attrs: &mut Vec<Attribute>) -> syn::Result<Self> {
        let mut out = FieldAttrs::default();
        let mut errors: Option<syn::Error> = None;
        let mut kept = Vec::with_capacity(attrs.len());
        for attr in attrs.drain(..) {
            let result = if attr.path().is_ident("column") {
                out.column.get_or_insert(attr.span());
                attr.parse_nested_meta(|meta| out.column_key(&meta))
            } else if attr.path().is_ident("belongs_to") {
                out.belongs_to_attr(&attr)
            } else if attr.path().is_ident("skip") {
                out.skip_attr(&attr)
            } else {
                kept.push(attr);
                Ok(())
            };
            if let Err(e) = result {
                combine(&mut errors, e);
            }
        }
        *attrs = kept;
        match errors {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn column_key(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("name") {
            string_value(meta, "name", &mut self.name)
        } else if meta.path.is_ident("primary_key") {
            flag(meta, "primary_key", &mut self.primary_key)
        } else if meta.path.is_ident("auto_increment") {
            flag(meta, "auto_increment", &mut self.auto_increment)
        } else if meta.path.is_ident("generated") {
            flag(meta, "generated", &mut self.generated)
        } else if meta.path.is_ident("unique") {
            flag(meta, "unique", &mut self.unique)
        } else if meta.path.is_ident("index") {
            flag(meta, "index", &mut self.index)
        } else if meta.path.is_ident("default") {
            string_value(meta, "default", &mut self.default)
        } else if meta.path.is_ident("encrypted") {
            flag(meta, "encrypted", &mut self.encrypted)
        } else if meta.path.is_ident("blind_index") {
            string_value(meta, "blind_index", &mut self.blind_index)
        } else if meta.path.is_ident("renamed_from") {
            string_value(meta, "renamed_from", &mut self.renamed_from)
        } else if meta.path.is_ident("check") {
            let mut sql = None;
            string_value(meta, "check", &mut sql)?;
            let sql = sql.expect("string_value sets the slot on success");
            self.set_check(meta, CheckAttr::Sql(sql))
        } else if meta.path.is_ident("range") {
            let range = range(meta)?;
            self.set_check(meta, range)
        } else if meta.path.is_ident("one_of") {
            let values = one_of(meta)?;
            self.set_check(meta, values)
        } else if let Some(role) = Role::from_path(&meta.path) {
            self.set_role(meta, role)
        } else {
            Err(meta.error(format!(
                "unknown column attribute `{}`, expected one of `name`, `primary_key`, \
                 `auto_increment`, `generated`, `unique`, `index`, `default`, `check`, `range`, \
                 `one_of`, `version`, `created_at`, `updated_at`, `deleted_at`, `encrypted`, \
                 `blind_index`, `renamed_from`",
                path_name(&meta.path)
            )))
        }
    }

    fn set_check(&mut self, meta: &ParseNestedMeta<'_>, check: CheckAttr) -> syn::Result<()> {
        if let Some((first, _)) = &self.check {
            return Err(syn::Error::new(
                meta.path.span(),
                format!(
                    "a column can have one check only, and this one already has `{}`: combine the \
                 conditions in one `check = \"...\"`",
                    first.key()
                ),
            ));
        }
        self.check = Some((check, meta.path.span()));
        Ok(())
    }

    fn set_role(&mut self, meta: &ParseNestedMeta<'_>, role: Role) -> syn::Result<()> {
        if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
            return Err(meta.error(format!(
                "`{0}` takes no value: write just `{0}`",
                role.key()
            )));
        }
        if let Some((first, _)) = &self.role {
            return Err(meta.error(if *first == role {
                format!("duplicate attribute `{}`", role.key())
            } else {
                format!(
                    "a column can have one role only, and this one is already `{}`",
                    first.key()
                )
            }));
        }
        self.role = Some((role, meta.path.span()));
        Ok(())
    }

    fn belongs_to_attr(&mut self, attr: &Attribute) -> syn::Result<()> {
        let syn::Meta::List(list) = &attr.meta else {
            return Err(syn::Error::new_spanned(
                &attr.meta,
                "`#[belongs_to]` expects the parent entity: `#[belongs_to(Parent)]`",
            ));
        };
        if self.belongs_to.is_some() {
            return Err(syn::Error::new_spanned(
                attr,
                "duplicate attribute `#[belongs_to]`: a field is one foreign key",
            ));
        }
        let parsed = list.parse_args_with(BelongsToAttr::parse)?;
        self.belongs_to = Some(parsed);
        Ok(())
    }

    fn skip_attr(&mut self, attr: &Attribute) -> syn::Result<()> {
        if let syn::Meta::List(_) | syn::Meta::NameValue(_) = attr.meta {
            return Err(syn::Error::new_spanned(
                &attr.meta,
                "`#[skip]` takes no arguments",
            ));
        }
        if self.skip.is_some() {
            return Err(syn::Error::new_spanned(
                attr,
                "duplicate attribute `#[skip]`",
            ));
        }
        self.skip = Some(attr.span());
        Ok(())
    }
}

/// The role of a column the write path maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `version`.
    Version,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `deleted_at`.
    DeletedAt,
}

impl Role {
    fn from_path(path: &Path) -> Option<Role> {
        let ident = path.get_ident()?;
        Some(match ident.to_string().as_str() {
            "version" => Role::Version,
            "created_at" => Role::CreatedAt,
            "updated_at" => Role::UpdatedAt,
            "deleted_at" => Role::DeletedAt,
            _ => return None,
        })
    }

    /// The attribute key.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Role::Version => "version",
            Role::CreatedAt => "created_at",
            Role::UpdatedAt => "updated_at",
            Role::DeletedAt => "deleted_at",
        }
    }

    /// The `ColumnRole` variant.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Role::Version => "Version",
            Role::CreatedAt => "CreatedAt",
            Role::UpdatedAt => "UpdatedAt",
            Role::DeletedAt => "DeletedAt",
        }
    }
}

/// A check constraint written on a column.
pub(crate) enum CheckAttr {
    /// `check = "SQL"`.
    Sql(LitStr),
    /// `range(min = .., max = ..)`.
    Range {
        /// Lowest allowed value.
        min: Option<i64>,
        /// Highest allowed value.
        max: Option<i64>,
    },
    /// `one_of("a", "b")`.
    OneOf(Vec<LitStr>),
}

impl CheckAttr {
    /// The attribute key.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            CheckAttr::Sql(_) => "check",
            CheckAttr::Range { .. } => "range",
            CheckAttr::OneOf(_) => "one_of",
        }
    }
}

/// Parses `range(min = 1, max = 5)`.
fn range(meta: &ParseNestedMeta<'_>) -> syn::Result<CheckAttr> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error("`range` expects bounds: `range(min = 1, max = 5)`"));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let mut min = None;
    let mut max = None;
    let bounds = syn::meta::parser(|inner| {
        let slot = if inner.path.is_ident("min") {
            &mut min
        } else if inner.path.is_ident("max") {
            &mut max
        } else {
            return Err(inner.error(format!(
                "unknown range bound `{}`, expected `min` or `max`",
                path_name(&inner.path)
            )));
        };
        let key = path_name(&inner.path);
        if slot.is_some() {
            return Err(inner.error(format!("duplicate bound `{key}`")));
        }
        if !inner.input.peek(Token![=]) {
            return Err(inner.error(format!("`{key}` expects an integer: `{key} = 1`")));
        }
        let value: Expr = inner.value()?.parse()?;
        *slot = Some(integer(&value, &key)?);
        Ok(())
    });
    syn::parse::Parser::parse2(bounds, content.parse::<TokenStream>()?)?;
    match (min, max) {
        (None, None) => {
            Err(meta.error("`range` needs `min`, `max` or both: `range(min = 1, max = 5)`"))
        }
        (Some(lo), Some(hi)) if lo > hi => Err(meta.error(format!(
            "empty range: `min` ({lo}) is greater than `max` ({hi})"
        ))),
        _ => Ok(CheckAttr::Range { min, max }),
    }
}

/// An integer literal, possibly negative.
fn integer(value: &Expr, key: &str) -> syn::Result<i64> {
    let not_integer = || {
        syn::Error::new_spanned(
            value,
            format!("`{key}` expects an integer literal: `{key} = 1`"),
        )
    };
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<i64>(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => format!("-{}", i.base10_digits())
                .parse::<i64>()
                .map_err(|e| syn::Error::new_spanned(value, e)),
            _ => Err(not_integer()),
        },
        _ => Err(not_integer()),
    }
}

/// Parses `one_of("a", "b")`.
fn one_of(meta: &ParseNestedMeta<'_>) -> syn::Result<CheckAttr> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error("`one_of` expects strings: `one_of(\"a\", \"b\")`"));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let values = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    let mut out: Vec<LitStr> = Vec::new();
    for value in values {
        match value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => {
                if out.iter().any(|o| o.value() == s.value()) {
                    return Err(syn::Error::new(
                        s.span(),
                        format!("`{}` is listed twice", s.value()),
                    ));
                }
                out.push(s);
            }
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "`one_of` expects string literals: `one_of(\"a\", \"b\")`",
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(meta.error("`one_of` needs at least one value: `one_of(\"a\", \"b\")`"));
    }
    Ok(CheckAttr::OneOf(out))
}

/// What the database does to referencing rows (`on_delete`, `on_update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum RefAction {
    /// `"no_action"`.
    #[default]
    NoAction,
    /// `"restrict"`.
    Restrict,
    /// `"cascade"`.
    Cascade,
    /// `"set_null"`.
    SetNull,
}

impl RefAction {
    /// The `RefAction` variant.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            RefAction::NoAction => "NoAction",
            RefAction::Restrict => "Restrict",
            RefAction::Cascade => "Cascade",
            RefAction::SetNull => "SetNull",
        }
    }
}

/// `#[belongs_to(Parent, on_delete = "...", on_update = "...")]`.
pub(crate) struct BelongsToAttr {
    /// The parent entity type.
    pub parent: Path,
    /// Action on delete, with the span of its value.
    pub on_delete: (RefAction, Option<Span>),
    /// Action on update, with the span of its value.
    pub on_update: (RefAction, Option<Span>),
}

impl BelongsToAttr {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(
                input.error("`#[belongs_to]` expects the parent entity: `#[belongs_to(Parent)]`")
            );
        }
        if input.peek(syn::Ident) && input.peek2(Token![=]) {
            return Err(input.error(
                "the first argument of `#[belongs_to]` is the parent entity: \
                 `#[belongs_to(Parent, on_delete = \"cascade\")]`",
            ));
        }
        let parent: Path = input.parse()?;
        let mut out = BelongsToAttr {
            parent,
            on_delete: (RefAction::NoAction, None),
            on_update: (RefAction::NoAction, None),
        };
        let mut seen_delete = false;
        let mut seen_update = false;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            let (slot, seen) = if key == "on_delete" {
                (&mut out.on_delete, &mut seen_delete)
            } else if key == "on_update" {
                (&mut out.on_update, &mut seen_update)
            } else {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown belongs_to attribute `{key}`, expected `on_delete` or `on_update`"
                    ),
                ));
            };
            if *seen {
                return Err(syn::Error::new(
                    key.span(),
                    format!("duplicate attribute `{key}`"),
                ));
            }
            *seen = true;
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{key}` expects an action: `{key} = \"cascade\"`"),
                ));
            }
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            let Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) = &value
            else {
                return Err(syn::Error::new_spanned(
                    &value,
                    format!("`{key}` expects a string literal: `{key} = \"cascade\"`"),
                ));
            };
            let action = match s.value().as_str() {
                "no_action" => RefAction::NoAction,
                "restrict" => RefAction::Restrict,
                "cascade" => RefAction::Cascade,
                "set_null" => RefAction::SetNull,
                other => {
                    return Err(syn::Error::new(
                        s.span(),
                        format!(
                            "unknown action `{other}` for `{key}`, expected one of \
                             \"no_action\", \"restrict\", \"cascade\", \"set_null\""
                        ),
                    ))
                }
            };
            *slot = (action, Some(s.span()));
        }
        Ok(out)
    }
}

/// Parses `#[db_enum(name = "...")]` on one enum variant; returns the stored name, if given.
pub(crate) fn variant_name(attrs: &[Attribute]) -> syn::Result<Option<LitStr>> {
    let mut name = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("db_enum")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                string_value(&meta, "name", &mut name)
            } else {
                Err(meta.error(format!(
                    "unknown db_enum attribute `{}`, expected `name`",
                    path_name(&meta.path)
                )))
            }
        })?;
    }
    Ok(name)
}

/// Parses `key = "value"` into `slot`, rejecting duplicates, non-strings and empty strings.
fn string_value(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    slot: &mut Option<LitStr>,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("duplicate attribute `{key}`")));
    }
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!("`{key}` expects a string: `{key} = \"...\"`")));
    }
    let value: Expr = meta.value()?.parse()?;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            if s.value().is_empty() {
                return Err(syn::Error::new(
                    s.span(),
                    format!("`{key}` cannot be empty"),
                ));
            }
            *slot = Some(s);
            Ok(())
        }
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` expects a string literal: `{key} = \"...\"`"),
        )),
    }
}

/// Parses a bare flag such as `primary_key` into `slot`, rejecting duplicates and values.
fn flag(meta: &ParseNestedMeta<'_>, key: &str, slot: &mut Option<Span>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!("`{key}` takes no value: write just `{key}`")));
    }
    if slot.is_some() {
        return Err(meta.error(format!("duplicate attribute `{key}`")));
    }
    *slot = Some(meta.path.span());
    Ok(())
}

/// A path as written, without the spaces `to_string` puts between tokens.
fn path_name(path: &syn::Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Adds `e` to the errors collected so far.
pub(crate) fn combine(errors: &mut Option<syn::Error>, e: syn::Error) {
    match errors {
        Some(all) => all.combine(e),
        None => *errors = Some(e),
    }
}
