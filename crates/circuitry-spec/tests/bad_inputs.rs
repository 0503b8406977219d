//! Every file in `tests/bad/` is a malformed experiment. Its header says what must go wrong:
//!
//! ```toml
//! # expect: a fragment of the first error's message or hint
//! # at: LINE:COLUMN          (1-based, of the first error)
//! # set: KEY=VALUE          (optional, repeatable: --set overrides applied first)
//! # source: override        (optional: the error points into the override, not the file)
//! ```

use std::path::PathBuf;

use circuitry_spec::SourceName;

use crate::common;

struct Case {
    path: PathBuf,
    text: String,
    expect: String,
    at: (usize, usize),
    overrides: Vec<String>,
    in_override: bool,
}

fn header<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(&format!("# {key}:")))
        .map(str::trim)
        .collect()
}

fn cases() -> Vec<Case> {
    common::example_files("bad")
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let expect = header(&text, "expect");
            let at = header(&text, "at");
            assert_eq!(
                expect.len(),
                1,
                "{}: needs one `# expect:` line",
                path.display()
            );
            assert_eq!(at.len(), 1, "{}: needs one `# at:` line", path.display());
            let (line, column) = at[0].split_once(':').expect("# at: LINE:COLUMN");
            Case {
                expect: expect[0].to_string(),
                at: (line.parse().unwrap(), column.parse().unwrap()),
                overrides: header(&text, "set").into_iter().map(String::from).collect(),
                in_override: header(&text, "source") == ["override"],
                path,
                text,
            }
        })
        .collect()
}

fn load(case: &Case) -> Result<circuitry_spec::Experiment, circuitry_spec::SpecError> {
    common::load_with_overrides(&case.text, &case.path, &case.overrides)
}

#[test]
fn bad_inputs_fail_with_the_expected_error_and_location() {
    let cases = cases();
    assert!(cases.len() >= 25, "only {} bad inputs", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.path.file_name().unwrap().to_string_lossy().to_string();
        let err = match load(case) {
            Ok(_) => {
                failures.push(format!("{name}: loaded without error"));
                continue;
            }
            Err(e) => e,
        };
        let first = err.first();
        let text = format!(
            "{}\n{}",
            first.message,
            first.hint.clone().unwrap_or_default()
        );
        if !text.contains(&case.expect) {
            failures.push(format!("{name}: expected `{}` in:\n{err}", case.expect));
            continue;
        }
        if first.line_column() != Some(case.at) {
            failures.push(format!(
                "{name}: expected the error at {:?}, found {:?}:\n{err}",
                case.at,
                first.line_column()
            ));
            continue;
        }
        let location = first.location.as_ref().unwrap();
        let from_override = matches!(location.source, SourceName::Override(_));
        if from_override != case.in_override {
            failures.push(format!(
                "{name}: error source is {}:\n{err}",
                location.source
            ));
            continue;
        }
        // The rendering shows the file (or override), the position, the line and a caret.
        let rendered = err.to_string();
        let position = format!("{}:{}:{}", location.source, case.at.0, case.at.1);
        if !rendered.contains(&position) || !rendered.contains('^') {
            failures.push(format!("{name}: bad rendering:\n{rendered}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
