//! Tidy tables as analyses emit them: named, typed columns of equal length. The runner turns
//! them into Arrow record batches and Parquet files; analyses never see those formats.

use std::fmt;
use std::marker::PhantomData;

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

    /// `n` copies of `value` (or nulls, for [`Value::Null`]) in a column of `dtype`.
    pub fn repeated(dtype: DType, value: &Value, n: usize) -> ColumnData {
        let mut col = ColumnData::empty(dtype);
        for _ in 0..n {
            col.push(value.clone());
        }
        col
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

/// A Rust type a column can hold: its Arrow type, whether it is nullable (`Option<T>`), and how
/// to append one value. Rows declared with [`table_row!`] get their column types from it.
pub trait ColumnValue {
    const DTYPE: DType;
    const NULLABLE: bool = false;
    /// Appends `self` to `column`, which was made for [`ColumnValue::DTYPE`].
    fn push_to(self, column: &mut ColumnData);
}

macro_rules! column_value {
    ($($ty:ty => $variant:ident $(as $conv:ident)?),+ $(,)?) => {
        $(impl ColumnValue for $ty {
            const DTYPE: DType = DType::$variant;
            fn push_to(self, column: &mut ColumnData) {
                match column {
                    ColumnData::$variant(v) => v.push(Some(self $(.$conv())?)),
                    // A row type and its table are made from one declaration.
                    other => unreachable!("a {} value in a {} column", DType::$variant, other.dtype()),
                }
            }
        })+
    };
}

column_value! {
    u32 => U32,
    i32 => I32,
    i64 => I64,
    f32 => F32,
    f64 => F64,
    bool => Bool,
    String => Utf8,
    &str => Utf8 as to_string,
}

impl<T: ColumnValue> ColumnValue for Option<T> {
    const DTYPE: DType = T::DTYPE;
    const NULLABLE: bool = true;
    fn push_to(self, column: &mut ColumnData) {
        match self {
            Some(x) => x.push_to(column),
            None => column.push_null(),
        }
    }
}

/// One row of a table, declared with [`table_row!`]: its fields are the table's columns, in
/// order, so a row is built by column name and checked by the compiler.
pub trait Row {
    /// The table's columns, one per field.
    const COLUMNS: &'static [ColumnSpec];
    /// Appends the row's values to `columns` (made from [`Row::COLUMNS`]).
    fn push_to(self, columns: &mut [ColumnData]);
}

/// Declares a table's row type: a struct whose fields are the columns (name, Rust type, and
/// description), implementing [`Row`]. `Option<T>` fields are nullable columns. The shared
/// columns of the table conventions (DESIGN.md) have their type there, so it may be left out:
/// `prompt` (u32), `layer`, `head` and `position` (i32) and `token` (utf8); write it to make
/// one nullable (`head: Option<i32>`).
///
/// ```
/// circuitry_circuits::table_row! {
///     /// One head's score.
///     pub struct ScoreRow {
///         layer = "Layer of the head.",
///         head: Option<i32> = "Head index, null for MLPs.",
///         score: f64 = "The score.",
///     }
/// }
/// use circuitry_circuits::table::{Row, Rows};
/// let mut rows = Rows::<ScoreRow>::new();
/// rows.push(ScoreRow { layer: 0, head: None, score: 0.5 });
/// assert_eq!(ScoreRow::COLUMNS[1].name, "head");
/// assert!(ScoreRow::COLUMNS[1].nullable);
/// assert!(!ScoreRow::COLUMNS[0].nullable);
/// assert_eq!(rows.len(), 1);
/// ```
#[macro_export]
macro_rules! table_row {
    ($(#[$meta:meta])* $vis:vis struct $name:ident $(<$lt:lifetime>)? {
        $($field:ident $(: $ty:ty)? = $description:expr),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        $vis struct $name $(<$lt>)? { $(pub $field: $crate::column_type!($field $(: $ty)?),)+ }

        impl $(<$lt>)? $crate::table::Row for $name $(<$lt>)? {
            const COLUMNS: &'static [$crate::table::ColumnSpec] = &[$(
                $crate::table::ColumnSpec {
                    name: stringify!($field),
                    dtype: <$crate::column_type!($field $(: $ty)?) as $crate::table::ColumnValue>::DTYPE,
                    nullable: <$crate::column_type!($field $(: $ty)?) as $crate::table::ColumnValue>::NULLABLE,
                    description: $description,
                },
            )+];

            fn push_to(self, columns: &mut [$crate::table::ColumnData]) {
                let mut columns = columns.iter_mut();
                $($crate::table::ColumnValue::push_to(
                    self.$field,
                    columns.next().expect("one column per field"),
                );)+
            }
        }
    };
}

