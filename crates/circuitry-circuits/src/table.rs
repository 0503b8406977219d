//! Tidy tables as analyses emit them: named, typed columns of equal length. The runner turns
//! them into Arrow record batches and Parquet files; analyses never see those formats.

use std::fmt;

/// The type of a column's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    U32,
    I32,
    I64,
    F32,
    F64,
    Utf8,
    Bool,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::U32 => "u32",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::Utf8 => "utf8",
            DType::Bool => "bool",
        })
    }
}

/// A column's declaration: what `circuitry analyses` lists and what the Parquet schema says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub dtype: DType,
    /// Whether the column may hold nulls (e.g. `head` for MLP rows of an attribution table).
    pub nullable: bool,
    pub description: &'static str,
}

impl ColumnSpec {
    pub const fn new(name: &'static str, dtype: DType, description: &'static str) -> ColumnSpec {
        ColumnSpec {
            name,
            dtype,
            nullable: false,
            description,
        }
    }
    pub const fn nullable(
        name: &'static str,
        dtype: DType,
        description: &'static str,
    ) -> ColumnSpec {
        ColumnSpec {
            name,
            dtype,
            nullable: true,
            description,
        }
    }
}

/// A column's values; `None` entries are nulls.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    U32(Vec<Option<u32>>),
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F32(Vec<Option<f32>>),
    F64(Vec<Option<f64>>),
    Utf8(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

impl ColumnData {
    pub fn empty(dtype: DType) -> ColumnData {
        match dtype {
            DType::U32 => ColumnData::U32(Vec::new()),
            DType::I32 => ColumnData::I32(Vec::new()),
            DType::I64 => ColumnData::I64(Vec::new()),
            DType::F32 => ColumnData::F32(Vec::new()),
            DType::F64 => ColumnData::F64(Vec::new()),
            DType::Utf8 => ColumnData::Utf8(Vec::new()),
            DType::Bool => ColumnData::Bool(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ColumnData::U32(v) => v.len(),
            ColumnData::I32(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::F32(v) => v.len(),
            ColumnData::F64(v) => v.len(),
            ColumnData::Utf8(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match self {
            ColumnData::U32(_) => DType::U32,
            ColumnData::I32(_) => DType::I32,
            ColumnData::I64(_) => DType::I64,
            ColumnData::F32(_) => DType::F32,
            ColumnData::F64(_) => DType::F64,
            ColumnData::Utf8(_) => DType::Utf8,
            ColumnData::Bool(_) => DType::Bool,
        }
    }

    fn push(&mut self, value: Value) {
        match (self, value) {
            (ColumnData::U32(v), Value::U32(x)) => v.push(Some(x)),
            (ColumnData::I32(v), Value::I32(x)) => v.push(Some(x)),
            (ColumnData::I64(v), Value::I64(x)) => v.push(Some(x)),
            (ColumnData::F32(v), Value::F32(x)) => v.push(Some(x)),
            (ColumnData::F64(v), Value::F64(x)) => v.push(Some(x)),
            (ColumnData::Utf8(v), Value::Utf8(x)) => v.push(Some(x)),
            (ColumnData::Bool(v), Value::Bool(x)) => v.push(Some(x)),
            (col, Value::Null) => col.push_null(),
            (col, value) => panic!("value {value:?} does not fit a {} column", col.dtype()),
        }
    }

    fn push_null(&mut self) {
        match self {
            ColumnData::U32(v) => v.push(None),
            ColumnData::I32(v) => v.push(None),
            ColumnData::I64(v) => v.push(None),
            ColumnData::F32(v) => v.push(None),
            ColumnData::F64(v) => v.push(None),
            ColumnData::Utf8(v) => v.push(None),
            ColumnData::Bool(v) => v.push(None),
        }
    }
}

/// One cell, for row-wise building.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U32(u32),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Utf8(String),
    Bool(bool),
    Null,
}

impl From<u32> for Value {
    fn from(x: u32) -> Self {
        Value::U32(x)
    }
}
impl From<i32> for Value {
    fn from(x: i32) -> Self {
        Value::I32(x)
    }
}
impl From<i64> for Value {
    fn from(x: i64) -> Self {
        Value::I64(x)
    }
}
impl From<f32> for Value {
    fn from(x: f32) -> Self {
        Value::F32(x)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::F64(x)
    }
}
impl From<String> for Value {
    fn from(x: String) -> Self {
        Value::Utf8(x)
    }
}
impl From<&str> for Value {
    fn from(x: &str) -> Self {
        Value::Utf8(x.to_string())
    }
}
impl From<bool> for Value {
    fn from(x: bool) -> Self {
        Value::Bool(x)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Self {
        x.map_or(Value::Null, Into::into)
    }
}

/// A chunk of rows of one table, with the table's declared schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub schema: Vec<ColumnSpec>,
    pub columns: Vec<ColumnData>,
}

impl Table {
    pub fn new(schema: &[ColumnSpec]) -> Table {
        Table {
            columns: schema.iter().map(|c| ColumnData::empty(c.dtype)).collect(),
            schema: schema.to_vec(),
        }
    }

    /// Appends one row; values are given in schema order.
    ///
    /// Panics when the row does not fit the schema: that is a bug in the analysis, not bad input.
    pub fn push_row(&mut self, row: Vec<Value>) {
        assert_eq!(
            row.len(),
            self.schema.len(),
            "row length does not match the schema"
        );
        for ((col, spec), value) in self.columns.iter_mut().zip(&self.schema).zip(row) {
            assert!(
                spec.nullable || value != Value::Null,
                "column `{}` is not nullable",
                spec.name
            );
            col.push(value);
        }
    }

    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, ColumnData::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.schema
            .iter()
            .position(|c| c.name == name)
            .map(|i| &self.columns[i])
    }

    /// Adds a constant column in front (sweep parameters, model and dataset names).
    pub fn prepend_constant(&mut self, spec: ColumnSpec, value: Value) {
        let mut col = ColumnData::empty(spec.dtype);
        for _ in 0..self.len() {
            col.push(value.clone());
        }
        self.schema.insert(0, spec);
        self.columns.insert(0, col);
    }
}

/// Where an analysis sends its rows, chunk by chunk, so memory does not grow with the dataset.
/// `part` is `None` for the analysis's main table, or names a secondary table
/// (written as `<analysis>.<part>.parquet`).
pub trait TableSink {
    fn write(&mut self, part: Option<&str>, chunk: Table) -> Result<(), String>;
}

/// A sink that keeps everything in memory (tests, and small tables).
#[derive(Default, Debug)]
pub struct MemorySink {
    pub tables: Vec<(Option<String>, Table)>,
}

impl MemorySink {
    /// All chunks of one part, concatenated.
    pub fn part(&self, part: Option<&str>) -> Option<Table> {
        let mut chunks = self
            .tables
            .iter()
            .filter(|(p, _)| p.as_deref() == part)
            .map(|(_, t)| t);
        let mut out = chunks.next()?.clone();
        for t in chunks {
            for (col, more) in out.columns.iter_mut().zip(&t.columns) {
                append(col, more);
            }
        }
        Some(out)
    }
}

fn append(col: &mut ColumnData, more: &ColumnData) {
    match (col, more) {
        (ColumnData::U32(a), ColumnData::U32(b)) => a.extend_from_slice(b),
        (ColumnData::I32(a), ColumnData::I32(b)) => a.extend_from_slice(b),
        (ColumnData::I64(a), ColumnData::I64(b)) => a.extend_from_slice(b),
        (ColumnData::F32(a), ColumnData::F32(b)) => a.extend_from_slice(b),
        (ColumnData::F64(a), ColumnData::F64(b)) => a.extend_from_slice(b),
        (ColumnData::Utf8(a), ColumnData::Utf8(b)) => a.extend_from_slice(b),
        (ColumnData::Bool(a), ColumnData::Bool(b)) => a.extend_from_slice(b),
        (a, b) => panic!(
            "cannot append a {} column to a {} column",
            b.dtype(),
            a.dtype()
        ),
    }
}

impl TableSink for MemorySink {
    fn write(&mut self, part: Option<&str>, chunk: Table) -> Result<(), String> {
        self.tables.push((part.map(String::from), chunk));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: [ColumnSpec; 3] = [
        ColumnSpec::new("layer", DType::I32, "layer"),
        ColumnSpec::nullable("head", DType::I32, "head"),
        ColumnSpec::new("score", DType::F64, "score"),
    ];

    #[test]
    fn rows_and_chunks() {
        let mut t = Table::new(&SCHEMA);
        t.push_row(vec![0i32.into(), Some(1i32).into(), 0.5f64.into()]);
        t.push_row(vec![1i32.into(), Value::Null, 0.25f64.into()]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.column("head"),
            Some(&ColumnData::I32(vec![Some(1), None]))
        );
        let mut sink = MemorySink::default();
        sink.write(None, t.clone()).unwrap();
        sink.write(None, t).unwrap();
        assert_eq!(sink.part(None).unwrap().len(), 4);
        assert!(sink.part(Some("other")).is_none());
    }

    #[test]
    #[should_panic(expected = "not nullable")]
    fn nulls_in_non_nullable_columns_are_bugs() {
        let mut t = Table::new(&SCHEMA);
        t.push_row(vec![Value::Null, Value::Null, 0.5f64.into()]);
    }
}
