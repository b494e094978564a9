//! Pins what `#[entity]` and `#[derive(DbEnum)]` accept, and the errors they give.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
