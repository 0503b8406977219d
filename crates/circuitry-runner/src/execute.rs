//! Executing a plan: load models and datasets once, stream each shared forward pass batch by
//! batch through its analyses, and write every table atomically with its provenance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use circuitry_circuits::analysis::{Analysis, BatchContext, ModelContext, TableDecl};
use circuitry_circuits::table::{ColumnSpec, DType, Table, TableSink, Value};
use circuitry_data::{Dataset, pad_id};
use circuitry_models::burn::prelude::Device;
use circuitry_models::{Intervention, PaddingSide, Span, TokenBatch, parse_device};
use circuitry_spec::Experiment;
use serde_json::json;

use crate::error::{RunError, analysis_err, analysis_failure};
use crate::manifest::{Manifest, TableEntry};
use crate::models::{self, ReadyModel};
use crate::plan::{Plan, VariantPlan, build_analysis, plan};
use crate::progress::Progress;
use crate::sink::{TableWriter, write_atomically};
use crate::{datasets, training};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Root of the outputs; tables go to `<out_root>/<experiment name>/`.
    pub out_root: PathBuf,
    /// No progress bars or status lines.
    pub quiet: bool,
    /// Device name (`flex`, `tch`, `cuda:0`, ...); overrides the experiment's `device`.
    pub device: Option<String>,
}

/// What a run wrote.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub out_dir: PathBuf,
    pub manifest: Manifest,
}

/// Names of the constant columns the runner prepends to analysis tables.
const MODEL_COLUMN: ColumnSpec =
    ColumnSpec::new("model", DType::Utf8, "The [models.*] entry analysed.");
const DATASET_COLUMN: ColumnSpec =
    ColumnSpec::new("dataset", DType::Utf8, "The [datasets.*] entry read.");

/// Runs every variant of `experiment` and writes its tables.
pub fn run(experiment: &Experiment, options: &RunOptions) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let plan = plan(experiment)?;
    let device_name = options
        .device
        .clone()
        .or_else(|| experiment.device.map(|d| d.to_string()))
        .unwrap_or_else(|| "flex".to_string());
    let device = parse_device(&device_name).map_err(RunError::Spec)?;
    let out_dir = options.out_root.join(&experiment.name);
    std::fs::create_dir_all(&out_dir).map_err(|e| RunError::io(&out_dir, e))?;
    let progress = Progress::new(options.quiet);
    let mut run = Execution {
        out_dir: out_dir.clone(),
        device,
        progress,
        sweep_columns: sweep_columns(&plan),
        writers: BTreeMap::new(),
        provenance: BTreeMap::new(),
        models: BTreeMap::new(),
    };
    let result = plan.variants.iter().try_for_each(|v| run.variant(v));
    if let Err(e) = result {
        for (_, w) in std::mem::take(&mut run.writers) {
            w.abandon();
        }
        return Err(e);
    }
    let manifest = run.commit(&plan, experiment, &device_name, started)?;
    Ok(RunReport { out_dir, manifest })
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

fn sweep_value(dtype: DType, value: &serde_json::Value) -> Value {
    match (dtype, value) {
        (DType::Bool, serde_json::Value::Bool(b)) => Value::Bool(*b),
        (DType::I64, v) => v.as_i64().map_or(Value::Null, Value::I64),
        (DType::F64, v) => v.as_f64().map_or(Value::Null, Value::F64),
        (_, serde_json::Value::String(s)) => Value::Utf8(s.clone()),
        (_, other) => Value::Utf8(other.to_string()),
    }
}

/// Model cache key: where it comes from and how it is processed.
type ModelKey = (PathBuf, String);

struct Execution {
    out_dir: PathBuf,
    device: Device,
    progress: Progress,
    sweep_columns: Vec<ColumnSpec>,
    /// Open tables by file stem (`heads`, `eap.edges`).
    writers: BTreeMap<String, TableWriter>,
    /// Per table: the provenance of every run that wrote to it.
    provenance: BTreeMap<String, Vec<serde_json::Value>>,
    models: BTreeMap<ModelKey, ReadyModel>,
}

