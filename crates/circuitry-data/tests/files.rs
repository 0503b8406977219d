use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use circuitry_data::{
    DataError, Dataset, DatasetOptions, FileFormat, FileSource, RowLocation, Source, build_dataset,
};
use common::{bpe, fixture};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// The committed fixtures' columns: text, corrupt, answers IO/S, field note.
fn source(path: PathBuf) -> FileSource {
    let mut s = FileSource::new(path);
    s.corrupt_column = Some("corrupt".into());
    s.answer_columns = BTreeMap::from([("IO".into(), "io".into()), ("S".into(), "s".into())]);
    s.field_columns = vec!["note".into()];
    s
}

fn build(s: FileSource) -> Result<Dataset, DataError> {
    build_dataset(
        "file",
        &Source::File(s),
        &bpe(),
        &DatasetOptions {
            prepend_bos: true,
            n_ctx: None,
            repeats: None,
        },
    )
}

/// Writes `body` to `path`; the file as a source with the default columns.
fn written(path: &Path, body: &str) -> FileSource {
    fs::write(path, body).unwrap();
    FileSource::new(path)
}

/// `s` with the answer `IO` read from column `io`.
fn with_io_answer(mut s: FileSource) -> FileSource {
    s.answer_columns = BTreeMap::from([("IO".into(), "io".into())]);
    s
}

/// Writes `batch` as a Parquet file (`props`: `None` for the writer's defaults).
fn write_batch(path: &Path, batch: &RecordBatch, props: Option<WriterProperties>) {
    let mut w =
        ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), props).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Writes `columns` (name, values) as a Parquet file with two rows per row group.
fn write_parquet(path: &Path, columns: &[(&str, Vec<Option<&str>>)]) {
    let arrays: Vec<(&str, ArrayRef)> = columns
        .iter()
        .map(|(name, values)| {
            (
                *name,
                Arc::new(StringArray::from(values.clone())) as ArrayRef,
            )
        })
        .collect();
    let batch = RecordBatch::try_from_iter(arrays).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(2))
        .build();
    write_batch(path, &batch, Some(props));
}

/// The location, column and available columns of a [`DataError::MissingColumn`].
fn missing_column(err: &DataError) -> (&RowLocation, &str, &[String]) {
    let DataError::MissingColumn {
        location,
        column,
        available,
        ..
    } = err
    else {
        panic!("{err}")
    };
    (location, column, available)
}

/// The location of a [`DataError::Malformed`].
fn malformed(err: &DataError) -> &RowLocation {
    let DataError::Malformed { location, .. } = err else {
        panic!("{err}")
    };
    location
}

/// The location, column and message of a [`DataError::BadValue`].
fn bad_value(err: &DataError) -> (&RowLocation, &str, &str) {
    let DataError::BadValue {
        location,
        column,
        message,
        ..
    } = err
    else {
        panic!("{err}")
    };
    (location, column, message)
}

