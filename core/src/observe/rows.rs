//! [`Rows`]: how many rows the result of one statement stands for, for the statement span's
//! `rows` field.

/// The number of rows a statement's result returned or changed.
pub(crate) trait Rows {
    /// The row count.
    fn rows(&self) -> u64;
}

/// Rows affected, as diesel's `execute` reports them.
impl Rows for usize {
    fn rows(&self) -> u64 {
        *self as u64
    }
}

/// Rows returned by a load.
impl<T> Rows for Vec<T> {
    fn rows(&self) -> u64 {
        self.len() as u64
    }
}

/// A look-up of at most one row: found or not.
impl<T> Rows for Option<T> {
    fn rows(&self) -> u64 {
        u64::from(self.is_some())
    }
}
