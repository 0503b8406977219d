//! Helpers for end-to-end tests: run the binary, read Parquet tables back, read fixtures.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::{
    Array, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub fn repo() -> PathBuf {
    circuitry_testkit::repo_root()
}

pub fn fixture(name: &str) -> PathBuf {
    circuitry_testkit::fixture_dir(name)
}

/// Runs `circuitry ARGS` and returns its output (with the default node cache under `--out`,
/// whatever `CIRCUITRY_CACHE` the caller's environment sets).
pub fn circuitry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_circuitry"))
        .args(args)
        .env_remove("CIRCUITRY_CACHE")
        .current_dir(repo())
        .output()
        .expect("run the circuitry binary")
}

/// Runs an experiment file into `out`, panicking with stderr on failure.
pub fn run_ok(file: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = circuitry(&args);
    assert!(
        o.status.success(),
        "circuitry run failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Writes the experiment file `toml` to `dir/fixture.toml`, runs it into `dir/out` and returns
/// the output directory of its experiment `name`.
pub fn run_text(dir: &Path, toml: &str, name: &str) -> PathBuf {
    let file = dir.join("fixture.toml");
    std::fs::write(&file, toml).unwrap();
    let out = dir.join("out");
    run_ok(&file, &out, &[]);
    out.join(name)
}

/// A whole Parquet table as one record batch, plus its `circuitry` metadata.
pub struct TableData {
    pub batch: RecordBatch,
    pub metadata: serde_json::Value,
}

pub fn read_table(path: &Path) -> TableData {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let metadata = kv
        .iter()
        .find(|k| k.key == "circuitry")
        .and_then(|k| k.value.as_deref())
        .map(|v| serde_json::from_str(v).unwrap())
        .expect("circuitry metadata");
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let batch = arrow_select_concat(&schema, &batches);
    TableData { batch, metadata }
}

fn arrow_select_concat(schema: &arrow_schema::SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    if batches.len() == 1 {
        return batches[0].clone();
    }
    let columns = (0..schema.fields().len())
        .map(|i| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            arrow_select::concat::concat(&arrays).unwrap()
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

impl TableData {
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }
    pub fn columns(&self) -> Vec<String> {
        self.batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
    fn col(&self, name: &str) -> &dyn Array {
        self.batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}; have {:?}", self.columns()))
            .as_ref()
    }
    /// Column `name` as Arrow array type `A`.
    fn typed<A: Array + 'static>(&self, name: &str) -> &A {
        let c = self.col(name);
        c.as_any().downcast_ref::<A>().unwrap_or_else(|| {
            panic!(
                "column {name} is {}, not {}",
                c.data_type(),
                std::any::type_name::<A>()
            )
        })
    }
    pub fn str(&self, name: &str) -> Vec<Option<String>> {
        let a = self.typed::<StringArray>(name);
        (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
            .collect()
    }
    pub fn i32(&self, name: &str) -> Vec<Option<i32>> {
        let a = self.typed::<Int32Array>(name);
        (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| a.value(i)))
            .collect()
    }
    pub fn u32(&self, name: &str) -> Vec<u32> {
        self.typed::<UInt32Array>(name).values().to_vec()
    }
    pub fn i64(&self, name: &str) -> Vec<i64> {
        self.typed::<Int64Array>(name).values().to_vec()
    }
    pub fn bool(&self, name: &str) -> Vec<bool> {
        let a = self.typed::<BooleanArray>(name);
        (0..a.len()).map(|i| a.value(i)).collect()
    }
    pub fn f64(&self, name: &str) -> Vec<f64> {
        let c = self.col(name);
        if let Some(a) = c.as_any().downcast_ref::<Float64Array>() {
            return a.values().to_vec();
        }
        let a = self.typed::<Float32Array>(name);
        a.values().iter().map(|&x| x as f64).collect()
    }
}

/// Reference tensors of a fixture model: name -> (shape, f32 values or i64 ids as f64).
pub fn reference(model: &str) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    circuitry_testkit::load_reference(model)
        .into_iter()
        .map(|(name, t)| {
            let values = t.values_f64();
            (name, (t.shape, values))
        })
        .collect()
}

/// Token rows of a reference `*.input_ids` tensor.
pub fn id_rows(t: &(Vec<usize>, Vec<f64>)) -> Vec<Vec<u32>> {
    t.1.chunks(t.0[1])
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect()
}

/// `[[1, 2], [3]]` as TOML.
pub fn toml_rows(rows: &[Vec<u32>]) -> String {
    let inner: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "[{}]",
                r.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    format!("[{}]", inner.join(", "))
}

/// Every `.parquet` file (or partial file) left in `dir`.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(parquet_files(&p));
            } else if p.to_string_lossy().contains(".parquet") {
                out.push(p);
            }
        }
    }
    out
}

/// The SmolLM2-135M-Instruct GGUF (see `circuitry_testkit::smollm2_gguf`).
pub fn smollm2() -> PathBuf {
    circuitry_testkit::smollm2_gguf()
}