/// Sends an analysis's chunks to its writers with the runner's constant columns in front.
struct AnalysisSink<'a> {
    analysis: &'a str,
    writers: &'a mut BTreeMap<String, TableWriter>,
    prefix: &'a [(ColumnSpec, Value)],
}

fn stem(analysis: &str, part: Option<&str>) -> String {
    match part {
        Some(p) => format!("{analysis}.{p}"),
        None => analysis.to_string(),
    }
}

impl TableSink for AnalysisSink<'_> {
    fn write(&mut self, part: Option<&str>, mut chunk: Table) -> Result<(), String> {
        let stem = stem(self.analysis, part);
        for (spec, value) in self.prefix.iter().rev() {
            chunk.prepend_constant(spec.clone(), value.clone());
        }
        let writer = self
            .writers
            .get_mut(&stem)
            .ok_or_else(|| format!("internal error: table `{stem}` was not declared"))?;
        writer.write(&chunk).map_err(|e| e.to_string())
    }
}

impl Execution {
    fn variant(&mut self, v: &VariantPlan) -> Result<(), RunError> {
        let exp = &v.experiment;
        if !v.label.is_empty() {
            self.progress
                .status(&format!("run {}: {}", v.index, v.label));
        }
        for name in &v.trains {
            let curve = training::run(name, exp, &self.progress, &self.device)?;
            self.write_curve(v, name, curve)?;
        }
        for f in &v.forwards {
            self.forward(v, f)?;
        }
        for (model, analysis) in &v.weight_analyses {
            let key = self.ensure_model(exp, model)?;
            let ready = &self.models[&key];
            let mut a = build_analysis(exp, analysis, &v.configs[model])?;
            let prefix = self.prefix(v, model, None);
            let hash = ready.content_hash.clone();
            self.open_tables(analysis, &a.tables(), v, model, None, &hash)?;
            let ready = &self.models[&key];
            let ctx = ModelContext {
                model: &ready.model,
                tokenizer: &ready.tokenizer,
            };
            let spinner = self
                .progress
                .spinner(&format!("{analysis} ({model} weights)"));
            let mut sink = AnalysisSink {
                analysis,
                writers: &mut self.writers,
                prefix: &prefix,
            };
            a.finish(&ctx, &mut sink)
                .map_err(|e| analysis_failure(exp, analysis, e))?;
            spinner.finish_and_clear();
        }
        Ok(())
    }

    /// Writes a training run's learning curve as the table `<train name>.parquet`.
    fn write_curve(
        &mut self,
        v: &VariantPlan,
        name: &str,
        mut curve: Table,
    ) -> Result<(), RunError> {
        let exp = &v.experiment;
        let sweep: Vec<(ColumnSpec, Value)> = self
            .sweep_columns
            .iter()
            .zip(&v.columns)
            .map(|(spec, (_, value))| (spec.clone(), sweep_value(spec.dtype, value)))
            .collect();
        for (spec, value) in sweep.iter().rev() {
            curve.prepend_constant(spec.clone(), value.clone());
        }
        if !self.writers.contains_key(name) {
            let w = TableWriter::create(&self.out_dir, name, &curve.schema)?;
            self.writers.insert(name.to_string(), w);
        }
        let spec = &exp.train[name];
        self.provenance.entry(name.to_string()).or_default().push(json!({
            "run": v.index,
            "sweep": v.columns.iter().cloned().collect::<serde_json::Map<_, _>>(),
            "train": { "name": name, "config": serde_json::to_value(spec).unwrap_or_default(), "hash": exp.train_hash(name) },
            "output": exp.resolve_path(&spec.output).display().to_string(),
            "seed": spec.seed,
        }));
        self.writers
            .get_mut(name)
            .expect("just opened")
            .write(&curve)
    }

