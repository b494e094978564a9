//! Code generation for `#[entity]`.
//!
//! For `struct Control` mapped to table `controls` the expansion is:
//!
//! - the struct itself, with `#[column]` and `#[skip]` removed;
//! - `mod __custodian_control` holding the `diesel::table!` for `controls`, and
//!   `use __custodian_control::controls;` with the struct's visibility;
//! - `const _: () = { ... }` holding a compile-time `assert_column` check per field, one pair of
//!   storage conversion functions per column (spanned on the field type, so a wrong type is
//!   reported there once), and the `Queryable`, `Selectable` and `Entity` impls. Inserts and
//!   updates bind tuples of `column.eq(storage)`; the SQL-side types are concrete, chosen from
//!   the column's SQL type.
//!
//! Generated code names custodian's runtime only as `::custodian::__private`, and diesel only
//! through it. diesel's `table!` itself expands to `use ::diesel;`, so the user crate must still
//! list `diesel` (any 2.3 version, `default-features = false`) among its dependencies; without
//! it the expansion is the struct and one error saying so (see the `manifest` module).
//!
//! The generator is split by what it generates, one module each: [`table`] (the `table!`
//! module), [`columns`] (type checks and storage conversions), [`keys`], [`load`] (`Queryable`,
//! `Selectable`, the entity's queries), [`insert`], [`find`], [`update`], [`delete`], [`roles`]
//! (stamps of the role columns), [`hooks`] (hooks and validation), [`audit`] (images),
//! [`relations`] and [`meta`]. Each is a function of a [`Gen`], the entity being generated
//! and the paths every part uses; [`generate`] puts the parts together.

mod audit;
mod cache;
mod columns;
mod delete;
mod find;
mod hooks;
mod insert;
mod keys;
mod load;
mod meta;
mod relations;
mod roles;
mod set_write;
mod table;
mod update;

use crate::attrs::{EntityArgs, Role};
use crate::model::{snake_case, Column, EntityModel};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{Ident, Item};

/// Expands `#[entity(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    expand_with(attr, item, crate::manifest::lacks_diesel())
}

/// [`expand`], told whether the user crate lacks diesel (the expansion tests say it has it:
/// the derive crate's own manifest, which cargo points them at, does not list diesel).
pub(crate) fn expand_with(
    attr: TokenStream,
    item: TokenStream,
    lacks_diesel: bool,
) -> syn::Result<TokenStream> {
    let args = EntityArgs::parse(attr)?;
    let mut item = match syn::parse2::<Item>(item)? {
        Item::Struct(s) => s,
        Item::Enum(e) => {
            return Err(syn::Error::new_spanned(
                e.enum_token,
                "`#[entity]` can only be applied to a struct with named fields; \
                 to store an enum in a column, use #[derive(DbEnum)]",
            ))
        }
        Item::Union(u) => {
            return Err(syn::Error::new_spanned(
                u.union_token,
                "`#[entity]` can only be applied to a struct with named fields",
            ))
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "`#[entity]` can only be applied to a struct with named fields",
            ))
        }
    };
    let model = EntityModel::from_struct(args, &mut item)?;
    if lacks_diesel {
        // One clear error instead of the dozen that diesel's `use ::diesel;` would cause.
        let message = crate::manifest::MISSING_DIESEL;
        return Ok(quote! {
            #item
            ::core::compile_error!(#message);
        });
    }
    let generated = generate(&model);
    Ok(quote! {
        #item
        #generated
    })
}

/// Lints that generated code must not trigger in user crates.
fn allow_lints() -> TokenStream {
    quote! {
        #[allow(
            missing_docs,
            missing_debug_implementations,
            non_snake_case,
            non_camel_case_types,
            unused_imports,
            unused_qualifications,
            unreachable_pub,
            dead_code,
            clippy::all,
            clippy::pedantic,
            clippy::nursery
        )]
    }
}

