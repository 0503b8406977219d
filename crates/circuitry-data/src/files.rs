//! Prompt files: JSONL, CSV and Parquet.
//!
//! Every format is read into the same records (text, optional corrupt text, answers, fields),
//! so the same content gives the same dataset whatever the format. Rows are counted the way a
//! person looks for them: 1-based lines for JSONL and CSV (CSV's header is line 1; a record is
//! named by the line it starts on), 1-based rows for Parquet.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{DataError, RowLocation};
use crate::record::{RawRecord, Record};

pub use circuitry_vocab::FileFormat;

/// A prompt file and which of its columns to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSource {
    /// The file; the caller resolves relative paths (the runner: against the experiment file).
    pub path: PathBuf,
    /// `None`: inferred from the extension.
    pub format: Option<FileFormat>,
    /// The column holding the prompt text (default `text`).
    pub text_column: String,
    /// The column holding the counterfactual text, if any; every row must have one.
    pub corrupt_column: Option<String>,
    /// Answer name -> column whose text must tokenize to exactly one token.
    pub answer_columns: BTreeMap<String, String>,
    /// Columns passed through as string fields (numbers and booleans are written as text; a
    /// null leaves the field out).
    pub field_columns: Vec<String>,
    /// Read at most this many rows (from the top).
    pub limit: Option<usize>,
}

impl FileSource {
    /// `path` with the default columns (`text`, nothing else) and no limit.
    pub fn new(path: impl Into<PathBuf>) -> FileSource {
        FileSource {
            path: path.into(),
            format: None,
            text_column: "text".to_string(),
            corrupt_column: None,
            answer_columns: BTreeMap::new(),
            field_columns: Vec::new(),
            limit: None,
        }
    }

    /// The format to read the file with.
    pub fn resolved_format(&self, dataset: &str) -> Result<FileFormat, DataError> {
        self.format
            .or_else(|| FileFormat::from_path(&self.path))
            .ok_or_else(|| DataError::UnknownFormat {
                dataset: dataset.to_string(),
                path: self.path.clone(),
            })
    }

    /// Every column the source reads, with its role, in a fixed order.
    fn columns(&self) -> Vec<(Role, String)> {
        let mut cols = vec![(Role::Text, self.text_column.clone())];
        if let Some(c) = &self.corrupt_column {
            cols.push((Role::Corrupt, c.clone()));
        }
        for (name, col) in &self.answer_columns {
            cols.push((Role::Answer(name.clone()), col.clone()));
        }
        for col in &self.field_columns {
            cols.push((Role::Field, col.clone()));
        }
        cols
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    Text,
    Corrupt,
    Answer(String),
    Field,
}

impl Role {
    fn wants_text(&self) -> bool {
        !matches!(self, Role::Field)
    }
}

/// A cell after type checks: text, or null (allowed for fields only).
type Cell = Option<String>;

/// What every reader needs: the file, its columns and the row limit, and the error context.
struct Ctx<'a> {
    dataset: &'a str,
    path: &'a Path,
    /// Every column read, with its role, in [`FileSource::columns`] order.
    columns: Vec<(Role, String)>,
    /// Read at most this many rows.
    limit: usize,
}

impl Ctx<'_> {
    fn open(&self) -> Result<File, DataError> {
        File::open(self.path).map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> DataError {
        DataError::Io {
            dataset: self.dataset.to_string(),
            path: self.path.to_path_buf(),
            source,
        }
    }

    fn missing(&self, location: RowLocation, column: &str, available: Vec<String>) -> DataError {
        DataError::MissingColumn {
            dataset: self.dataset.to_string(),
            path: self.path.to_path_buf(),
            location,
            column: column.to_string(),
            available,
        }
    }

    fn bad(&self, location: RowLocation, column: &str, message: String) -> DataError {
        DataError::BadValue {
            dataset: self.dataset.to_string(),
            path: self.path.to_path_buf(),
            location,
            column: column.to_string(),
            message,
        }
    }

    fn malformed(&self, location: RowLocation, message: String, hint: &'static str) -> DataError {
        DataError::Malformed {
            dataset: self.dataset.to_string(),
            path: self.path.to_path_buf(),
            location,
            message,
            hint,
        }
    }

    fn origin(&self, location: &RowLocation) -> String {
        format!("{} {location}", self.path.display())
    }

    /// Turns the cells of one row (in `columns` order) into a record.
    fn record(&self, location: RowLocation, cells: Vec<Cell>) -> Result<RawRecord, DataError> {
        let mut record = Record::default();
        for ((role, col), cell) in self.columns.iter().zip(cells) {
            let value = match cell {
                Some(v) => v,
                None if role.wants_text() => {
                    return Err(self.bad(location, col, "null value".to_string()));
                }
                None => continue,
            };
            match role {
                Role::Text => record.text = value,
                Role::Corrupt => record.corrupt = Some(value),
                Role::Answer(name) => {
                    record.answers.insert(name.clone(), value);
                }
                Role::Field => {
                    record.fields.insert(col.clone(), value);
                }
            }
        }
        Ok(RawRecord {
            origin: self.origin(&location),
            record,
        })
    }
}

