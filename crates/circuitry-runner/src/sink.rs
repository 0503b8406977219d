//! Parquet output: one file per table, streamed row group by row group into a temporary file
//! next to its destination, and renamed into place only when complete; and reading tables back
//! (from the cache) with constant columns put in front.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    UInt32Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use circuitry_circuits::table::{ColumnData, ColumnSpec, DType, Table, Value};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::error::RunError;

/// Key under which every table carries its provenance JSON.
pub const METADATA_KEY: &str = "circuitry";

fn arrow_type(dtype: DType) -> DataType {
    match dtype {
        DType::U32 => DataType::UInt32,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::F32 => DataType::Float32,
        DType::F64 => DataType::Float64,
        DType::Utf8 => DataType::Utf8,
        DType::Bool => DataType::Boolean,
    }
}

/// The Arrow schema of a table declaration (column descriptions go into field metadata).
pub fn arrow_schema(columns: &[ColumnSpec]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            Field::new(c.name, arrow_type(c.dtype), c.nullable).with_metadata(
                std::collections::HashMap::from([(
                    "description".to_string(),
                    c.description.to_string(),
                )]),
            )
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn arrow_array(col: &ColumnData) -> ArrayRef {
    macro_rules! build {
        ($builder:ty, $values:expr) => {{
            let mut b = <$builder>::with_capacity($values.len());
            for v in $values {
                b.append_option(v.clone());
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match col {
        ColumnData::U32(v) => build!(UInt32Builder, v),
        ColumnData::I32(v) => build!(Int32Builder, v),
        ColumnData::I64(v) => build!(Int64Builder, v),
        ColumnData::F32(v) => build!(Float32Builder, v),
        ColumnData::F64(v) => build!(Float64Builder, v),
        ColumnData::Bool(v) => build!(BooleanBuilder, v),
        ColumnData::Utf8(v) => {
            let mut b =
                StringBuilder::with_capacity(v.len(), v.iter().flatten().map(String::len).sum());
            for s in v {
                b.append_option(s.as_deref());
            }
            Arc::new(b.finish())
        }
    }
}

/// A Table chunk as an Arrow record batch under `schema`.
pub fn record_batch(schema: &SchemaRef, table: &Table) -> Result<RecordBatch, String> {
    let arrays: Vec<ArrayRef> = table.columns.iter().map(arrow_array).collect();
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())
}

/// One table being written.
pub struct TableWriter {
    pub name: String,
    pub final_path: PathBuf,
    temp_path: PathBuf,
    schema: SchemaRef,
    columns: Vec<ColumnSpec>,
    writer: Option<ArrowWriter<File>>,
    /// Rows of [`TableWriter::write_with_prefix`] not yet written.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pub rows: usize,
}

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 1 << 16;

impl TableWriter {
    /// Opens `<dir>/<name>.parquet` for writing (as a temporary file until [`commit`]).
    pub fn create(dir: &Path, name: &str, columns: &[ColumnSpec]) -> Result<TableWriter, RunError> {
        let final_path = dir.join(format!("{name}.parquet"));
        let temp_path = dir.join(format!(".{name}.parquet.partial-{}", std::process::id()));
        let schema = arrow_schema(columns);
        let file = File::create(&temp_path).map_err(|e| RunError::io(&temp_path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| RunError::output(&temp_path, e.to_string()))?;
        Ok(TableWriter {
            name: name.to_string(),
            final_path,
            temp_path,
            schema,
            columns: columns.to_vec(),
            writer: Some(writer),
            pending: Vec::new(),
            pending_rows: 0,
            rows: 0,
        })
    }

    /// Appends the rows of `batch` (read from a table declared with this writer's last columns)
    /// after `prefix`, constant columns matching this writer's first columns.
    ///
    /// Rows reach the Parquet writer in slices of exactly [`ROW_GROUP_ROWS`] (the rest at
    /// [`TableWriter::finish`]): the file's bytes depend on the rows alone, not on how the
    /// cached pieces (whole nodes or prompt ranges) cut them.
    pub fn write_with_prefix(
        &mut self,
        prefix: &[(ColumnSpec, Value)],
        batch: &RecordBatch,
    ) -> Result<(), RunError> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = prefix
            .iter()
            .map(|(spec, value)| arrow_array(&ColumnData::repeated(spec.dtype, value, n)))
            .collect();
        arrays.extend(batch.columns().iter().cloned());
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| {
            RunError::output(
                &self.final_path,
                format!("internal error: cached table does not match its declaration: {e}"),
            )
        })?;
        self.pending_rows += n;
        self.pending.push(batch);
        while self.pending_rows >= ROW_GROUP_ROWS {
            self.flush_pending(ROW_GROUP_ROWS)?;
        }
        Ok(())
    }

    /// Writes the first `rows` pending rows as one batch.
    fn flush_pending(&mut self, rows: usize) -> Result<(), RunError> {
        if rows == 0 {
            return Ok(());
        }
        let all = arrow_select::concat::concat_batches(&self.schema, &self.pending)
            .map_err(|e| RunError::output(&self.final_path, e.to_string()))?;
        let rest = all.num_rows() - rows;
        self.pending = if rest > 0 {
            vec![all.slice(rows, rest)]
        } else {
            Vec::new()
        };
        self.pending_rows = rest;
        let writer = self.writer.as_mut().expect("open writer");
        writer
            .write(&all.slice(0, rows))
            .map_err(|e| RunError::output(&self.temp_path, e.to_string()))?;
        self.rows += rows;
        Ok(())
    }

    /// Appends a chunk, whose schema must equal the declared one.
    pub fn write(&mut self, chunk: &Table) -> Result<(), RunError> {
        if chunk.schema != self.columns {
            let got: Vec<&str> = chunk.schema.iter().map(|c| c.name).collect();
            let want: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
            return Err(RunError::output(
                &self.final_path,
                format!("internal error: chunk columns {got:?} differ from the declared {want:?}"),
            ));
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let batch =
            record_batch(&self.schema, chunk).map_err(|e| RunError::output(&self.final_path, e))?;
        let writer = self.writer.as_mut().expect("open writer");
        writer
            .write(&batch)
            .map_err(|e| RunError::output(&self.temp_path, e.to_string()))?;
        self.rows += chunk.len();
        Ok(())
    }

    /// Finishes the file with its provenance metadata; it stays temporary until [`commit`].
    pub fn finish(&mut self, metadata: &serde_json::Value) -> Result<(), RunError> {
        if self.writer.is_some() {
            self.flush_pending(self.pending_rows)?;
        }
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        writer.append_key_value_metadata(KeyValue::new(
            METADATA_KEY.to_string(),
            metadata.to_string(),
        ));
        let file = writer
            .into_inner()
            .map_err(|e| RunError::output(&self.temp_path, e.to_string()))?;
        file.sync_all()
            .map_err(|e| RunError::io(&self.temp_path, e))?;
        Ok(())
    }

    /// Moves the finished file into place.
    pub fn commit(&self) -> Result<(), RunError> {
        std::fs::rename(&self.temp_path, &self.final_path)
            .map_err(|e| RunError::io(&self.final_path, e))
    }
}

/// Every record batch of the Parquet file at `path`, in order.
pub fn read_batches(path: &Path) -> Result<Vec<RecordBatch>, RunError> {
    let file = File::open(path).map_err(|e| RunError::io(path, e))?;
    let unreadable = |e: String| {
        RunError::output(
            path,
            format!("unreadable cached table ({e}); rerun with --force"),
        )
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(1 << 16).build())
        .map_err(|e| unreadable(e.to_string()))?;
    reader
        .map(|b| b.map_err(|e| unreadable(e.to_string())))
        .collect()
}

/// Writes `bytes` to `path` atomically (temporary file + rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let temp = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&temp, bytes).map_err(|e| RunError::io(&temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| RunError::io(path, e))
}

/// blake3 of a file's bytes, hex (streamed: tables can be large).
pub fn file_hash(path: &Path) -> Result<String, RunError> {
    let file = File::open(path).map_err(|e| RunError::io(path, e))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .map_err(|e| RunError::io(path, e))?;
    Ok(hasher.finalize().to_hex().to_string())
}
