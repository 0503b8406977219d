//! Planning: an experiment (each sweep variant) becomes a DAG of training runs, model loads,
//! dataset builds, shared forward passes and analyses. Analyses that read the same (model,
//! dataset) share one forward pass capturing the union of their hook points.
//!
//! Every training run and analysis is a node named by a content hash ([`crate::nodes`]); the
//! plan builds each analysis once and owns it until the executor runs it. Planning reads model
//! configurations and hashes input files, never weights, and never executes anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use circuitry_circuits::analyses;
use circuitry_circuits::analysis::{Analysis, TableDecl};
use circuitry_circuits::table::{ColumnSpec, Row};
use circuitry_models::{HookPoint, ModelConfig, ModelSource};
use circuitry_spec::{Experiment, SweepAxis, Variant};
use serde::Serialize;

use crate::cache::Cache;
use crate::checkpoints::Checkpoint;
use crate::error::RunError;
use crate::estimate::{self, Estimate};
use crate::nodes::{self, AnalysisInputs};
use crate::{models, training};

/// One shared forward pass over a dataset.
#[derive(Clone, Debug, Serialize)]
pub struct ForwardNode {
    pub model: String,
    pub dataset: String,
    /// Prompts per batch: the smallest `batch_size` of the analyses sharing the pass.
    pub batch_size: usize,
    /// Hook points captured on the clean prompts.
    #[serde(serialize_with = "hook_names")]
    pub hooks: BTreeSet<HookPoint>,
    /// Whether the corrupt prompts are run too, and what is captured there.
    pub corrupt: bool,
    #[serde(serialize_with = "hook_names")]
    pub corrupt_hooks: BTreeSet<HookPoint>,
    /// The analyses fed by this pass, in file order.
    pub analyses: Vec<String>,
    /// `(analysis, dataset)`: passes over other datasets run first for an analysis.
    pub prepasses: Vec<(String, String)>,
    /// The pass's cost (set by [`Plan::estimate`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
}

fn hook_names<S: serde::Serializer>(hooks: &BTreeSet<HookPoint>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(hooks.iter().map(|h| h.to_string()))
}

/// The training node that writes a model (its final model, or one of its checkpoints).
#[derive(Clone, Debug, Serialize)]
pub struct TrainedBy {
    /// The `[train.*]` run.
    pub train: String,
    /// Its node hash.
    pub hash: String,
    /// The checkpoint step (`None`: the final model).
    pub step: Option<u32>,
}

impl TrainedBy {
    /// Where the model is in the training node's cache entry.
    pub fn model_dir(&self, cache: &Cache) -> PathBuf {
        let entry = cache.node_dir(&self.hash);
        match self.step {
            None => entry.join(crate::cache::TRAINED_MODEL_DIR),
            Some(step) => entry
                .join(circuitry_spec::checkpoints::CHECKPOINTS_DIR)
                .join(circuitry_spec::checkpoints::step_dir_name(step.into())),
        }
    }
}

/// Where a model comes from at plan time.
#[derive(Clone, Debug, Serialize)]
pub struct ModelNode {
    pub name: String,
    pub path: PathBuf,
    /// The training run that writes this model first, if any.
    pub trained_by: Option<TrainedBy>,
    /// The content hash of its files, or `train:<node hash>` (`train:<node hash>@step<N>` for a
    /// checkpoint) for a model a training run writes.
    pub identity: String,
    pub architecture: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_model: usize,
}

/// A training run of one variant.
#[derive(Clone, Debug, Serialize)]
pub struct TrainNode {
    pub name: String,
    pub hash: String,
    /// Whether the cache holds it (set by [`Plan::mark_cached`]).
    pub cached: Option<bool>,
    #[serde(skip)]
    pub key: serde_json::Value,
}

/// One prompt range of an analysis split into ranges ([`crate::chunks`]).
#[derive(Clone, Debug, Serialize)]
pub struct ChunkNode {
    /// Prompts `start..end` of the dataset.
    pub prompts: std::ops::Range<usize>,
    pub hash: String,
    pub cached: Option<bool>,
    #[serde(skip)]
    pub key: serde_json::Value,
}