    fn prefix(
        &self,
        v: &VariantPlan,
        model: &str,
        dataset: Option<&str>,
    ) -> Vec<(ColumnSpec, Value)> {
        let mut prefix: Vec<(ColumnSpec, Value)> = self
            .sweep_columns
            .iter()
            .zip(&v.columns)
            .map(|(spec, (_, value))| (spec.clone(), sweep_value(spec.dtype, value)))
            .collect();
        prefix.push((MODEL_COLUMN, Value::Utf8(model.to_string())));
        if let Some(d) = dataset {
            prefix.push((DATASET_COLUMN, Value::Utf8(d.to_string())));
        }
        prefix
    }

    /// Opens (first run) or checks (later runs) the writers of an analysis's tables and records
    /// this run's provenance for them.
    fn open_tables(
        &mut self,
        analysis: &str,
        decls: &[TableDecl],
        v: &VariantPlan,
        model: &str,
        dataset: Option<&Dataset>,
        model_hash: &str,
    ) -> Result<(), RunError> {
        let exp = &v.experiment;
        let prefix: Vec<ColumnSpec> = self
            .prefix(v, model, dataset.map(|d| d.name.as_str()))
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        for decl in decls {
            let stem = stem(analysis, decl.part);
            let mut columns = prefix.clone();
            columns.extend(decl.columns.iter().cloned());
            match self.writers.get(&stem) {
                Some(w) if w.columns() != columns.as_slice() => {
                    return Err(analysis_err(
                        analysis,
                        format!(
                            "run {} ({}) changes the columns of table `{stem}`; sweeping a key that changes an analysis's columns is not supported",
                            v.index, v.label
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    let w = TableWriter::create(&self.out_dir, &stem, &columns)?;
                    self.writers.insert(stem.clone(), w);
                }
            }
            let spec = &exp.analyses[analysis];
            let mut record = json!({
                "run": v.index,
                "sweep": v.columns.iter().cloned().collect::<serde_json::Map<_, _>>(),
                "analysis": { "name": analysis, "kind": spec.kind(), "config": serde_json::to_value(spec).unwrap_or_default(), "hash": exp.analysis_hash(analysis) },
                "model": { "name": model, "config_hash": exp.model_hash(model), "content_hash": model_hash },
                "seed": exp.seed,
            });
            if let Some(d) = dataset {
                record["dataset"] = json!({ "name": d.name, "config_hash": exp.dataset_hash(&d.name), "content_hash": d.hash, "prompts": d.len() });
            }
            self.provenance.entry(stem).or_default().push(record);
        }
        Ok(())
    }

    fn ensure_model(&mut self, exp: &Experiment, name: &str) -> Result<ModelKey, RunError> {
        let spec = &exp.models[name];
        let base = exp.base_dir();
        let source = models::source(name, spec, &base)?;
        let key = (
            source.path().to_path_buf(),
            format!("{:?}|{:?}", spec.processing, spec.tokenizer),
        );
        if !self.models.contains_key(&key) {
            let spinner = self.progress.spinner(&format!(
                "loading model {name} ({})",
                source.path().display()
            ));
            let t = Instant::now();
            let ready = models::load(name, spec, &base, &self.device)
                .map_err(|e| e.located(exp, &crate::plan::model_key(name, spec)))?;
            spinner.finish_and_clear();
            self.progress.status(&format!(
                "loaded model {name} in {:.1}s",
                t.elapsed().as_secs_f64()
            ));
            self.models.insert(key.clone(), ready);
        }
        Ok(key)
    }

    fn forward(&mut self, v: &VariantPlan, f: &crate::plan::ForwardNode) -> Result<(), RunError> {
        let exp = &v.experiment;
        let key = self.ensure_model(exp, &f.model)?;
        let model_hash = self.models[&key].content_hash.clone();
        let dataset = self.dataset(exp, &key, &f.dataset)?;
        let mut analyses: Vec<(String, Box<dyn Analysis>)> = f
            .analyses
            .iter()
            .map(|a| build_analysis(exp, a, &v.configs[&f.model]).map(|b| (a.clone(), b)))
            .collect::<Result<_, _>>()?;
        for (name, a) in &analyses {
            self.open_tables(name, &a.tables(), v, &f.model, Some(&dataset), &model_hash)?;
        }
        let stream = Stream {
            model: &self.models[&key],
            device: &self.device,
            side: exp.models[&f.model].padding_side,
            batch_size: f.batch_size,
        };
        let ctx = stream.context();
        // Passes over other datasets some analyses need first (e.g. mean-ablation references).
        for (name, a) in analyses.iter_mut() {
            let Some(prepass) = a.prepass() else {
                continue;
            };
            let reference = Self::build_dataset(exp, stream.model, &prepass.dataset)?;
            let bar = self.progress.bar(
                &format!("{} x {} -> {name} (reference)", f.model, prepass.dataset),
                reference.len() as u64,
            );
            stream.each_batch(&reference, &prepass.hooks, None, |batch| {
                a.absorb(&ctx, batch)
                    .map_err(|e| analysis_failure(exp, name, e))?;
                bar.inc(batch.prompts.len() as u64);
                Ok(())
            })?;
            bar.finish_and_clear();
        }
        let prefix = self.prefix(v, &f.model, Some(&f.dataset));
        let bar = self.progress.bar(
            &format!("{} x {} -> {}", f.model, f.dataset, f.analyses.join(", ")),
            dataset.len() as u64,
        );
        let corrupt = f.corrupt.then_some(&f.corrupt_hooks);
        let writers = &mut self.writers;
        stream.each_batch(&dataset, &f.hooks, corrupt, |batch| {
            for (name, a) in analyses.iter_mut() {
                let mut sink = AnalysisSink {
                    analysis: name,
                    writers,
                    prefix: &prefix,
                };
                a.process(&ctx, batch, &mut sink)
                    .map_err(|e| analysis_failure(exp, name, e))?;
            }
            bar.inc(batch.prompts.len() as u64);
            Ok(())
        })?;
        bar.finish_and_clear();
        for (name, a) in analyses.iter_mut() {
            let mut sink = AnalysisSink {
                analysis: name,
                writers: &mut self.writers,
                prefix: &prefix,
            };
            a.finish(&ctx, &mut sink)
                .map_err(|e| analysis_failure(exp, name, e))?;
        }
        Ok(())
    }

    /// Dataset `name`, tokenized for the model under `key`.
    fn dataset(&self, exp: &Experiment, key: &ModelKey, name: &str) -> Result<Dataset, RunError> {
        Self::build_dataset(exp, &self.models[key], name)
    }

    fn build_dataset(
        exp: &Experiment,
        model: &ReadyModel,
        name: &str,
    ) -> Result<Dataset, RunError> {
        datasets::build(
            name,
            &exp.datasets[name],
            &exp.base_dir(),
            &model.tokenizer,
            model.model.config.n_ctx,
        )
        .map_err(|e| e.located(exp, &dataset_key(exp, name)))
    }

    /// Finishes every table with its metadata, moves them into place and writes the manifest.
    fn commit(
        mut self,
        plan: &Plan,
        experiment: &Experiment,
        device: &str,
        started: Instant,
    ) -> Result<Manifest, RunError> {
        let mut entries = Vec::new();
        let writers = std::mem::take(&mut self.writers);
        let mut finished = Vec::new();
        for (stem, mut w) in writers {
            let metadata = json!({
                "tool": "circuitry",
                "tool_version": env!("CARGO_PKG_VERSION"),
                "experiment": experiment.name,
                "experiment_hash": plan.hash,
                "experiment_file": experiment.path().display().to_string(),
                "overrides": experiment.overrides(),
                "table": stem,
                "device": device,
                "runs": self.provenance.remove(&stem).unwrap_or_default(),
            });
            if let Err(e) = w.finish(&metadata) {
                w.abandon();
                for (_, other) in finished {
                    let other: TableWriter = other;
                    other.abandon();
                }
                return Err(e);
            }
            finished.push((stem, w));
        }
        for (stem, w) in &finished {
            w.commit()?;
            entries.push(TableEntry {
                name: stem.clone(),
                path: w
                    .final_path
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_default(),
                rows: w.rows,
                hash: crate::sink::file_hash(&w.final_path)?,
            });
        }
        let manifest = Manifest::new(
            plan,
            experiment,
            device,
            entries,
            started.elapsed().as_secs_f64(),
        );
        write_atomically(
            &self.out_dir.join("manifest.json"),
            manifest.to_json().as_bytes(),
        )?;
        self.progress.status(&format!(
            "wrote {} table{} to {}",
            manifest.tables.len(),
            if manifest.tables.len() == 1 { "" } else { "s" },
            self.out_dir.display()
        ));
        Ok(manifest)
    }
}

/// The experiment-file key most relevant to a dataset error (its file, else the section).
fn dataset_key(exp: &Experiment, name: &str) -> String {
    match &exp.datasets[name].source {
        circuitry_spec::DatasetSource::File(_) => format!("datasets.{name}.file"),
        _ => format!("datasets.{name}"),
    }
}

/// Runs a model over a dataset batch by batch: pads, runs the clean (and optionally corrupt)
/// prompts capturing the requested hooks, and hands each batch to a callback. Activations live
/// for one batch.
struct Stream<'a> {
    model: &'a ReadyModel,
    device: &'a Device,
    side: PaddingSide,
    batch_size: usize,
}

impl Stream<'_> {
    fn context(&self) -> ModelContext<'_> {
        ModelContext {
            model: &self.model.model,
            tokenizer: &self.model.tokenizer,
        }
    }