#[test]
fn jsonl_csv_and_parquet_give_identical_datasets() {
    let tok = bpe();
    let jsonl = build(source(fixture("data/prompts.jsonl"))).unwrap();
    let csv = build(source(fixture("data/prompts.csv"))).unwrap();
    // written by pyarrow (string and large_string columns, two row groups)
    let parquet = build(source(fixture("data/prompts.parquet"))).unwrap();
    assert_eq!(jsonl.len(), 5);
    assert_eq!(jsonl.prompts, csv.prompts);
    assert_eq!(jsonl.prompts, parquet.prompts);
    assert_eq!(jsonl.hash, csv.hash);
    assert_eq!(jsonl.hash, parquet.hash);

    // written here with the parquet crate from the JSONL records
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<serde_json::Value> = fs::read_to_string(fixture("data/prompts.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let col = |k: &str| lines.iter().map(|v| v[k].as_str()).collect::<Vec<_>>();
    let path = dir.path().join("mine.parquet");
    write_parquet(
        &path,
        &[
            ("note", col("note")),
            ("text", col("text")),
            ("io", col("io")),
            ("s", col("s")),
            ("corrupt", col("corrupt")),
        ],
    );
    let mine = build(source(path)).unwrap();
    assert_eq!(mine.prompts, jsonl.prompts);
    assert_eq!(mine.hash, jsonl.hash);

    // content checks
    let p = &jsonl.prompts[0];
    assert_eq!(
        p.text.as_deref(),
        Some("When Mary and John went to the store, John gave a drink to")
    );
    assert_eq!(tok.token_text(p.answer("IO").unwrap()), " Mary");
    assert_eq!(tok.token_text(p.answer("S").unwrap()), " John");
    assert_eq!(p.fields["note"], "abba");
    assert_eq!(
        jsonl.prompts[3].fields["note"],
        "quote \" and newline\nhere"
    );
    assert_eq!(
        jsonl.prompts[4].text.as_deref(),
        Some("  leading spaces kept")
    );
    assert!(jsonl.has_corrupt());

    // the same file read without the optional columns
    let plain = build(FileSource::new(fixture("data/prompts.csv"))).unwrap();
    assert!(
        plain
            .iter()
            .all(|p| p.answers.is_empty() && p.corrupt_tokens.is_none() && p.fields.is_empty())
    );
    assert_eq!(plain.prompts[2].tokens, jsonl.prompts[2].tokens);
}

#[test]
fn format_comes_from_the_extension_or_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompts.txt");
    fs::copy(fixture("data/prompts.jsonl"), &path).unwrap();
    let err = build(source(path.clone())).unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { .. }), "{err}");
    assert!(err.to_string().contains("prompts.txt"));
    let mut s = source(path);
    s.format = Some("jsonl".parse().unwrap());
    assert_eq!(build(s).unwrap().len(), 5);
    assert_eq!(
        FileFormat::from_path(Path::new("a/B.PARQUET")),
        Some(FileFormat::Parquet)
    );
    assert_eq!(
        FileFormat::from_path(Path::new("x.ndjson")),
        Some(FileFormat::Jsonl)
    );
    assert!("xlsx".parse::<FileFormat>().is_err());

    let err = build(FileSource::new(dir.path().join("missing.csv"))).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.csv"));
}

#[test]
fn limit_reads_the_first_rows() {
    for name in ["prompts.jsonl", "prompts.csv", "prompts.parquet"] {
        let mut s = source(fixture(&format!("data/{name}")));
        s.limit = Some(3);
        let ds = build(s).unwrap();
        assert_eq!(ds.len(), 3, "{name}");
        assert_eq!(ds.prompts[2].fields["note"], "comma, inside", "{name}");
        let mut s = source(fixture(&format!("data/{name}")));
        s.limit = Some(0);
        assert!(matches!(build(s).unwrap_err(), DataError::Config { .. }));
    }
}

#[test]
fn missing_columns_name_the_file_row_and_existing_columns() {
    // JSONL: per line, listing that line's keys
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.jsonl");
    let err = build(with_io_answer(written(
        &path,
        "{\"text\": \"The cat\", \"io\": \" cat\"}\n\n{\"txt\": \"The mat\", \"io\": \" mat\"}\n",
    )))
    .unwrap_err();
    let (location, column, available) = missing_column(&err);
    let DataError::MissingColumn { path: p, .. } = &err else {
        unreachable!()
    };
    assert_eq!(*location, RowLocation::Line(3));
    assert_eq!(column, "text");
    assert_eq!(available, &["txt", "io"]);
    assert_eq!(p, &path);
    let msg = err.to_string();
    assert!(
        msg.contains("p.jsonl") && msg.contains("line 3") && msg.contains("`txt`, `io`"),
        "{msg}"
    );
    assert!(msg.contains("hint:"), "{msg}");

    // CSV: the header
    let mut s = FileSource::new(fixture("data/prompts.csv"));
    s.corrupt_column = Some("counterfactual".into());
    let err = build(s).unwrap_err();
    let (location, column, available) = missing_column(&err);
    assert_eq!(*location, RowLocation::Header);
    assert_eq!(column, "counterfactual");
    assert_eq!(available, &["text", "corrupt", "io", "s", "note"]);

    // Parquet: the schema
    let mut s = FileSource::new(fixture("data/prompts.parquet"));
    s.text_column = "prompt".into();
    let err = build(s).unwrap_err();
    let (location, column, available) = missing_column(&err);
    assert_eq!(*location, RowLocation::File);
    assert_eq!(column, "prompt");
    assert_eq!(available, &["text", "corrupt", "io", "s", "note"]);
}

