//! Procedural macros of custodian. Use them through the `custodian` crate.
use proc_macro::TokenStream;

/// Maps a struct to a table.
#[proc_macro_attribute]
pub fn entity(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Stores a field-less enum as text.
#[proc_macro_derive(DbEnum, attributes(db_enum))]
pub fn db_enum(_item: TokenStream) -> TokenStream {
    TokenStream::new()
}
