//! The commands that need the application's entities: `migrate generate` and `drift`.

use super::{fail, open, DbArgs, Failure};
use crate::migrate::GenerateOptions;
use crate::EntityMeta;
use std::path::Path;

/// The failure of a command run without entities.
fn needs_entities(command: &str) -> Failure {
    format!(
        "`custodian {command}` needs the application's entities: run it from a binary of the \
         application that calls custodian::cli::main_with(&[Entity::META, ...]) (see the \
         custodian::cli documentation)"
    )
}

/// Writes the migration from each backend's newest snapshot to `entities`; prints the
/// directories written, or that nothing changed.
pub(crate) fn generate(
    dir: &Path,
    name: &str,
    allow_data_loss: bool,
    entities: &[EntityMeta],
) -> Result<u8, Failure> {
    if entities.is_empty() {
        return Err(needs_entities("migrate generate"));
    }
    let options = GenerateOptions::new().allow_data_loss(allow_data_loss);
    match crate::migrate::generate_with(dir, name, entities, crate::backends::ALL, &options)
        .map_err(fail)?
    {
        None => println!("no changes: every backend's newest migration matches the entities"),
        Some(written) => {
            for path in &written {
                println!("wrote {}", path.display());
            }
            println!("{} migrations written", written.len());
        }
    }
    Ok(0)
}

/// Prints each difference between the entities and the live tables; status 1 when there is one.
pub(crate) fn drift(db: &DbArgs, entities: &[EntityMeta]) -> Result<u8, Failure> {
    if entities.is_empty() {
        return Err(needs_entities("drift"));
    }
    let drifts = open(db)?.schema_drift(entities).map_err(fail)?;
    for d in &drifts {
        println!("{d}");
    }
    if drifts.is_empty() {
        println!("no drift: {} entities match their tables", entities.len());
        Ok(0)
    } else {
        println!("{} differences", drifts.len());
        Ok(1)
    }
}
