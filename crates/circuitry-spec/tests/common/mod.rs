//! Helpers the spec's test modules share: the toy experiment several of them start from,
//! loading a file with `--set` overrides or a header with analyses, checking a table of expected
//! errors, unwrapping one variant of an enum, and the example folders.

use std::path::{Path, PathBuf};

use circuitry_spec::{AnalysisParams, Experiment, ExperimentFile, SpecError};

/// A model `toy` at `$model_path`, a `repeated_tokens` dataset `rep` (8 prompts of 5 tokens) and
/// a `head_detector` analysis `heads` of them, as a `&'static str` (for `const`s).
macro_rules! toy_experiment {
    ($model_path:literal) => {
        concat!(
            "\n[models.toy]\npath = \"",
            $model_path,
            r#""

[datasets.rep]
generator = "repeated_tokens"
n = 8
length = 5

[analyses.heads]
kind = "head_detector"
model = "toy"
dataset = "rep"
"#
        )
    };
}
pub(crate) use toy_experiment;

/// The fields of `$value` (an enum value or a reference to one) as the tuple variant `$variant`;
/// panics showing the value if it is another variant.
macro_rules! unwrap_variant {
    ($variant:path, $value:expr) => {
        match $value {
            $variant(fields) => fields,
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}
pub(crate) use unwrap_variant;

/// The toy experiment with the model at `models/a`.
pub const TOY: &str = toy_experiment!("models/a");

/// The file `text` (named `path` in diagnostics) with `overrides` applied in order, as `--set`
/// applies them.
pub fn load_with_overrides<S: AsRef<str>>(
    text: &str,
    path: impl AsRef<Path>,
    overrides: &[S],
) -> Result<Experiment, SpecError> {
    let mut file = ExperimentFile::parse(text, path)?;
    for o in overrides {
        file.apply_override(o.as_ref())?;
    }
    file.resolve()
}

/// `header` (models and datasets) followed by `analyses`.
pub fn load_analyses(header: &str, analyses: &str) -> Result<Experiment, SpecError> {
    Experiment::from_str(&format!("{header}{analyses}"), "kinds.toml")
}

/// The parameters of analysis `name` in `header` + `analyses`, which must load.
pub fn analysis_params(header: &str, analyses: &str, name: &str) -> AnalysisParams {
    let e = load_analyses(header, analyses).unwrap_or_else(|e| panic!("{e}"));
    e.analyses[name].params.clone()
}

/// The error `header` + `analyses` fails with.
pub fn analyses_error(header: &str, analyses: &str) -> String {
    load_analyses(header, analyses)
        .expect_err("should fail")
        .to_string()
}

/// For each `(input, expected)` case, `error(input)` contains `expected`; a failure names its case.
pub fn assert_errors_contain<'a, I: AsRef<str> + std::fmt::Debug>(
    error: impl Fn(&str) -> String,
    cases: impl IntoIterator<Item = (I, &'a str)>,
) {
    for (input, expected) in cases {
        let e = error(input.as_ref());
        assert!(
            e.contains(expected),
            "case {input:?}: expected {expected:?} in\n{e}"
        );
    }
}

/// The `.toml` files of `tests/<folder>`, sorted.
pub fn example_files(folder: &str) -> Vec<PathBuf> {
    circuitry_testkit::files_with_extension(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(folder),
        "toml",
    )
}