/// Reads the records of a prompt file.
pub(crate) fn read_file(dataset: &str, source: &FileSource) -> Result<Vec<RawRecord>, DataError> {
    let format = source.resolved_format(dataset)?;
    let ctx = Ctx {
        dataset,
        path: &source.path,
        columns: source.columns(),
        limit: source.limit.unwrap_or(usize::MAX),
    };
    let read = match format {
        FileFormat::Jsonl => read_jsonl,
        FileFormat::Csv => read_csv,
        FileFormat::Parquet => read_parquet,
    };
    read(&ctx, ctx.open()?)
}

fn read_jsonl(ctx: &Ctx, file: File) -> Result<Vec<RawRecord>, DataError> {
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        if out.len() >= ctx.limit {
            break;
        }
        let location = RowLocation::Line(i + 1);
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => ctx.malformed(
                location.clone(),
                "not valid UTF-8".to_string(),
                "save the file as UTF-8",
            ),
            _ => ctx.io(e),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            ctx.malformed(
                location.clone(),
                format!("invalid JSON: {e}"),
                "each non-blank line must be one JSON object",
            )
        })?;
        let serde_json::Value::Object(map) = value else {
            return Err(ctx.malformed(
                location,
                format!("expected a JSON object, found {}", json_kind(&value)),
                "each non-blank line must be one JSON object",
            ));
        };
        let mut cells = Vec::with_capacity(ctx.columns.len());
        for (role, col) in &ctx.columns {
            let cell = match map.get(col) {
                None => {
                    return Err(ctx.missing(location, col, map.keys().cloned().collect()));
                }
                Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)))
                    if !role.wants_text() =>
                {
                    Some(v.to_string())
                }
                Some(v) => {
                    return Err(ctx.bad(
                        location,
                        col,
                        format!("expected a string, found {}", json_kind(v)),
                    ));
                }
            };
            cells.push(cell);
        }
        out.push(ctx.record(location, cells)?);
    }
    Ok(out)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn read_csv(ctx: &Ctx, file: File) -> Result<Vec<RawRecord>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(file);
    let csv_err = |e: csv::Error| {
        let location = e
            .position()
            .map(|p| RowLocation::Line(p.line() as usize))
            .unwrap_or(RowLocation::File);
        match e.kind() {
            csv::ErrorKind::Io(_) => {
                ctx.malformed(location, e.to_string(), "check the file can be read")
            }
            _ => ctx.malformed(
                location,
                e.to_string(),
                "every record must have as many fields as the header, and the file must be UTF-8",
            ),
        }
    };
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(str::to_string)
        .collect();
    let mut index = Vec::with_capacity(ctx.columns.len());
    for (_, col) in &ctx.columns {
        match headers.iter().position(|h| h == col) {
            Some(i) => index.push(i),
            None => return Err(ctx.missing(RowLocation::Header, col, headers.clone())),
        }
    }
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    while out.len() < ctx.limit && reader.read_record(&mut record).map_err(csv_err)? {
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        let cells = index
            .iter()
            .map(|&i| record.get(i).map(str::to_string))
            .collect();
        out.push(ctx.record(RowLocation::Line(line), cells)?);
    }
    Ok(out)
}