/// An analysis of one variant, built by the plan.
#[derive(Serialize)]
pub struct AnalysisNode {
    pub name: String,
    /// The node's hash; when split into prompt ranges, the hash of the whole (each range is a
    /// node of its own).
    pub hash: String,
    pub model: String,
    pub dataset: Option<String>,
    /// Whether the cache holds it (set by [`Plan::mark_cached`]).
    pub cached: Option<bool>,
    /// Its prompt ranges, in order, when it is split (empty: one node).
    pub chunks: Vec<ChunkNode>,
    #[serde(skip)]
    pub key: serde_json::Value,
    #[serde(skip)]
    pub tables: Vec<TableDecl>,
    /// The built analysis, until the executor takes it to run.
    #[serde(skip)]
    pub built: Option<Box<dyn Analysis>>,
}

impl AnalysisNode {
    /// The hashes of the nodes that hold its output: its ranges', or its own.
    pub fn node_hashes(&self) -> Vec<&str> {
        if self.chunks.is_empty() {
            vec![&self.hash]
        } else {
            self.chunks.iter().map(|c| c.hash.as_str()).collect()
        }
    }
}

/// The plan of one sweep variant, or of one checkpoint of a series model in it.
#[derive(Serialize)]
pub struct VariantPlan {
    pub index: usize,
    pub label: String,
    pub columns: Vec<(String, serde_json::Value)>,
    /// The checkpoint this run analyses (its analyses are those of the series model only, and
    /// their tables get a `step` column).
    pub checkpoint: Option<Checkpoint>,
    pub trains: Vec<TrainNode>,
    pub models: Vec<ModelNode>,
    pub datasets: Vec<(String, String)>,
    pub forwards: Vec<ForwardNode>,
    /// `(model, analysis)` pairs that read weights only.
    pub weight_analyses: Vec<(String, String)>,
    /// Every analysis, in file order.
    pub analyses: Vec<AnalysisNode>,
    #[serde(skip)]
    pub experiment: Experiment,
    #[serde(skip)]
    pub configs: BTreeMap<String, ModelConfig>,
}

/// The whole run.
#[derive(Serialize)]
pub struct Plan {
    pub experiment: String,
    pub hash: String,
    /// The device the nodes are keyed for.
    pub device: String,
    pub variants: Vec<VariantPlan>,
}

impl VariantPlan {
    pub fn analysis(&self, name: &str) -> &AnalysisNode {
        self.analyses
            .iter()
            .find(|a| a.name == name)
            .expect("planned analysis")
    }

    pub fn analysis_mut(&mut self, name: &str) -> &mut AnalysisNode {
        self.analyses
            .iter_mut()
            .find(|a| a.name == name)
            .expect("planned analysis")
    }

    pub fn train(&self, name: &str) -> &TrainNode {
        self.trains
            .iter()
            .find(|t| t.name == name)
            .expect("planned training run")
    }

    pub fn model(&self, name: &str) -> &ModelNode {
        self.models
            .iter()
            .find(|m| m.name == name)
            .expect("planned model")
    }
}

impl Plan {
    /// The sweep's runs (a checkpoint of a series model is part of its run, not a run).
    pub fn runs(&self) -> usize {
        self.variants
            .iter()
            .filter(|v| v.checkpoint.is_none())
            .count()
    }

    /// Every node hash of the plan (trains and analyses of every variant).
    pub fn node_hashes(&self) -> BTreeSet<String> {
        self.variants
            .iter()
            .flat_map(|v| {
                v.trains.iter().map(|t| t.hash.clone()).chain(
                    v.analyses
                        .iter()
                        .flat_map(|a| a.node_hashes().into_iter().map(str::to_string)),
                )
            })
            .collect()
    }

    /// Records which nodes `cache` holds.
    pub fn mark_cached(&mut self, cache: &Cache) {
        for v in &mut self.variants {
            for t in &mut v.trains {
                t.cached = Some(cache.get(&t.hash).is_some());
            }
            for a in &mut v.analyses {
                for c in &mut a.chunks {
                    c.cached = Some(cache.get(&c.hash).is_some());
                }
                a.cached = Some(a.node_hashes().iter().all(|h| cache.get(h).is_some()));
            }
        }
    }
}

