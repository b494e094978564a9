//! Whether the crate being compiled can name `::diesel`.
//!
//! diesel's `table!`, which `#[entity]` expands to, writes `use ::diesel;`: the user's crate must
//! list diesel among its dependencies, or every entity fails with a dozen unresolved-path errors
//! that never say why. Cargo tells a proc macro where the crate's manifest is
//! (`CARGO_MANIFEST_DIR`); a dependency key `diesel` (or a renamed dependency with
//! `package = "diesel"`) in it is enough. A manifest that cannot be read counts as having diesel,
//! so builds outside cargo keep the compiler's own errors.

use std::path::Path;

/// The message `#[entity]` gives when the crate does not depend on diesel.
pub(crate) const MISSING_DIESEL: &str = "`#[entity]` expands to diesel's `table!`, which needs \
    `diesel` among this crate's dependencies: add `diesel = { version = \"2.3\", \
    default-features = false }` to [dependencies] in Cargo.toml (custodian enables the backend \
    features it needs)";

/// True when the manifest of the crate being compiled has no `diesel` dependency.
pub(crate) fn lacks_diesel() -> bool {
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return false;
    };
    match std::fs::read_to_string(Path::new(&dir).join("Cargo.toml")) {
        Ok(manifest) => !names_diesel(&manifest),
        Err(_) => false,
    }
}

/// Whether a manifest's text declares a dependency called or packaged as `diesel`.
fn names_diesel(manifest: &str) -> bool {
    manifest.lines().any(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        let table = line.trim_start_matches('[').trim_end_matches(']').trim();
        let key = line
            .split(['=', '.', ' ', '\t'])
            .next()
            .unwrap_or("")
            .trim_matches('"');
        key == "diesel"
            || (line.starts_with('[') && table.ends_with(".diesel"))
            || line.replace(' ', "").contains("package=\"diesel\"")
    })
}

#[cfg(test)]
mod tests {
    use super::names_diesel;

    #[test]
    fn finds_every_way_to_declare_diesel() {
        for manifest in [
            "[dependencies]\ndiesel = \"2.3\"\n",
            "[dependencies]\ndiesel = { version = \"2.3\", default-features = false }\n",
            "[dependencies]\ndiesel.workspace = true\n",
            "[dependencies.diesel]\nversion = \"2.3\"\n",
            "[dev-dependencies]\n\"diesel\" = \"2\"\n",
            "[dependencies]\norm = { package = \"diesel\", version = \"2.3\" }\n",
        ] {
            assert!(names_diesel(manifest), "{manifest}");
        }
    }

    #[test]
    fn other_crates_named_like_diesel_do_not_count() {
        for manifest in [
            "[dependencies]\ncustodian = \"0.1\"\n",
            "[dependencies]\ndiesel_migrations = \"2.3\"\n# diesel = \"2.3\"\n",
            "[package]\nname = \"my-diesel-app\"\n",
        ] {
            assert!(!names_diesel(manifest), "{manifest}");
        }
    }
}
