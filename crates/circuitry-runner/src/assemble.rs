//! Assembling a run's tables from the cache: for every table, each variant's node output with
//! the runner's constant columns (sweep values, model, dataset) in front, its provenance, and the
//! manifest. Also puts each trained model at its `output` path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use circuitry_circuits::table::{ColumnSpec, DType, Row, Value};
use circuitry_spec::Experiment;
use serde_json::json;

use crate::cache::{Cache, NodeRecord, TRAINED_MODEL_DIR, cache_file};
use crate::error::RunError;
use crate::manifest::{Manifest, NodeEntry, TableEntry, recorded_path};
use crate::plan::{Plan, VariantPlan};
use crate::sink::{TableWriter, read_batches, write_atomically};
use crate::training::LearningCurveRow;
use circuitry_spec::checkpoints::CHECKPOINTS_DIR;

/// Names of the constant columns the runner prepends to analysis tables.
const MODEL_COLUMN: ColumnSpec =
    ColumnSpec::new("model", DType::Utf8, "The [models.*] entry analysed.");
const DATASET_COLUMN: ColumnSpec =
    ColumnSpec::new("dataset", DType::Utf8, "The [datasets.*] entry read.");

fn stem(analysis: &str, part: Option<&str>) -> String {
    match part {
        Some(p) => format!("{analysis}.{p}"),
        None => analysis.to_string(),
    }
}

/// One output table: its columns, and per variant the cached file and constant columns.
struct Assembly {
    columns: Vec<ColumnSpec>,
    pieces: Vec<(PathBuf, Vec<(ColumnSpec, Value)>)>,
    provenance: Vec<serde_json::Value>,
}

/// Column declarations for the sweep axes (typed after their first value).
fn sweep_columns(plan: &Plan) -> Vec<ColumnSpec> {
    let Some(first) = plan.variants.first() else {
        return vec![];
    };
    first
        .columns
        .iter()
        .map(|(name, value)| {
            let dtype = match value {
                serde_json::Value::Bool(_) => DType::Bool,
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => DType::I64,
                serde_json::Value::Number(_) => DType::F64,
                _ => DType::Utf8,
            };
            // Sweep column names outlive the plan: leak them once per run (a handful of bytes).
            let name: &'static str = Box::leak(name.clone().into_boxed_str());
            ColumnSpec::new(name, dtype, "Sweep parameter of this run.")
        })
        .collect()
}

/// A sweep value in its column's type; one that does not fit (an axis mixing types) is null.
fn sweep_value(dtype: DType, value: &serde_json::Value) -> Value {
    match (dtype, value) {
        (DType::Bool, serde_json::Value::Bool(b)) => Value::Bool(*b),
        (DType::Bool, _) => Value::Null,
        (DType::I64, v) => v.as_i64().map_or(Value::Null, Value::I64),
        (DType::F64, v) => v.as_f64().map_or(Value::Null, Value::F64),
        (_, serde_json::Value::String(s)) => Value::Utf8(s.clone()),
        (_, other) => Value::Utf8(other.to_string()),
    }
}

fn sweep_prefix(sweep: &[ColumnSpec], v: &VariantPlan) -> Vec<(ColumnSpec, Value)> {
    sweep
        .iter()
        .zip(&v.columns)
        .map(|(spec, (_, value))| (spec.clone(), sweep_value(spec.dtype, value)))
        .collect()
}

fn sweep_json(v: &VariantPlan) -> serde_json::Value {
    serde_json::Value::Object(v.columns.iter().cloned().collect())
}

/// What the computing part of a run did, for the manifest.
pub struct Work<'a> {
    /// The nodes this run computed (the rest were read from the cache).
    pub computed: &'a BTreeSet<String>,
    pub forward_passes: usize,
    pub started: Instant,
}