fn read_parquet(ctx: &Ctx, file: File) -> Result<Vec<RawRecord>, DataError> {
    let parquet_err = |location: RowLocation, e: &dyn std::fmt::Display| {
        ctx.malformed(
            location,
            format!("cannot read Parquet: {e}"),
            "check that the file is a valid Parquet file",
        )
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| parquet_err(RowLocation::File, &e))?;
    let schema = builder.schema().clone();
    let available: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut roots = Vec::new();
    for (_, col) in &ctx.columns {
        match available.iter().position(|c| c == col) {
            Some(i) => roots.push(i),
            None => return Err(ctx.missing(RowLocation::File, col, available.clone())),
        }
    }
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| parquet_err(RowLocation::File, &e))?;
    let mut out = Vec::new();
    let mut row0 = 0usize;
    for batch in reader {
        if out.len() >= ctx.limit {
            break;
        }
        let batch: RecordBatch = batch.map_err(|e| parquet_err(RowLocation::Row(row0 + 1), &e))?;
        let arrays: Vec<Column> = ctx
            .columns
            .iter()
            .map(|(_, col)| {
                Column::new(
                    batch
                        .column_by_name(col)
                        .cloned()
                        .expect("projected column present"),
                )
            })
            .collect();
        for r in 0..batch.num_rows() {
            if out.len() >= ctx.limit {
                break;
            }
            let location = RowLocation::Row(row0 + r + 1);
            let mut cells = Vec::with_capacity(ctx.columns.len());
            for ((role, col), column) in ctx.columns.iter().zip(&arrays) {
                let cell = match column {
                    Column::Plain(array) => arrow_cell(ctx, &location, role, col, array, r)?,
                    Column::Dictionary {
                        array,
                        keys,
                        values,
                    } => {
                        if array.is_null(r) {
                            None
                        } else {
                            arrow_cell(ctx, &location, role, col, values, keys[r])?
                        }
                    }
                };
                cells.push(cell);
            }
            out.push(ctx.record(location, cells)?);
        }
        row0 += batch.num_rows();
    }
    Ok(out)
}

/// An Arrow column, with dictionary-encoded ones (e.g. pandas categoricals) unpacked once.
enum Column {
    Plain(ArrayRef),
    Dictionary {
        array: ArrayRef,
        keys: Vec<usize>,
        values: ArrayRef,
    },
}

impl Column {
    fn new(array: ArrayRef) -> Column {
        if let DataType::Dictionary(_, _) = array.data_type() {
            let dict = array.as_any_dictionary();
            let keys = dict.normalized_keys();
            let values = dict.values().clone();
            Column::Dictionary {
                array,
                keys,
                values,
            }
        } else {
            Column::Plain(array)
        }
    }
}

/// One cell of an Arrow column as text (strings for every role; numbers and booleans too for
/// fields).
fn arrow_cell(
    ctx: &Ctx,
    location: &RowLocation,
    role: &Role,
    col: &str,
    array: &ArrayRef,
    r: usize,
) -> Result<Cell, DataError> {
    if array.is_null(r) {
        return Ok(None);
    }
    let text = match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(r).to_string()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(r).to_string()),
        DataType::Utf8View => Some(array.as_string_view().value(r).to_string()),
        _ => None,
    };
    if let Some(t) = text {
        return Ok(Some(t));
    }
    if !role.wants_text() {
        use arrow_array::types::*;
        let v = match array.data_type() {
            DataType::Boolean => Some(array.as_boolean().value(r).to_string()),
            DataType::Int8 => Some(array.as_primitive::<Int8Type>().value(r).to_string()),
            DataType::Int16 => Some(array.as_primitive::<Int16Type>().value(r).to_string()),
            DataType::Int32 => Some(array.as_primitive::<Int32Type>().value(r).to_string()),
            DataType::Int64 => Some(array.as_primitive::<Int64Type>().value(r).to_string()),
            DataType::UInt8 => Some(array.as_primitive::<UInt8Type>().value(r).to_string()),
            DataType::UInt16 => Some(array.as_primitive::<UInt16Type>().value(r).to_string()),
            DataType::UInt32 => Some(array.as_primitive::<UInt32Type>().value(r).to_string()),
            DataType::UInt64 => Some(array.as_primitive::<UInt64Type>().value(r).to_string()),
            DataType::Float32 => Some(array.as_primitive::<Float32Type>().value(r).to_string()),
            DataType::Float64 => Some(array.as_primitive::<Float64Type>().value(r).to_string()),
            _ => None,
        };
        if let Some(v) = v {
            return Ok(Some(v));
        }
    }
    Err(ctx.bad(
        location.clone(),
        col,
        format!("unsupported column type {}", array.data_type()),
    ))
}