/// The Rust type of a [`table_row!`] column: the one written, or the conventional type of a
/// shared column.
#[doc(hidden)]
#[macro_export]
macro_rules! column_type {
    ($field:ident : $ty:ty) => {
        $ty
    };
    (prompt) => {
        u32
    };
    (layer) => {
        i32
    };
    (head) => {
        i32
    };
    (position) => {
        i32
    };
    (token) => {
        String
    };
    ($field:ident) => {
        compile_error!(concat!(
            "column `",
            stringify!($field),
            "` needs a type: only prompt, layer, head, position \
             and token have a conventional one"
        ))
    };
}

/// A chunk of rows of type `R`, built row by row and handed to a sink as a [`Table`].
pub struct Rows<R> {
    table: Table,
    row: PhantomData<fn(R)>,
}

impl<R: Row> Rows<R> {
    pub fn new() -> Rows<R> {
        Rows {
            table: Table::new(R::COLUMNS),
            row: PhantomData,
        }
    }

    pub fn push(&mut self, row: R) {
        row.push_to(&mut self.table.columns);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn into_table(self) -> Table {
        self.table
    }
}

impl<R: Row> Default for Rows<R> {
    fn default() -> Self {
        Rows::new()
    }
}

impl<R: Row> Extend<R> for Rows<R> {
    fn extend<I: IntoIterator<Item = R>>(&mut self, rows: I) {
        for row in rows {
            self.push(row);
        }
    }
}

impl<R: Row> FromIterator<R> for Rows<R> {
    fn from_iter<I: IntoIterator<Item = R>>(rows: I) -> Self {
        let mut out = Rows::new();
        out.extend(rows);
        out
    }
}

impl<R: Row> From<Rows<R>> for Table {
    fn from(rows: Rows<R>) -> Table {
        rows.table
    }
}

/// One cell: a constant column's value ([`Table::prepend_constant`]).
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
        let col = ColumnData::repeated(spec.dtype, &value, self.len());
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

    crate::table_row! {
        struct TestRow {
            layer = "layer",
            head: Option<i32> = "head",
            score: f64 = "score",
            name: &'static str = "name",
        }
    }

    #[test]
    fn columns_come_from_the_fields() {
        let kinds: Vec<_> = TestRow::COLUMNS
            .iter()
            .map(|c| (c.name, c.dtype, c.nullable))
            .collect();
        assert_eq!(
            kinds,
            [
                ("layer", DType::I32, false),
                ("head", DType::I32, true),
                ("score", DType::F64, false),
                ("name", DType::Utf8, false),
            ]
        );
    }

    #[test]
    fn rows_and_chunks() {
        let mut rows = Rows::new();
        rows.push(TestRow {
            layer: 0,
            head: Some(1),
            score: 0.5,
            name: "a",
        });
        rows.push(TestRow {
            layer: 1,
            head: None,
            score: 0.25,
            name: "b",
        });
        let t = rows.into_table();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.column("head"),
            Some(&ColumnData::I32(vec![Some(1), None]))
        );
        assert_eq!(
            t.column("name"),
            Some(&ColumnData::Utf8(vec![Some("a".into()), Some("b".into())]))
        );
        let mut sink = MemorySink::default();
        sink.write(None, t.clone()).unwrap();
        sink.write(None, t).unwrap();
        assert_eq!(sink.part(None).unwrap().len(), 4);
        assert!(sink.part(Some("other")).is_none());
    }

    #[test]
    fn constants_go_in_front() {
        let mut t: Table = [TestRow {
            layer: 3,
            head: None,
            score: 1.0,
            name: "x",
        }]
        .into_iter()
        .collect::<Rows<_>>()
        .into();
        t.prepend_constant(
            ColumnSpec::new("model", DType::Utf8, "model"),
            Value::Utf8("m".into()),
        );
        assert_eq!(t.schema[0].name, "model");
        assert_eq!(
            t.column("model"),
            Some(&ColumnData::Utf8(vec![Some("m".into())]))
        );
    }
}