/// Writes every table of `plan` from `cache` into `dir`, with `manifest.json`, and puts trained
/// models at their outputs.
pub fn tables(
    plan: &Plan,
    experiment: &Experiment,
    cache: &Cache,
    dir: &Path,
    work: &Work<'_>,
) -> Result<Manifest, RunError> {
    let computed = work.computed;
    let sweep = sweep_columns(plan);
    let mut tables: BTreeMap<String, Assembly> = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut records: BTreeMap<String, NodeRecord> = BTreeMap::new();
    let mut record = |hash: &str| -> Result<NodeRecord, RunError> {
        if let Some(r) = records.get(hash) {
            return Ok(r.clone());
        }
        if cache.get(hash).is_none() {
            return Err(RunError::Spec(format!(
                "internal error: node {hash} is missing from the cache at {}",
                cache.root().display()
            )));
        }
        let r = cache.record(hash)?;
        records.insert(hash.to_string(), r.clone());
        Ok(r)
    };
    for v in &plan.variants {
        let exp = &v.experiment;
        for t in &v.trains {
            let r = record(&t.hash)?;
            nodes.push(NodeEntry::new(v.index, &r, computed.contains(&t.hash)));
            let spec = &exp.train[&t.name];
            materialize(cache, &t.hash, &exp.resolve_path(&spec.output), &r)?;
            let prefix = sweep_prefix(&sweep, v);
            let table = tables.entry(t.name.clone()).or_insert_with(|| Assembly {
                columns: prefix
                    .iter()
                    .map(|(c, _)| c.clone())
                    .chain(LearningCurveRow::COLUMNS.iter().cloned())
                    .collect(),
                pieces: Vec::new(),
                provenance: Vec::new(),
            });
            let file = cache
                .node_dir(&t.hash)
                .join(format!("{}.parquet", cache_file(None)));
            table.pieces.push((file, prefix));
            table.provenance.push(json!({
                "run": v.index,
                "sweep": sweep_json(v),
                "node": t.hash,
                "train": { "name": t.name, "config": serde_json::to_value(spec).unwrap_or_default(), "hash": exp.train_hash(&t.name) },
                "output": recorded_path(exp, &exp.resolve_path(&spec.output)),
                "model_content_hash": r.facts["model_content_hash"],
                "seed": spec.seed,
            }));
        }
        for a in &v.analyses {
            let hashes = a.node_hashes();
            let r = record(hashes[0])?;
            for (i, h) in hashes.iter().enumerate() {
                let mut entry = NodeEntry::new(v.index, &record(h)?, computed.contains(*h));
                entry.prompts = a.chunks.get(i).map(|c| [c.prompts.start, c.prompts.end]);
                nodes.push(entry);
            }
            let spec = &exp.analyses[&a.name];
            let model = v.model(&a.model);
            let model_hash = match &model.trained_by {
                Some(t) => {
                    let facts = record(&t.hash)?.facts;
                    match t.step {
                        None => facts["model_content_hash"].clone(),
                        Some(step) => facts["checkpoints"][step.to_string()].clone(),
                    }
                }
                None => json!(model.identity),
            };
            let mut prefix = sweep_prefix(&sweep, v);
            if let Some(c) = &v.checkpoint {
                prefix.push((crate::plan::STEP_COLUMN, Value::U32(c.step)));
            }
            prefix.push((MODEL_COLUMN, Value::Utf8(a.model.clone())));
            if let Some(d) = &a.dataset {
                prefix.push((DATASET_COLUMN, Value::Utf8(d.clone())));
            }
            let mut provenance = json!({
                "run": v.index,
                "sweep": sweep_json(v),
                "node": a.hash,
                "analysis": { "name": a.name, "kind": spec.kind(), "config": serde_json::to_value(spec).unwrap_or_default(), "hash": exp.analysis_hash(&a.name) },
                "model": { "name": a.model, "config_hash": exp.model_hash(&a.model), "content_hash": model_hash },
                "seed": exp.seed,
            });
            if let Some(c) = &v.checkpoint {
                provenance["model"]["step"] = json!(c.step);
                provenance["model"]["checkpoint"] = json!(recorded_path(exp, &model.path));
            }
            if let Some(d) = &a.dataset {
                provenance["dataset"] = json!({
                    "name": d,
                    "config_hash": exp.dataset_hash(d),
                    "content_hash": r.facts["dataset_content_hash"],
                    "prompts": r.facts["prompts"],
                });
            }
            for decl in &a.tables {
                let table = tables
                    .entry(stem(&a.name, decl.part))
                    .or_insert_with(|| Assembly {
                        columns: prefix
                            .iter()
                            .map(|(c, _)| c.clone())
                            .chain(decl.columns.iter().cloned())
                            .collect(),
                        pieces: Vec::new(),
                        provenance: Vec::new(),
                    });
                for h in &hashes {
                    let file = cache
                        .node_dir(h)
                        .join(format!("{}.parquet", cache_file(decl.part)));
                    table.pieces.push((file, prefix.clone()));
                }
                table.provenance.push(provenance.clone());
            }
        }
    }
    let mut entries = Vec::new();
    for (stem, table) in tables {
        let mut w = TableWriter::create(dir, &stem, &table.columns)?;
        for (file, prefix) in &table.pieces {
            for batch in read_batches(file)? {
                w.write_with_prefix(prefix, &batch)?;
            }
        }
        w.finish(&json!({
            "tool": "circuitry",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "experiment": experiment.name,
            "experiment_hash": plan.hash,
            "experiment_file": recorded_path(experiment, experiment.path()),
            "overrides": experiment.overrides(),
            "table": stem,
            "device": plan.device,
            "runs": table.provenance,
        }))?;
        w.commit()?;
        entries.push(TableEntry {
            name: stem.clone(),
            path: PathBuf::from(format!("{stem}.parquet")),
            rows: w.rows,
            hash: crate::sink::file_hash(&w.final_path)?,
        });
    }
    let mut manifest = Manifest::new(
        plan,
        experiment,
        entries,
        nodes,
        work.started.elapsed().as_secs_f64(),
    );
    manifest.forward_passes = work.forward_passes;
    write_atomically(&dir.join("manifest.json"), manifest.to_json().as_bytes())?;
    Ok(manifest)
}

