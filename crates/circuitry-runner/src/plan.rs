//! Planning: an experiment (each sweep variant) becomes a DAG of training runs, model loads,
//! dataset builds, shared forward passes and analyses. Analyses that read the same (model,
//! dataset) share one forward pass capturing the union of their hook points.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use circuitry_circuits::analyses;
use circuitry_circuits::analysis::Analysis;
use circuitry_circuits::table::{ColumnSpec, Row};
use circuitry_models::{HookPoint, ModelConfig, ModelSource};
use circuitry_spec::{Experiment, SweepAxis, Variant};
use serde::Serialize;

use crate::error::RunError;
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
}

fn hook_names<S: serde::Serializer>(hooks: &BTreeSet<HookPoint>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(hooks.iter().map(|h| h.to_string()))
}

/// Where a model comes from at plan time.
#[derive(Clone, Debug, Serialize)]
pub struct ModelNode {
    pub name: String,
    pub path: PathBuf,
    /// The training run that writes this model first, if any.
    pub trained_by: Option<String>,
    pub architecture: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_model: usize,
}

/// The plan of one sweep variant.
#[derive(Clone, Debug, Serialize)]
pub struct VariantPlan {
    pub index: usize,
    pub label: String,
    pub columns: Vec<(String, serde_json::Value)>,
    pub trains: Vec<String>,
    pub models: Vec<ModelNode>,
    pub datasets: Vec<(String, String)>,
    pub forwards: Vec<ForwardNode>,
    /// `(model, analysis)` pairs that read weights only.
    pub weight_analyses: Vec<(String, String)>,
    #[serde(skip)]
    pub experiment: Experiment,
    #[serde(skip)]
    pub configs: BTreeMap<String, ModelConfig>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub experiment: String,
    pub hash: String,
    pub variants: Vec<VariantPlan>,
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

/// Plans every variant of `experiment`. Reads model configurations (not weights).
pub fn plan(experiment: &Experiment) -> Result<Plan, RunError> {
    let variants = experiment
        .expand()
        .into_iter()
        .map(|v| plan_variant(&v, &experiment.sweep.axes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        experiment: experiment.name.clone(),
        hash: experiment.hash(),
        variants,
    })
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

fn plan_variant(variant: &Variant, axes: &[SweepAxis]) -> Result<VariantPlan, RunError> {
    let exp = &variant.experiment;
    let base = exp.base_dir();
    let train_outputs: BTreeMap<PathBuf, String> = exp
        .train
        .iter()
        .map(|(name, t)| (normalize(&exp.resolve_path(&t.output)), name.clone()))
        .collect();
    // Models that analyses use, in file order.
    let used: BTreeSet<&str> = exp.analyses.values().map(|a| a.model.as_str()).collect();
    let mut configs = BTreeMap::new();
    let mut model_nodes = Vec::new();
    for (name, spec) in exp.models.iter().filter(|(n, _)| used.contains(n.as_str())) {
        let location = match spec.location(&base) {
            circuitry_spec::ModelLocation::Local(p) => Some(normalize(&p)),
            circuitry_spec::ModelLocation::Hub { .. } => None,
        };
        let trained_by = location
            .as_ref()
            .and_then(|p| train_outputs.get(p))
            .cloned();
        let (config, path) = match &trained_by {
            // Written by this run: the configuration comes from the training spec.
            Some(t)
                if !location
                    .as_ref()
                    .is_some_and(|p| p.join("config.json").is_file()) =>
            {
                (
                    training::model_config(&exp.train[t]),
                    location.clone().unwrap_or_default(),
                )
            }
            _ => {
                let key = model_key(name, spec);
                let source = models::source(name, spec, &base).map_err(|e| e.located(exp, &key))?;
                let config = models::config(name, &source).map_err(|e| e.located(exp, &key))?;
                (config, source_path(&source))
            }
        };
        model_nodes.push(ModelNode {
            name: name.clone(),
            path,
            trained_by,
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
    let mut datasets: Vec<(String, String)> = Vec::new();
    for name in exp.train.keys() {
        let file = format!("{name}.parquet");
        check_sweep_columns(exp, axes, &file, training::LearningCurveRow::COLUMNS)?;
    }
    for (name, spec) in &exp.analyses {
        let analysis = build_analysis(exp, name, &configs[&spec.model])?;
        for table in analysis.tables() {
            check_sweep_columns(exp, axes, &table.file_name(name), table.columns)?;
        }
        let req = analysis.requirements();
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
                });
                forwards.last_mut().expect("just pushed")
            }
        };
        node.batch_size = node.batch_size.min(spec.batch_size as usize);
        node.hooks.extend(req.hooks);
        node.corrupt |= req.corrupt_run;
        node.corrupt_hooks.extend(req.corrupt_hooks);
        node.analyses.push(name.clone());
        if let Some(p) = analysis.prepass() {
            node.prepasses.push((name.clone(), p.dataset));
        }
    }
    Ok(VariantPlan {
        index: variant.index,
        label: variant.label(),
        columns: variant.columns.clone(),
        trains: exp.train.keys().cloned().collect(),
        models: model_nodes,
        datasets,
        forwards,
        weight_analyses,
        experiment: exp.clone(),
        configs,
    })
}

/// The experiment-file key a model's location comes from.
pub fn model_key(name: &str, spec: &circuitry_spec::ModelSpec) -> String {
    if spec.hub.is_some() {
        format!("models.{name}.hub")
    } else {
        format!("models.{name}.path")
    }
}

fn source_path(source: &ModelSource) -> PathBuf {
    source.path().to_path_buf()
}

/// A path with `.` and `..` components folded, for comparing training outputs with model paths.
fn normalize(path: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
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
        let runs = self.variants.len();
        let _ = writeln!(
            s,
            "experiment `{}` (hash {}), {runs} run{}",
            self.experiment,
            &self.hash[..12.min(self.hash.len())],
            if runs == 1 { "" } else { "s" }
        );
        for v in &self.variants {
            if runs > 1 {
                let _ = writeln!(s, "run {}: {}", v.index, v.label);
            }
            for t in &v.trains {
                let _ = writeln!(s, "  train    {t} -> {t}.parquet");
            }
            for m in &v.models {
                let trained = m
                    .trained_by
                    .as_ref()
                    .map(|t| format!(" (written by train `{t}`)"))
                    .unwrap_or_default();
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
                let _ = writeln!(
                    s,
                    "  forward  {} x {} [batch {}]: {} hooks{corrupt} -> {}",
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
        }
        s
    }

    fn graph(&self, style: GraphStyle) -> String {
        let mut nodes: BTreeMap<String, String> = BTreeMap::new();
        let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
        for v in &self.variants {
            for t in &v.trains {
                nodes.insert(format!("train:{t}"), format!("train {t}"));
                nodes.insert(format!("table:{t}"), format!("{t}.parquet"));
                edges.insert((format!("train:{t}"), format!("table:{t}")));
            }
            for m in &v.models {
                nodes.insert(format!("model:{}", m.name), format!("model {}", m.name));
                if let Some(t) = &m.trained_by {
                    edges.insert((format!("train:{t}"), format!("model:{}", m.name)));
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

enum GraphStyle {
    Dot,
    Mermaid,
}
