//! Malformed experiment files and failing runs: each gives a located, helpful error on stderr and
//! a non-zero exit, never a panic, and leaves no table (not even a partial file) behind.

use crate::common;

use common::*;

struct Case {
    file: std::path::PathBuf,
    expect: String,
    at: Option<String>,
}

fn cases() -> Vec<Case> {
    let dir = repo().join("crates/circuitry/tests/bad_runs");
    circuitry_testkit::files_with_extension(&dir, "toml")
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let header = |tag: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(tag))
                    .map(|s| s.trim().to_string())
            };
            Case {
                expect: header("# expect:")
                    .unwrap_or_else(|| panic!("{} has no # expect:", file.display())),
                at: header("# at:"),
                file,
            }
        })
        .collect()
}

#[test]
fn every_bad_run_fails_cleanly_with_a_located_error() {
    let cases = cases();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let out = tempfile::tempdir().unwrap();
        let o = circuitry(&[
            "run",
            case.file.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let name = case.file.file_name().unwrap().to_string_lossy();
        if o.status.success() {
            failures.push(format!("{name}: succeeded"));
            continue;
        }
        if stderr.contains("panicked") || o.status.code().is_none_or(|c| c == 101) {
            failures.push(format!("{name}: panicked\n{stderr}"));
        }
        if !stderr.contains(&case.expect) {
            failures.push(format!("{name}: stderr lacks `{}`:\n{stderr}", case.expect));
        }
        if let Some(at) = &case.at {
            let located = format!("{}:{at}", case.file.display());
            if !stderr.contains(&located) {
                failures.push(format!(
                    "{name}: stderr does not point at {located}:\n{stderr}"
                ));
            }
        }
        let left = parquet_files(out.path());
        if !left.is_empty() {
            failures.push(format!("{name}: left output files {left:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