/// Puts the model training node `hash` wrote at `output` (unless it is there already), by
/// copying into a sibling directory and swapping it in.
fn materialize(
    cache: &Cache,
    hash: &str,
    output: &Path,
    record: &NodeRecord,
) -> Result<(), RunError> {
    let source = cache.node_dir(hash).join(TRAINED_MODEL_DIR);
    let wanted = record.facts["model_content_hash"].as_str().unwrap_or("");
    let checkpoints = cache.node_dir(hash).join(CHECKPOINTS_DIR);
    let wanted_checkpoints = record
        .facts
        .get("checkpoints")
        .cloned()
        .unwrap_or(json!({}));
    let present = output.is_dir()
        && crate::nodes::files_hash(&crate::nodes::model_files(
            &circuitry_models::ModelSource::HfDir(output.to_path_buf()),
        ))
        .is_ok_and(|h| h == wanted)
        && crate::nodes::checkpoint_hashes(&output.join(CHECKPOINTS_DIR))
            .is_ok_and(|h| json!(h) == wanted_checkpoints);
    if present {
        return Ok(());
    }
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let parent = output.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| RunError::io(parent, e))?;
    // Copies a killed run left (the caller holds the experiment's lock).
    for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        if file.starts_with(&format!(".{name}.partial-"))
            || file.starts_with(&format!(".{name}.old-"))
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let fresh = parent.join(format!(".{name}.partial-{}", std::process::id()));
    std::fs::create_dir_all(&fresh).map_err(|e| RunError::io(&fresh, e))?;
    copy_files(&source, &fresh)?;
    if checkpoints.is_dir() {
        let to = fresh.join(CHECKPOINTS_DIR);
        for e in std::fs::read_dir(&checkpoints).map_err(|e| RunError::io(&checkpoints, e))? {
            let e = e.map_err(|err| RunError::io(&checkpoints, err))?;
            copy_files(&e.path(), &to.join(e.file_name()))?;
        }
    }
    crate::cache::sync_dir_files(&fresh)?;
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if output.exists() {
        std::fs::rename(output, &old).map_err(|e| RunError::io(output, e))?;
    }
    std::fs::rename(&fresh, output).map_err(|e| RunError::io(output, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Copies the files of directory `from` (not its subdirectories) into a new directory `to`.
fn copy_files(from: &Path, to: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(to).map_err(|e| RunError::io(to, e))?;
    for e in std::fs::read_dir(from).map_err(|e| RunError::io(from, e))? {
        let e = e.map_err(|err| RunError::io(from, err))?;
        if e.path().is_file() {
            let dest = to.join(e.file_name());
            std::fs::copy(e.path(), &dest).map_err(|err| RunError::io(&dest, err))?;
        }
    }
    Ok(())
}