    fn each_batch(
        &self,
        dataset: &Dataset,
        hooks: &std::collections::BTreeSet<circuitry_models::HookPoint>,
        corrupt_hooks: Option<&std::collections::BTreeSet<circuitry_models::HookPoint>>,
        mut f: impl FnMut(&BatchContext) -> Result<(), RunError>,
    ) -> Result<(), RunError> {
        let pad = pad_id(&self.model.tokenizer);
        let model = &self.model.model;
        let batches = dataset
            .batches(self.batch_size)
            .map_err(|e| RunError::Dataset {
                dataset: dataset.name.clone(),
                message: e.to_string(),
            })?;
        let clean_capture = Intervention::capture(hooks.iter().copied());
        let corrupt_capture = corrupt_hooks.map(|h| Intervention::capture(h.iter().copied()));
        for batch in &batches {
            let clean = TokenBatch::new(&batch.rows(), pad, self.side, self.device);
            let clean_output = model.forward(&clean, &clean_capture, Span::default());
            let corrupt = match &corrupt_capture {
                Some(capture) => {
                    let rows = batch.corrupt_rows().ok_or_else(|| RunError::Dataset {
                        dataset: dataset.name.clone(),
                        message: format!(
                            "dataset `{}`: some prompts have no corrupt counterpart",
                            dataset.name
                        ),
                    })?;
                    let tokens = TokenBatch::new(&rows, pad, self.side, self.device);
                    let output = model.forward(&tokens, capture, Span::default());
                    Some((tokens, output))
                }
                None => None,
            };
            let prompts: Vec<circuitry_data::Prompt> =
                batch.prompts.iter().map(|p| (*p).clone()).collect();
            f(&BatchContext {
                prompts: &prompts,
                clean: &clean,
                clean_output: &clean_output,
                corrupt: corrupt.as_ref().map(|(t, o)| (t, o)),
            })?;
        }
        Ok(())
    }
}

/// The output directory of an experiment under `out_root`.
pub fn output_dir(out_root: &Path, experiment: &Experiment) -> PathBuf {
    out_root.join(&experiment.name)
}
