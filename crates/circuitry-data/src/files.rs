//! Prompt files: JSONL, CSV and Parquet.
//!
//! Every format is read into the same records (text, optional corrupt text, answers, fields),
//! so the same content gives the same dataset whatever the format. Rows are counted the way a
//! person looks for them: 1-based lines for JSONL and CSV (CSV's header is line 1; a record is
//! named by the line it starts on), 1-based rows for Parquet.
//!
//! Reading is bounded ([`circuitry_vocab::limits`]): JSONL and CSV files are read through a
//! reader that stops at a line longer than [`MAX_LINE_BYTES`] or after [`MAX_FILE_BYTES`], so a
//! file without line ends is never read into memory whole; a Parquet text cell is held to
//! [`MAX_LINE_BYTES`] too, and no file gives more than [`MAX_PROMPTS`] rows.

use std::cell::Cell as SharedCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use circuitry_vocab::limits::{MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_PROMPTS};

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
    /// Position name -> column of integer token indices into the text's tokens (negative from
    /// the end).
    pub position_columns: BTreeMap<String, String>,
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
            position_columns: BTreeMap::new(),
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
        for (name, col) in &self.position_columns {
            cols.push((Role::Position(name.clone()), col.clone()));
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
    Position(String),
    Field,
}

impl Role {
    /// Whether a number (or boolean) cell is read, as its text.
    fn allows_numbers(&self) -> bool {
        matches!(self, Role::Field | Role::Position(_))
    }

    /// Whether a null cell is allowed (and leaves the value out).
    fn allows_null(&self) -> bool {
        matches!(self, Role::Field)
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
    /// Where the [`Bounded`] reader of the file stopped, if it did.
    overrun: Rc<SharedCell<Option<Overrun>>>,
}

impl Ctx<'_> {
    fn open(&self) -> Result<File, DataError> {
        File::open(self.path).map_err(|e| self.io(e))
    }

    /// `file`, read through a [`Bounded`] reader that reports to this context.
    fn bounded(&self, file: File) -> Bounded<File> {
        Bounded {
            inner: file,
            line: 1,
            line_bytes: 0,
            total: 0,
            overrun: self.overrun.clone(),
        }
    }

    /// The error for a read the [`Bounded`] reader stopped, if it stopped one.
    fn overrun_error(&self) -> Option<DataError> {
        Some(match self.overrun.get()? {
            Overrun::Line(line) => self.malformed(
                RowLocation::Line(line),
                format!("the line is longer than {MAX_LINE_BYTES} bytes (1 MiB), the most a prompt file's line may hold"),
                "each line holds one prompt record, far shorter than this (is it a file without line ends, or not a JSONL/CSV file?)",
            ),
            Overrun::File => self.malformed(
                RowLocation::File,
                format!("more than {MAX_FILE_BYTES} bytes (1 GiB) would be read, the most read from one prompt file"),
                "set `limit` to read only the first rows, or split the file into several datasets",
            ),
        })
    }

    /// Adds `record` to `out`, unless the file already gave [`MAX_PROMPTS`] rows.
    fn push(
        &self,
        out: &mut Vec<RawRecord>,
        record: RawRecord,
        location: RowLocation,
    ) -> Result<(), DataError> {
        if out.len() as u64 >= MAX_PROMPTS {
            return Err(self.malformed(
                location,
                format!("the file has more than {MAX_PROMPTS} rows, the most one dataset may have"),
                "set `limit` to read only the first rows, or split the file into several datasets",
            ));
        }
        out.push(record);
        Ok(())
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
                None if !role.allows_null() => {
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
                Role::Position(name) => {
                    let index = value.trim().parse::<i64>().map_err(|_| {
                        self.bad(
                            location.clone(),
                            col,
                            format!(
                                "position `{name}` must be an integer token index, not {value:?}"
                            ),
                        )
                    })?;
                    record.positions.insert(name.clone(), index);
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
        overrun: Rc::default(),
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
    for (i, line) in BufReader::new(ctx.bounded(file)).lines().enumerate() {
        if out.len() >= ctx.limit {
            break;
        }
        let location = RowLocation::Line(i + 1);
        let line = line.map_err(|e| match e.kind() {
            _ if ctx.overrun.get().is_some() => ctx.overrun_error().expect("overrun"),
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
                    if role.allows_numbers() =>
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
        let record = ctx.record(location.clone(), cells)?;
        ctx.push(&mut out, record, location)?;
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
        .from_reader(ctx.bounded(file));
    let csv_err = |e: csv::Error| {
        if let Some(overrun) = ctx.overrun_error() {
            return overrun;
        }
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
        let record = ctx.record(RowLocation::Line(line), cells)?;
        ctx.push(&mut out, record, RowLocation::Line(line))?;
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
            let record = ctx.record(location.clone(), cells)?;
            ctx.push(&mut out, record, location)?;
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
        if t.len() > MAX_LINE_BYTES {
            return Err(ctx.malformed(
                location.clone(),
                format!(
                    "column `{col}` holds {} bytes, more than the {MAX_LINE_BYTES} (1 MiB) a prompt file's cell may hold",
                    t.len()
                ),
                "a cell holds one prompt, answer or field, far shorter than this",
            ));
        }
        return Ok(Some(t));
    }
    if role.allows_numbers() {
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

/// Where a [`Bounded`] reader stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overrun {
    /// This 1-based line is longer than [`MAX_LINE_BYTES`].
    Line(usize),
    /// The file is longer than [`MAX_FILE_BYTES`].
    File,
}

/// A reader that fails (and records where in `overrun`) once a line grows past
/// [`MAX_LINE_BYTES`] or the bytes read past [`MAX_FILE_BYTES`], so that a parser reading
/// through it never holds more than that.
struct Bounded<R> {
    inner: R,
    /// The 1-based line the next byte belongs to.
    line: usize,
    /// Bytes of that line read so far.
    line_bytes: usize,
    total: u64,
    overrun: Rc<SharedCell<Option<Overrun>>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(at) = self.overrun.get() {
            return Err(self.stop(at));
        }
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > MAX_FILE_BYTES {
            return Err(self.stop(Overrun::File));
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.line_bytes = 0;
            } else {
                self.line_bytes += 1;
                if self.line_bytes > MAX_LINE_BYTES {
                    return Err(self.stop(Overrun::Line(self.line)));
                }
            }
        }
        Ok(n)
    }
}

impl<R> Bounded<R> {
    fn stop(&self, at: Overrun) -> std::io::Error {
        self.overrun.set(Some(at));
        std::io::Error::other("the prompt file's size limit was reached")
    }
}
