//! The size bounds of `circuitry_vocab::limits`: a huge generator size or a file without line
//! ends is an error naming the size, the bound and the setting (or file line) at fault, found
//! before anything of that size is allocated or read.

use crate::common;

use std::fs;
use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use circuitry_data::{
    DataError, Dataset, DatasetOptions, FileSource, IoiConfig, RepeatedTokensConfig, RowLocation,
    Source, build_dataset,
};
use circuitry_vocab::limits::{MAX_LINE_BYTES, MAX_PROMPTS, MAX_TOKENS};
use common::{bpe, tiny};

fn build(source: Source, n_ctx: Option<usize>) -> Result<Dataset, DataError> {
    let tokenizer = match source {
        Source::RepeatedTokens(_) => tiny(),
        _ => bpe(),
    };
    let options = DatasetOptions {
        prepend_bos: true,
        n_ctx,
        repeats: None,
    };
    build_dataset("d", &source, &tokenizer, &options)
}

/// The error's message and the setting it names.
fn config_error(result: Result<Dataset, DataError>) -> (String, Option<String>) {
    let err = result.unwrap_err();
    assert!(matches!(err, DataError::Config { .. }), "{err}");
    (err.to_string(), err.key().map(str::to_string))
}

#[test]
fn a_billion_generated_prompts_is_an_error_at_n_before_anything_is_allocated() {
    // A billion prompts would be tens of gigabytes; the check runs before the first one.
    let repeated = Source::RepeatedTokens(RepeatedTokensConfig::new(1_000_000_000, 5, 0));
    let ioi = Source::Ioi(IoiConfig::new(1_000_000_000, 0));
    for source in [repeated, ioi] {
        let (message, key) = config_error(build(source, Some(64)));
        assert_eq!(key.as_deref(), Some("n"), "{message}");
        assert!(
            message.contains("n = 1000000000 prompts")
                && message.contains(&MAX_PROMPTS.to_string())
                && message.contains("hint:"),
            "{message}"
        );
    }
    // One over the bound is already refused.
    let over = RepeatedTokensConfig::new(MAX_PROMPTS as usize + 1, 1, 0);
    let (message, key) = config_error(build(Source::RepeatedTokens(over), None));
    assert_eq!(key.as_deref(), Some("n"), "{message}");
}

#[test]
fn too_many_tokens_in_all_is_an_error_at_the_size_at_fault() {
    // Each prompt fits the context, but together they pass the bound: `n` is at fault.
    let many = RepeatedTokensConfig::new(MAX_PROMPTS as usize, 100, 0);
    let (message, key) = config_error(build(Source::RepeatedTokens(many), Some(1024)));
    assert_eq!(key.as_deref(), Some("n"), "{message}");
    assert!(
        message.contains("1000000 prompts of 201 tokens would hold 201000000 tokens")
            && message.contains(&MAX_TOKENS.to_string()),
        "{message}"
    );
    // Without a context to check against (training data), one prompt alone over the bound
    // points at its length, and at repeats when that is the larger factor.
    let long = RepeatedTokensConfig::new(3, 1_000_000_000, 0);
    let (message, key) = config_error(build(Source::RepeatedTokens(long), None));
    assert_eq!(key.as_deref(), Some("length"), "{message}");
    let mut repeated = RepeatedTokensConfig::new(3, 2, 0);
    repeated.repeats = 1_000_000_000;
    let (message, key) = config_error(build(Source::RepeatedTokens(repeated), None));
    assert_eq!(key.as_deref(), Some("repeats"), "{message}");
    // Longer than the context: reported at length, as before the bound on tokens.
    let (message, key) = config_error(build(
        Source::RepeatedTokens(RepeatedTokensConfig::new(3, 40, 0)),
        Some(64),
    ));
    assert_eq!(key.as_deref(), Some("length"), "{message}");
}

fn malformed(err: &DataError) -> (&RowLocation, String) {
    match err {
        DataError::Malformed { location, .. } => (location, err.to_string()),
        other => panic!("expected a malformed-file error, got {other}"),
    }
}

fn file(path: &std::path::Path) -> Result<Dataset, DataError> {
    build(Source::File(FileSource::new(path)), None)
}

#[test]
fn a_line_longer_than_a_mebibyte_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(MAX_LINE_BYTES + 10);
    // (file, good lines before the long one, the rows they hold)
    for (name, good, rows) in [
        ("p.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n", 2),
        ("p.csv", "text\na\n", 1),
    ] {
        // A file without line ends: never read into memory whole.
        let path = dir.path().join(name);
        fs::write(&path, &long).unwrap();
        let err = file(&path).unwrap_err();
        let (location, message) = malformed(&err);
        assert_eq!(location, &RowLocation::Line(1), "{message}");
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("line 1")
                && message.contains("longer than 1048576 bytes")
                && message.contains("hint:"),
            "{message}"
        );
        assert_eq!(err.key(), Some("path"));
        // After good lines, the long line is named by its number.
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(good.as_bytes()).unwrap();
        f.write_all(long.as_bytes()).unwrap();
        drop(f);
        let line = good.lines().count() + 1;
        let err = file(&path).unwrap_err();
        assert_eq!(malformed(&err).0, &RowLocation::Line(line), "{err}");
        // A limit that stops before the long line reads the good rows only.
        let mut limited = FileSource::new(&path);
        limited.limit = Some(rows);
        let ds = build(Source::File(limited), None).unwrap();
        assert_eq!(ds.len(), rows, "{name}");
    }
}

#[test]
fn a_parquet_cell_longer_than_a_mebibyte_is_an_error_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let long = "x".repeat(MAX_LINE_BYTES + 1);
    let texts: ArrayRef = Arc::new(StringArray::from(vec!["a", long.as_str()]));
    let batch = RecordBatch::try_from_iter([("text", texts)]).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        fs::File::create(&path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = file(&path).unwrap_err();
    let (location, message) = malformed(&err);
    assert_eq!(location, &RowLocation::Row(2), "{message}");
    assert!(message.contains("1048577 bytes"), "{message}");
}

#[test]
fn a_file_with_more_rows_than_a_dataset_may_have_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.jsonl");
    let body = "{\"text\": \"a\"}\n".repeat(MAX_PROMPTS as usize + 1);
    fs::write(&path, body).unwrap();
    let err = file(&path).unwrap_err();
    let (location, message) = malformed(&err);
    assert_eq!(
        location,
        &RowLocation::Line(MAX_PROMPTS as usize + 1),
        "{message}"
    );
    assert!(
        message.contains("more than 1000000 rows") && message.contains("limit"),
        "{message}"
    );
}