#[test]
fn bad_rows_name_the_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    // JSONL: a number where text is expected, at line 2
    let path = dir.path().join("bad.jsonl");
    let err = build(written(&path, "{\"text\": \"The cat\"}\n{\"text\": 5}\n")).unwrap_err();
    let (location, column, message) = bad_value(&err);
    assert_eq!((location, column), (&RowLocation::Line(2), "text"));
    assert!(message.contains("found a number"), "{message}");

    // JSONL: invalid JSON at line 3 (after a blank line)
    let err = build(written(
        &path,
        "{\"text\": \"The cat\"}\n\n{\"text\": \"The\n",
    ))
    .unwrap_err();
    assert_eq!(*malformed(&err), RowLocation::Line(3));
    assert!(
        build(written(&path, "[1, 2]\n"))
            .unwrap_err()
            .to_string()
            .contains("expected a JSON object")
    );

    // JSONL: numbers are fine in field columns, null leaves the field out
    let mut s = written(
        &path,
        "{\"text\": \"The cat\", \"n\": 5}\n{\"text\": \"The mat\", \"n\": null}\n",
    );
    s.field_columns = vec!["n".into()];
    let ds = build(s).unwrap();
    assert_eq!(ds.prompts[0].fields["n"], "5");
    assert!(!ds.prompts[1].fields.contains_key("n"));

    // CSV: a record with too many fields; its line is named (the header is line 1)
    let path = dir.path().join("bad.csv");
    let err = build(written(
        &path,
        "text,io\nThe cat, cat\nThe mat, mat,extra\n",
    ))
    .unwrap_err();
    assert_eq!(*malformed(&err), RowLocation::Line(3));

    // CSV: a multi-token answer is reported with the line its record starts on
    let err = build(with_io_answer(written(
        &path,
        "text,io\n\"The cat\nsat\", cat\nThe mat, Zyxwvut\nThe dog, Alice\n",
    )))
    .unwrap_err();
    let DataError::AnswerTokens { rows, .. } = &err else {
        panic!("{err}")
    };
    let origins: Vec<(u32, String)> = rows.iter().map(|r| (r.id, r.origin.clone())).collect();
    let shown = path.display().to_string();
    assert_eq!(
        origins,
        [
            (1, format!("{shown} line 4")),
            (2, format!("{shown} line 5"))
        ]
    );

    // Parquet: a null text at row 3
    let path = dir.path().join("null.parquet");
    write_parquet(
        &path,
        &[("text", vec![Some("The cat"), Some("The mat"), None])],
    );
    let err = build(FileSource::new(&path)).unwrap_err();
    let (location, column, _) = bad_value(&err);
    assert_eq!((location, column), (&RowLocation::Row(3), "text"));
    assert!(
        err.to_string()
            .contains("null.parquet` row 3, column `text`: null value"),
        "{err}"
    );

    // Parquet: a non-string text column
    let path = dir.path().join("ints.parquet");
    let batch =
        RecordBatch::try_from_iter([("text", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)])
            .unwrap();
    write_batch(&path, &batch, None);
    let err = build(FileSource::new(&path)).unwrap_err();
    let (location, _, message) = bad_value(&err);
    assert_eq!(*location, RowLocation::Row(1));
    assert!(message.contains("Int64"), "{message}");

    // Parquet: not a Parquet file at all
    let path = dir.path().join("fake.parquet");
    assert!(matches!(
        build(written(&path, "not parquet")).unwrap_err(),
        DataError::Malformed {
            location: RowLocation::File,
            ..
        }
    ));
}

#[test]
fn corrupt_length_mismatches_in_files_list_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let rows = [
        ("The cat sat.", "The mat sat."),
        ("The cat sat.", "The cat sat on the mat."),
        ("The cat.", "The cat."),
        ("The cat sat.", "The."),
    ];
    let body: String = rows
        .iter()
        .map(|(t, c)| format!("{}\n", serde_json::json!({"text": t, "corrupt": c})))
        .collect();
    let mut s = written(&path, &body);
    s.corrupt_column = Some("corrupt".into());
    let err = build(s).unwrap_err();
    let DataError::CorruptLength { rows, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 3]);
    assert!(
        rows[0].origin.ends_with("c.jsonl line 2"),
        "{}",
        rows[0].origin
    );
    assert!(
        rows[1].origin.ends_with("c.jsonl line 4"),
        "{}",
        rows[1].origin
    );
}
