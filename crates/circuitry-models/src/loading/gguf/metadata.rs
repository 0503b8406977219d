//! GGUF metadata: the typed key-value pairs in a file's header (model hyperparameters, the
//! tokenizer's vocabulary and merges, ...), and typed access to them with errors that name the
//! file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cursor::Cursor;
use crate::error::LoadError;

/// Arrays may nest; a crafted file could nest them deep enough to overflow the stack.
const MAX_ARRAY_DEPTH: usize = 16;

/// One metadata value, with the GGUF value type it was stored as.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// Value type 0.
    U8(u8),
    /// Value type 1.
    I8(i8),
    /// Value type 2.
    U16(u16),
    /// Value type 3.
    I16(i16),
    /// Value type 4.
    U32(u32),
    /// Value type 5.
    I32(i32),
    /// Value type 6.
    F32(f32),
    /// Value type 7 (one byte, 0 or 1).
    Bool(bool),
    /// Value type 8 (u64 length, UTF-8 bytes).
    String(String),
    /// Value type 9 (u32 element type, u64 count, elements; may nest).
    Array(Vec<GgufValue>),
    /// Value type 10.
    U64(u64),
    /// Value type 11.
    I64(i64),
    /// Value type 12.
    F64(f64),
}

impl GgufValue {
    /// The GGUF name of the value's type (for error messages).
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::U8(_) => "uint8",
            GgufValue::I8(_) => "int8",
            GgufValue::U16(_) => "uint16",
            GgufValue::I16(_) => "int16",
            GgufValue::U32(_) => "uint32",
            GgufValue::I32(_) => "int32",
            GgufValue::F32(_) => "float32",
            GgufValue::Bool(_) => "bool",
            GgufValue::String(_) => "string",
            GgufValue::Array(_) => "array",
            GgufValue::U64(_) => "uint64",
            GgufValue::I64(_) => "int64",
            GgufValue::F64(_) => "float64",
        }
    }

    /// Any integer type, as i128 so that every u64 and i64 fits.
    fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A non-negative integer of any integer type (writers disagree on u32 vs i32 vs u64).
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i128().and_then(|v| u64::try_from(v).ok())
    }

    /// An integer of any integer type that fits in i64.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_i128().and_then(|v| i64::try_from(v).ok())
    }

    /// A float, or an integer read as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    /// A bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// A string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// An array's elements.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The smallest number of bytes a value of GGUF type `ty` occupies (to reject array counts
    /// that cannot fit in the file before allocating for them).
    fn min_size(ty: u32) -> Option<usize> {
        Some(match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            9 => 12,
            _ => return None,
        })
    }

    /// Reads a value of GGUF type `ty`.
    pub(super) fn read(
        cur: &mut Cursor,
        ty: u32,
        what: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<GgufValue, String> {
        Ok(match ty {
            0 => GgufValue::U8(cur.u8(what)?),
            1 => GgufValue::I8(cur.u8(what)? as i8),
            2 => GgufValue::U16(cur.u16(what)?),
            3 => GgufValue::I16(cur.u16(what)? as i16),
            4 => GgufValue::U32(cur.u32(what)?),
            5 => GgufValue::I32(cur.u32(what)? as i32),
            6 => GgufValue::F32(cur.f32(what)?),
            7 => match cur.u8(what)? {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => {
                    return Err(format!(
                        "{} is a bool stored as {b} (expected 0 or 1)",
                        what()
                    ));
                }
            },
            8 => GgufValue::String(cur.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!(
                        "{} nests arrays deeper than {MAX_ARRAY_DEPTH} levels",
                        what()
                    ));
                }
                let elem = cur.u32(what)?;
                let min = GgufValue::min_size(elem).ok_or_else(|| {
                    format!("{} is an array of unknown value type {elem}", what())
                })?;
                let count = cur.u64(what)?;
                let count = usize::try_from(count)
                    .ok()
                    .filter(|&n| n <= cur.remaining() / min)
                    .ok_or_else(|| {
                        format!(
                            "{} claims {count} array elements, more than the {} bytes left in the file can hold",
                            what(),
                            cur.remaining()
                        )
                    })?;
                let mut items = Vec::with_capacity(count);
                for i in 0..count {
                    let item_what = || format!("{}[{i}]", what());
                    items.push(GgufValue::read(cur, elem, &item_what, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(cur.u64(what)?),
            11 => GgufValue::I64(cur.u64(what)? as i64),
            12 => GgufValue::F64(cur.f64(what)?),
            other => return Err(format!("{} has unknown value type {other}", what())),
        })
    }
}

/// A file's metadata, with typed accessors whose errors name the file and the key.
#[derive(Clone, Debug)]
pub struct GgufMetadata {
    path: PathBuf,
    values: BTreeMap<String, GgufValue>,
}

impl GgufMetadata {
    pub(crate) fn new(path: &Path, values: BTreeMap<String, GgufValue>) -> GgufMetadata {
        GgufMetadata {
            path: path.to_path_buf(),
            values,
        }
    }

    /// The file the metadata came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key with its value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, of whatever type.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.values.get(key)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// An error about `key` in this file.
    pub fn error(&self, key: &str, message: impl Into<String>) -> LoadError {
        LoadError::Config {
            path: self.path.clone(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        f: impl Fn(&'a GgufValue) -> Option<T>,
    ) -> Result<Option<T>, LoadError> {
        match self.values.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| {
                self.error(
                    key,
                    format!(
                        "expected {expected}, found a {} value {}",
                        v.type_name(),
                        brief(v)
                    ),
                )
            }),
        }
    }

    fn required<T>(&self, key: &str, value: Result<Option<T>, LoadError>) -> Result<T, LoadError> {
        value?.ok_or_else(|| self.error(key, "missing"))
    }

    /// A string, if present (an error if present with another type; so for all `opt_*`).
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, LoadError> {
        self.typed(key, "a string", GgufValue::as_str)
    }

    /// A required string.
    pub fn str(&self, key: &str) -> Result<&str, LoadError> {
        self.required(key, self.opt_str(key))
    }

    /// A non-negative integer of any integer type.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, LoadError> {
        self.typed(key, "a non-negative integer", GgufValue::as_u64)
    }

    /// A size or count.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, LoadError> {
        match self.opt_u64(key)? {
            None => Ok(None),
            Some(v) => usize::try_from(v)
                .map(Some)
                .map_err(|_| self.error(key, format!("{v} does not fit in memory sizes"))),
        }
    }

    /// A required size or count.
    pub fn usize(&self, key: &str) -> Result<usize, LoadError> {
        self.required(key, self.opt_usize(key))
    }

    /// A token id (or any other u32).
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, LoadError> {
        match self.opt_u64(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| self.error(key, format!("{v} does not fit in 32 bits"))),
        }
    }

    /// A number (float or integer).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, LoadError> {
        self.typed(key, "a number", GgufValue::as_f64)
    }

    /// A bool.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, LoadError> {
        self.typed(key, "a bool", GgufValue::as_bool)
    }

    /// An array of strings.
    pub fn opt_strings(&self, key: &str) -> Result<Option<Vec<&str>>, LoadError> {
        self.typed(key, "an array of strings", |v| {
            v.as_array()?.iter().map(GgufValue::as_str).collect()
        })
    }

    /// An array of integers.
    pub fn opt_ints(&self, key: &str) -> Result<Option<Vec<i64>>, LoadError> {
        self.typed(key, "an array of integers", |v| {
            v.as_array()?.iter().map(GgufValue::as_i64).collect()
        })
    }

    /// An array of numbers (`tokenizer.ggml.scores`).
    pub fn opt_f64s(&self, key: &str) -> Result<Option<Vec<f64>>, LoadError> {
        self.typed(key, "an array of numbers", |v| {
            v.as_array()?.iter().map(GgufValue::as_f64).collect()
        })
    }
}

/// A short rendering of a value for error messages (arrays by length only).
fn brief(v: &GgufValue) -> String {
    match v {
        GgufValue::Array(a) => format!("of {} elements", a.len()),
        GgufValue::String(s) if s.len() > 40 => format!("{:?}...", &s[..s.floor_char_boundary(40)]),
        GgufValue::String(s) => format!("{s:?}"),
        other => format!("{other:?}"),
    }
}