impl Plan {
    /// Estimates each forward pass's operations and peak activation bytes. Tokenizes the
    /// datasets (reads no weights); a pass over a model that a training node has not written
    /// yet is left unestimated.
    pub fn estimate(&mut self, cache: &Cache) -> Result<(), RunError> {
        for v in &mut self.variants {
            let VariantPlan {
                forwards,
                models: model_nodes,
                analyses,
                experiment: exp,
                configs,
                ..
            } = v;
            let base = exp.base_dir();
            for f in forwards.iter_mut() {
                let node = model_nodes
                    .iter()
                    .find(|m| m.name == f.model)
                    .expect("planned model");
                let spec = &exp.models[&f.model];
                let key = model_key(&f.model, spec);
                let source = match &node.trained_by {
                    Some(t) => match cache.get(&t.hash) {
                        Some(_) => ModelSource::HfDir(t.model_dir(cache)),
                        None => continue,
                    },
                    None => {
                        models::source(&f.model, spec, &base).map_err(|e| e.located(exp, &key))?
                    }
                };
                let config = &configs[&f.model];
                let tokenizer = models::tokenizer(&f.model, spec, &source, &base, config)
                    .map_err(|e| e.located(exp, &key))?;
                let batches = |dataset: &str| -> Result<Vec<(usize, usize)>, RunError> {
                    let built = crate::datasets::build(exp, dataset, &tokenizer, config.n_ctx)
                        .map_err(|e| e.located(exp, &format!("datasets.{dataset}")))?;
                    let batches = built.batches(f.batch_size).map_err(|e| RunError::Dataset {
                        dataset: dataset.to_string(),
                        message: e.to_string(),
                    })?;
                    Ok(batches
                        .iter()
                        .map(|b| {
                            let len = b.prompts.iter().map(|p| p.tokens.len()).max();
                            (b.prompts.len(), len.unwrap_or(0))
                        })
                        .collect())
                };
                let corrupt = f.corrupt.then_some(&f.corrupt_hooks);
                let mut cost =
                    estimate::forward_pass(config, &batches(&f.dataset)?, &f.hooks, corrupt);
                for (analysis, dataset) in &f.prepasses {
                    let hooks = analyses
                        .iter()
                        .find(|a| &a.name == analysis)
                        .and_then(|a| a.built.as_ref())
                        .and_then(|a| a.prepass())
                        .map(|p| p.hooks)
                        .unwrap_or_default();
                    cost = cost.then(estimate::forward_pass(
                        config,
                        &batches(dataset)?,
                        &hooks,
                        None,
                    ));
                }
                f.estimate = Some(cost);
            }
        }
        Ok(())
    }
}

/// The device a run uses: the command line's, else the experiment's, else `flex`.
pub fn device_name(experiment: &Experiment, requested: Option<&str>) -> String {
    requested
        .map(str::to_string)
        .or_else(|| experiment.device.map(|d| d.to_string()))
        .unwrap_or_else(|| "flex".to_string())
}

/// Builds analysis `name` of `experiment` for a model with configuration `config`; errors point
/// at the parameter at fault in the experiment file.
pub fn build_analysis(
    experiment: &Experiment,
    name: &str,
    config: &ModelConfig,
) -> Result<Box<dyn Analysis>, RunError> {
    let spec = &experiment.analyses[name];
    analyses::build(spec, config).map_err(|e| crate::error::analysis_failure(experiment, name, e))
}

/// Plans every variant of `experiment` for `device`. Reads model configurations (not weights)
/// and hashes input files.
pub fn plan(experiment: &Experiment, device: &str) -> Result<Plan, RunError> {
    let mut hashes = nodes::ContentHashes::default();
    let mut variants = Vec::new();
    for variant in experiment.expand() {
        for (run, checkpoint) in crate::checkpoints::expand(variant)? {
            let mut planned = plan_variant(&run, &experiment.sweep.axes, device, &mut hashes)?;
            if let Some(c) = checkpoint {
                check_step_column(&run.experiment, &planned, &c)?;
                // The variant's own run lists its training runs.
                planned.trains.clear();
                planned.checkpoint = Some(c);
            }
            variants.push(planned);
        }
    }
    check_columns_agree(&variants)?;
    Ok(Plan {
        experiment: experiment.name.clone(),
        hash: experiment.hash(),
        device: device.to_string(),
        variants,
    })
}

/// A table of a series model's analysis that has a `step` column already would have it twice.
fn check_step_column(exp: &Experiment, v: &VariantPlan, c: &Checkpoint) -> Result<(), RunError> {
    for a in &v.analyses {
        for t in &a.tables {
            if t.columns.iter().any(|col| col.name == STEP_COLUMN.name) {
                return Err(RunError::Located(Box::new(exp.diagnostic_at(
                    &format!("models.{}.checkpoints", c.model),
                    format!(
                        "table `{}` of analysis `{}` has a `step` column, which the checkpoint series of model `{}` would add again",
                        t.file_name(&a.name),
                        a.name,
                        c.model
                    ),
                ))));
            }
        }
    }
    Ok(())
}

