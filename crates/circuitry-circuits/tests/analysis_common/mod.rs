//! Shared helpers for the tests that build analyses from experiment-file text and drive them
//! through the `Analysis` trait with a `MemorySink`: building, the declared-schema check and
//! typed column reads.
#![allow(dead_code)]

use circuitry_circuits::analyses::build;
use circuitry_circuits::analysis::{Analysis, BatchContext, ModelContext, NoProgress};
use circuitry_circuits::table::{ColumnData, MemorySink, Table};
use circuitry_data::Prompt;
use circuitry_models::burn::prelude::Device;
use circuitry_models::{Intervention, LoadedModel, PaddingSide, Span, TokenBatch};
use circuitry_spec::{AnalysisSpec, Experiment};

/// The analysis `[analyses.a]` of experiment file `text`, as the spec parses and validates it.
pub fn analysis_a(text: &str) -> AnalysisSpec {
    let e = Experiment::from_str(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    e.analyses["a"].clone()
}

/// `spec` built for model `m`.
pub fn built(spec: &AnalysisSpec, m: &LoadedModel) -> Box<dyn Analysis> {
    build(spec, &m.model.config).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a dataset analysis on `prompts` in batches of `batch_size` (padded on `side`).
pub fn run_dataset(
    a: &mut dyn Analysis,
    m: &LoadedModel,
    prompts: &[Prompt],
    batch_size: usize,
    side: PaddingSide,
) -> Result<MemorySink, String> {
    let req = a.requirements();
    assert!(req.dataset && !req.corrupt_run);
    let ctx = ModelContext {
        model: &m.model,
        tokenizer: m.tokenizer.as_ref().expect("fixture tokenizer"),
        progress: &NoProgress,
    };
    let mut sink = MemorySink::default();
    for chunk in prompts.chunks(batch_size) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|p| p.tokens.clone()).collect();
        let batch = TokenBatch::new(&rows, 0, side, &Device::flex());
        let output = m.model.forward(
            &batch,
            &Intervention::capture(req.hooks.iter().copied()),
            Span::default(),
        );
        let b = BatchContext {
            prompts: chunk,
            clean: &batch,
            clean_output: &output,
            corrupt: None,
        };
        a.process(&ctx, &b, &mut sink).map_err(|e| e.message)?;
    }
    a.finish(&ctx, &mut sink).map_err(|e| e.message)?;
    check_declared(a, &sink);
    Ok(sink)
}

/// Every chunk written has the schema its table declared, every column is described, and only
/// declared tables are written.
pub fn check_declared(a: &dyn Analysis, sink: &MemorySink) {
    let decls = a.tables();
    for (part, chunk) in &sink.tables {
        let decl = decls
            .iter()
            .find(|d| d.part == part.as_deref())
            .unwrap_or_else(|| panic!("undeclared table {part:?}"));
        assert_eq!(chunk.schema, decl.columns, "{part:?}");
        assert!(decl.columns.iter().all(|c| !c.description.is_empty()));
    }
}

pub fn f64s(t: &Table, name: &str) -> Vec<f64> {
    nullable_f64s(t, name)
        .into_iter()
        .map(|x| x.expect("no nulls"))
        .collect()
}

pub fn nullable_f64s(t: &Table, name: &str) -> Vec<Option<f64>> {
    match t.column(name) {
        Some(ColumnData::F64(v)) => v.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

pub fn opt_ints(t: &Table, name: &str) -> Vec<Option<i64>> {
    match t.column(name) {
        Some(ColumnData::I32(v)) => v.iter().map(|x| x.map(i64::from)).collect(),
        Some(ColumnData::U32(v)) => v.iter().map(|x| x.map(i64::from)).collect(),
        Some(ColumnData::I64(v)) => v.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

pub fn ints(t: &Table, name: &str) -> Vec<usize> {
    opt_ints(t, name)
        .into_iter()
        .map(|x| x.expect("no nulls") as usize)
        .collect()
}

pub fn strings(t: &Table, name: &str) -> Vec<Option<String>> {
    match t.column(name) {
        Some(ColumnData::Utf8(v)) => v.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

/// A string column without nulls.
pub fn texts(t: &Table, name: &str) -> Vec<String> {
    strings(t, name)
        .into_iter()
        .map(|x| x.expect("no nulls"))
        .collect()
}

pub fn bools(t: &Table, name: &str) -> Vec<bool> {
    match t.column(name) {
        Some(ColumnData::Bool(v)) => v.iter().map(|x| x.unwrap()).collect(),
        other => panic!("{name}: {other:?}"),
    }
}