/// What every part of the generator works from: the entity and the paths the code names.
pub(super) struct Gen<'a> {
    /// The validated entity.
    pub(super) m: &'a EntityModel,
    /// custodian's runtime, `::custodian::__private`.
    pub(super) p: TokenStream,
    /// diesel, through the runtime: `::custodian::__private::diesel`.
    pub(super) d: TokenStream,
    /// The hidden module holding the `table!` (`__custodian_<struct>`).
    pub(super) hidden: Ident,
    /// The path of the table module, `__custodian_<struct>::<table>`.
    pub(super) tp: TokenStream,
    /// `Self`'s select clause, `<Self as SelectableHelper<MultiBackend>>::as_select()`.
    pub(super) as_select: TokenStream,
    /// The primary key columns, in field order.
    pub(super) keys: Vec<&'a Column>,
}

impl<'a> Gen<'a> {
    fn new(m: &'a EntityModel) -> Self {
        let p = quote!(::custodian::__private);
        let d = quote!(::custodian::__private::diesel);
        let hidden = format_ident!(
            "__custodian_{}",
            snake_case(&m.ident.unraw().to_string()),
            span = Span::call_site()
        );
        let table = &m.table;
        let tp = quote!(#hidden::#table);
        let as_select = quote!(<Self as #d::SelectableHelper<#p::MultiBackend>>::as_select());
        Gen {
            m,
            p,
            d,
            hidden,
            tp,
            as_select,
            keys: m.key_columns().collect(),
        }
    }

    /// `.filter(deleted_at IS NULL)` for soft-delete entities, nothing otherwise.
    pub(super) fn live(&self) -> TokenStream {
        let tp = &self.tp;
        match self.m.role(Role::DeletedAt) {
            Some(c) => {
                let f = &c.ident;
                quote!(.filter(#tp::#f.is_null()))
            }
            None => quote!(),
        }
    }
}

/// Everything `#[entity]` adds after the struct: the table module, its re-export, and a
/// `const _` block with the checks, conversions, trait impls and relations.
fn generate(m: &EntityModel) -> TokenStream {
    let g = Gen::new(m);
    let (p, d, tp, hidden) = (&g.p, &g.d, &g.tp, &g.hidden);
    let (ident, vis, table) = (&m.ident, &m.vis, &m.table);
    let allow = allow_lints();

    let table_mod = table::table_macro(&g);
    let asserts = columns::asserts(&g);
    let helpers = columns::helpers(&g);
    let aliases = relations::related_aliases(&g);
    let hooks_fn = hooks::hooks_fn(&g);
    let meta = meta::meta(&g);
    let queryable = load::queryable(&g);

    let key_ty = keys::key_ty(&g);
    let key_clone = keys::key_clone(&g);
    let queries = load::queries(&g);
    let hooks = hooks::hooks(&g);
    let validate = hooks::validate(&g);
    let version_fn = roles::version_fn(&g);
    let raw_stamp = roles::raw_stamp(&g);
    let audit_fns = audit::audit_fns(&g);
    let cache_fns = cache::cache_fns(&g);
    let insert_fns = insert::insert_fns(&g);
    let find_fns = find::find_fns(&g);
    let set_write_fns = set_write::set_write_fns(&g);
    let update_fns = update::update_fns(&g);
    let delete_fns = delete::delete_fns(&g);
    let relations = relations::relations(&g);

    quote! {
        #[doc(hidden)]
        #allow
        #table_mod

        #allow
        #vis use #hidden::#table;

        #allow
        const _: () = {
            use #d::{
                ExpressionMethods as _, NullableExpressionMethods as _, OptionalExtension as _,
                QueryDsl as _, RunQueryDsl as _, SelectableHelper as _,
            };
            use #d;

            #asserts
            #helpers
            #aliases
            #hooks_fn

            const __CUSTODIAN_META: #p::EntityMeta = #meta;

            #queryable

            impl #p::Entity for #ident {
                type Key = #key_ty;
                type Table = #tp::table;
                #queries

                #hooks

                fn key(&self) -> Self::Key {
                    #key_clone
                }

                #validate
                #version_fn
                #raw_stamp
                #audit_fns
                #cache_fns

                #insert_fns

                #find_fns
                #set_write_fns

                #update_fns

                #delete_fns
            }

            #relations
        };
    }
}
