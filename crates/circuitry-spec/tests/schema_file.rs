//! `schemas/experiment.schema.json` must match what the types generate. To regenerate it:
//!
//! ```sh
//! CIRCUITRY_BLESS=1 cargo test -p circuitry-spec --test integration schema_file
//! ```

use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/experiment.schema.json")
}

#[test]
fn checked_in_schema_is_up_to_date() {
    let generated = serde_json::to_string_pretty(&circuitry_spec::json_schema()).unwrap() + "\n";
    let path = schema_path();
    if std::env::var_os("CIRCUITRY_BLESS").is_some_and(|v| v != "0") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is stale (or missing): the experiment types changed. Regenerate it with\n\n    \
         CIRCUITRY_BLESS=1 cargo test -p circuitry-spec --test integration schema_file\n\nand commit the result.",
        path.display()
    );
}

#[test]
fn good_examples_point_editors_at_the_schema() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/good");
    let text = std::fs::read_to_string(dir.join("induction.toml")).unwrap();
    let directive = text.lines().next().unwrap();
    let relative = directive.strip_prefix("#:schema ").unwrap();
    assert!(dir.join(relative).exists(), "{directive} does not resolve");
}