/// The column the tables of a series model's analyses get.
pub const STEP_COLUMN: ColumnSpec = ColumnSpec::new(
    "step",
    circuitry_circuits::table::DType::U32,
    "The checkpoint analysed: updates done when it was saved.",
);

/// Every variant must give a table the same columns (one file holds them all).
fn check_columns_agree(variants: &[VariantPlan]) -> Result<(), RunError> {
    let mut seen: BTreeMap<String, (&[ColumnSpec], usize)> = BTreeMap::new();
    for v in variants {
        for a in &v.analyses {
            for t in &a.tables {
                let stem = t.file_name(&a.name);
                let (first, run) = *seen.entry(stem.clone()).or_insert((t.columns, v.index));
                if first != t.columns {
                    return Err(crate::error::analysis_err(
                        &a.name,
                        format!(
                            "run {} ({}) gives table `{stem}` other columns than run {run}; sweeping a key that changes an analysis's columns is not supported",
                            v.index, v.label
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A sweep column that a table already has would appear twice in it (a file pyarrow cannot
/// read): an error at the sweep key, naming the table.
fn check_sweep_columns(
    exp: &Experiment,
    axes: &[SweepAxis],
    table: &str,
    columns: &[ColumnSpec],
) -> Result<(), RunError> {
    let Some(axis) = axes
        .iter()
        .find(|a| columns.iter().any(|c| c.name == a.column))
    else {
        return Ok(());
    };
    let (key, column) = (&axis.key, &axis.column);
    let mut d = exp.diagnostic_at(
        key,
        format!(
            "sweep column `{column}` (from `{key}`) clashes with the `{column}` column of `{table}`"
        ),
    );
    d.hint = Some(format!(
        "name the sweep column: \"{key}\" = {{ values = [...], column = \"swept_{column}\" }}"
    ));
    Err(RunError::Located(Box::new(d)))
}

fn plan_variant(
    variant: &Variant,
    axes: &[SweepAxis],
    device: &str,
    hashes: &mut nodes::ContentHashes,
) -> Result<VariantPlan, RunError> {
    let exp = &variant.experiment;
    let base = exp.base_dir();
    let mut trains = Vec::new();
    for name in exp.train.keys() {
        let key = nodes::train_key(exp, name, device, hashes)?;
        trains.push(TrainNode {
            name: name.clone(),
            hash: nodes::node_hash(&key),
            cached: None,
            key,
        });
    }
    // Where the file's training runs write models: (run, checkpoint step) by path.
    let mut train_outputs: BTreeMap<PathBuf, (String, Option<u32>)> = exp
        .train
        .iter()
        .map(|(name, t)| {
            (
                crate::publish::normalize(&exp.resolve_path(&t.output)),
                (name.clone(), None),
            )
        })
        .collect();
    for (path, (name, step)) in crate::checkpoints::trained_checkpoints(exp) {
        train_outputs.insert(path, (name, Some(step)));
    }
    // Models that analyses use, in file order.
    let used: BTreeSet<&str> = exp.analyses.values().map(|a| a.model.as_str()).collect();
    let mut configs = BTreeMap::new();
    let mut model_nodes = Vec::new();
    for (name, spec) in exp.models.iter().filter(|(n, _)| used.contains(n.as_str())) {
        let location = match spec.location(&base) {
            circuitry_spec::ModelLocation::Local(p) => Some(crate::publish::normalize(&p)),
            circuitry_spec::ModelLocation::Hub { .. } => None,
        };
        let trained_by = location
            .as_ref()
            .and_then(|p| train_outputs.get(p))
            .map(|(t, step)| TrainedBy {
                train: t.clone(),
                hash: trains
                    .iter()
                    .find(|n| &n.name == t)
                    .expect("planned train")
                    .hash
                    .clone(),
                step: *step,
            });
        let (config, path, mut identity) = match &trained_by {
            // Written by this run: the configuration comes from the training spec, and the
            // model is whatever that training node writes.
            Some(t) => (
                training::model_config(&exp.train[&t.train]),
                location.clone().unwrap_or_default(),
                match t.step {
                    None => format!("train:{}", t.hash),
                    Some(step) => format!("train:{}@step{step}", t.hash),
                },
            ),
            None => {
                let key = model_key(name, spec);
                let source = models::source(name, spec, &base).map_err(|e| e.located(exp, &key))?;
                let config = models::config(name, &source).map_err(|e| e.located(exp, &key))?;
                let identity = hashes.files(exp, &key, nodes::model_files(&source))?;
                (config, source_path(&source), identity)
            }
        };
        if let Some(tok) = spec.tokenizer_path(&base) {
            let hash = hashes.input(exp, &format!("models.{name}.tokenizer"), &tok)?;
            identity.push_str(&format!("+tokenizer:{hash}"));
        }
        model_nodes.push(ModelNode {
            name: name.clone(),
            path,
            trained_by,
            identity,
            architecture: config.architecture.name().to_string(),
            n_layers: config.n_layers,
            n_heads: config.n_heads,
            d_model: config.d_model,
        });
        configs.insert(name.clone(), config);
    }
    if let Some(name) = exp.train.keys().find(|t| exp.analyses.contains_key(*t)) {
        return Err(RunError::Located(Box::new(exp.diagnostic_at(
            &format!("train.{name}"),
            format!("training run `{name}` and analysis `{name}` would both write `{name}.parquet`; rename one"),
        ))));
    }
    let mut forwards: Vec<ForwardNode> = Vec::new();
    let mut weight_analyses = Vec::new();
    let mut analyses: Vec<AnalysisNode> = Vec::new();
    let mut datasets: Vec<(String, String)> = Vec::new();
    for name in exp.train.keys() {
        let file = format!("{name}.parquet");
        check_sweep_columns(exp, axes, &file, training::LearningCurveRow::COLUMNS)?;
    }
    for (name, spec) in &exp.analyses {
        let analysis = build_analysis(exp, name, &configs[&spec.model])?;
        let tables = analysis.tables();
        for table in &tables {
            check_sweep_columns(exp, axes, &table.file_name(name), table.columns)?;
        }
        let req = analysis.requirements();
        let prepass = analysis.prepass().map(|p| p.dataset);
        analyses.push(AnalysisNode {
            name: name.clone(),
            hash: String::new(),
            model: spec.model.clone(),
            dataset: req.dataset.then(|| spec.dataset.clone()).flatten(),
            cached: None,
            chunks: Vec::new(),
            key: serde_json::Value::Null,
            tables,
            built: Some(analysis),
        });
        if !req.dataset {
            weight_analyses.push((spec.model.clone(), name.clone()));
            continue;
        }
        let dataset = spec.dataset.clone().ok_or_else(|| RunError::Analysis {
            analysis: name.clone(),
            message: format!("kind `{}` reads prompts but names no dataset", spec.kind()),
        })?;
        if req.corrupt_run && !exp.datasets[&dataset].has_corrupt() {
            return Err(RunError::Analysis {
                analysis: name.clone(),
                message: format!(
                    "needs corrupt (counterfactual) prompts, but dataset `{dataset}` has none; use the ioi generator, or give `corrupt` texts or `corrupt_tokens`"
                ),
            });
        }
        let pair = (dataset.clone(), spec.model.clone());
        if !datasets.contains(&pair) {
            datasets.push(pair);
        }
        let node = match forwards
            .iter_mut()
            .find(|f| f.model == spec.model && f.dataset == dataset)
        {
            Some(f) => f,
            None => {
                forwards.push(ForwardNode {
                    model: spec.model.clone(),
                    dataset: dataset.clone(),
                    batch_size: spec.batch_size as usize,
                    hooks: BTreeSet::new(),
                    corrupt: false,
                    corrupt_hooks: BTreeSet::new(),
                    analyses: Vec::new(),
                    prepasses: Vec::new(),
                    estimate: None,
                });
                forwards.last_mut().expect("just pushed")
            }
        };
        node.batch_size = node.batch_size.min(spec.batch_size as usize);
        node.hooks.extend(req.hooks);
        node.corrupt |= req.corrupt_run;
        node.corrupt_hooks.extend(req.corrupt_hooks);
        node.analyses.push(name.clone());
        if let Some(p) = prepass {
            node.prepasses.push((name.clone(), p));
        }
    }
    // Keys last: a forward pass's batch size is known once every analysis has joined it.
    for a in &mut analyses {
        let model = model_nodes
            .iter()
            .find(|m| m.name == a.model)
            .expect("planned model");
        let forward = forwards
            .iter()
            .find(|f| Some(&f.dataset) == a.dataset.as_ref() && f.model == a.model);
        let prepass = forward
            .and_then(|f| f.prepasses.iter().find(|(n, _)| n == &a.name))
            .map(|(_, d)| nodes::dataset_identity(exp, d, hashes))
            .transpose()?;
        let inputs = AnalysisInputs {
            model_identity: &model.identity,
            dataset: a
                .dataset
                .as_ref()
                .map(|d| nodes::dataset_identity(exp, d, hashes))
                .transpose()?,
            prepass,
            batch_size: forward.map(|f| f.batch_size),
            device,
        };
        a.key = nodes::analysis_key(exp, &a.name, &inputs);
        a.hash = nodes::node_hash(&a.key);
        let splits = a.built.as_ref().is_some_and(|b| b.batch_local());
        if let (true, Some(f)) = (splits, forward) {
            let count = crate::chunks::prompt_count(&exp.datasets[&f.dataset]);
            a.chunks = crate::chunks::ranges(count.unwrap_or(0), f.batch_size)
                .into_iter()
                .map(|prompts| {
                    let mut key = a.key.clone();
                    key["prompts"] = serde_json::json!([prompts.start, prompts.end]);
                    ChunkNode {
                        hash: nodes::node_hash(&key),
                        prompts,
                        cached: None,
                        key,
                    }
                })
                .collect();
        }
    }
    Ok(VariantPlan {
        index: variant.index,
        label: variant.label(),
        columns: variant.columns.clone(),
        checkpoint: None,
        trains,
        models: model_nodes,
        datasets,
        forwards,
        weight_analyses,
        analyses,
        experiment: exp.clone(),
        configs,
    })
}

/// The experiment-file key a model's location comes from.
pub fn model_key(name: &str, spec: &circuitry_spec::ModelSpec) -> String {
    if spec.checkpoints.is_some() {
        format!("models.{name}.checkpoints")
    } else if spec.hub.is_some() {
        format!("models.{name}.hub")
    } else {
        format!("models.{name}.path")
    }
}

fn source_path(source: &ModelSource) -> PathBuf {
    source.path().to_path_buf()
}

/// How `circuitry plan` prints a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Dot,
    Mermaid,
    Json,
}

impl Plan {
    pub fn render(&self, format: PlanFormat) -> String {
        match format {
            PlanFormat::Text => self.text(),
            PlanFormat::Dot => self.graph(GraphStyle::Dot),
            PlanFormat::Mermaid => self.graph(GraphStyle::Mermaid),
            PlanFormat::Json => serde_json::to_string_pretty(self).expect("plan serializes"),
        }
    }

    fn text(&self) -> String {
        let mut s = String::new();
        let runs = self.runs();
        let _ = writeln!(
            s,
            "experiment `{}` (hash {}), {runs} run{}",
            self.experiment,
            short(&self.hash),
            if runs == 1 { "" } else { "s" }
        );
        for v in &self.variants {
            match &v.checkpoint {
                None if runs > 1 => {
                    let _ = writeln!(s, "run {}: {}", v.index, v.label);
                }
                None => {}
                Some(c) => {
                    let _ = writeln!(s, "  checkpoint {} step {}:", c.model, c.step);
                }
            }
            for t in &v.trains {
                let name = &t.name;
                let _ = writeln!(
                    s,
                    "  train    {name} -> {name}.parquet [{}]{}",
                    short(&t.hash),
                    cache_mark(t.cached)
                );
            }
            for m in &v.models {
                let trained = match &m.trained_by {
                    Some(TrainedBy {
                        train, step: None, ..
                    }) => {
                        format!(" (written by train `{train}`)")
                    }
                    Some(TrainedBy {
                        train,
                        step: Some(s),
                        ..
                    }) => {
                        format!(" (checkpoint step {s} of train `{train}`)")
                    }
                    None => String::new(),
                };
                let _ = writeln!(
                    s,
                    "  model    {}: {} — {}, {} layers x {} heads, d_model {}{trained}",
                    m.name,
                    m.path.display(),
                    m.architecture,
                    m.n_layers,
                    m.n_heads,
                    m.d_model
                );
            }
            for (d, m) in &v.datasets {
                let _ = writeln!(s, "  dataset  {d} (tokenized for {m})");
            }
            for f in &v.forwards {
                let corrupt = if f.corrupt {
                    format!(" + corrupt run ({} hooks)", f.corrupt_hooks.len())
                } else {
                    String::new()
                };
                for (a, d) in &f.prepasses {
                    let _ = writeln!(s, "  forward  {} x {d} (reference for {a})", f.model);
                }
                let cost = f.estimate.map_or(String::new(), |e| {
                    format!(
                        " (~{}FLOP, peak ~{} of activations)",
                        estimate::si(e.flops),
                        estimate::binary_bytes(e.peak_activation_bytes)
                    )
                });
                let _ = writeln!(
                    s,
                    "  forward  {} x {} [batch {}]: {} hooks{corrupt} -> {}{cost}",
                    f.model,
                    f.dataset,
                    f.batch_size,
                    f.hooks.len(),
                    f.analyses.join(", ")
                );
            }
            for (m, a) in &v.weight_analyses {
                let _ = writeln!(s, "  weights  {m} -> {a}");
            }
            for a in &v.analyses {
                let ranges = match a.chunks.len() {
                    0 => String::new(),
                    n => format!(
                        " ({n} prompt ranges{})",
                        match a.chunks.iter().filter(|c| c.cached == Some(true)).count() {
                            0 => String::new(),
                            cached => format!(", {cached} cached"),
                        }
                    ),
                };
                let _ = writeln!(
                    s,
                    "  analysis {} [{}]{}{ranges}",
                    a.name,
                    short(&a.hash),
                    cache_mark(a.cached)
                );
            }
        }
        s
    }

    fn graph(&self, style: GraphStyle) -> String {
        let mut nodes: BTreeMap<String, String> = BTreeMap::new();
        let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
        for v in &self.variants {
            for t in v.trains.iter().map(|t| &t.name) {
                nodes.insert(format!("train:{t}"), format!("train {t}"));
                nodes.insert(format!("table:{t}"), format!("{t}.parquet"));
                edges.insert((format!("train:{t}"), format!("table:{t}")));
            }
            for m in &v.models {
                nodes.insert(format!("model:{}", m.name), format!("model {}", m.name));
                if let Some(t) = &m.trained_by {
                    edges.insert((format!("train:{}", t.train), format!("model:{}", m.name)));
                }
            }
            for (d, m) in &v.datasets {
                let id = format!("dataset:{d}@{m}");
                nodes.insert(id.clone(), format!("dataset {d}"));
                edges.insert((format!("model:{m}"), id));
            }
            for f in &v.forwards {
                let id = format!("forward:{}x{}", f.model, f.dataset);
                nodes.insert(id.clone(), format!("forward {} x {}", f.model, f.dataset));
                edges.insert((format!("model:{}", f.model), id.clone()));
                edges.insert((format!("dataset:{}@{}", f.dataset, f.model), id.clone()));
                for a in &f.analyses {
                    nodes.insert(format!("analysis:{a}"), format!("{a}.parquet"));
                    edges.insert((id.clone(), format!("analysis:{a}")));
                }
            }
            for (m, a) in &v.weight_analyses {
                nodes.insert(format!("analysis:{a}"), format!("{a}.parquet"));
                edges.insert((format!("model:{m}"), format!("analysis:{a}")));
            }
        }
        let ids: BTreeMap<&String, String> = nodes
            .keys()
            .enumerate()
            .map(|(i, k)| (k, format!("n{i}")))
            .collect();
        let mut s = String::new();
        match style {
            GraphStyle::Dot => {
                let _ = writeln!(s, "digraph \"{}\" {{\n  rankdir=LR;", self.experiment);
                for (k, label) in &nodes {
                    let _ = writeln!(s, "  {} [label=\"{}\"];", ids[k], label.replace('"', "'"));
                }
                for (a, b) in &edges {
                    let _ = writeln!(s, "  {} -> {};", ids[a], ids[b]);
                }
                s.push_str("}\n");
            }
            GraphStyle::Mermaid => {
                s.push_str("flowchart LR\n");
                for (k, label) in &nodes {
                    let _ = writeln!(s, "  {}[\"{}\"]", ids[k], label.replace('"', "'"));
                }
                for (a, b) in &edges {
                    let _ = writeln!(s, "  {} --> {}", ids[a], ids[b]);
                }
            }
        }
        s
    }
}

fn short(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

fn cache_mark(cached: Option<bool>) -> &'static str {
    match cached {
        Some(true) => " cached",
        Some(false) => " to compute",
        None => "",
    }
}

enum GraphStyle {
    Dot,
    Mermaid,
}
