//! Executing a plan: compute every node the cache lacks (training runs, then shared forward
//! passes that capture only what their missing analyses need, then weight analyses), commit each
//! to the cache as it completes, then assemble the tables from the cache and publish them.
//!
//! Every table is assembled from cache entries, whether computed now, by an earlier killed run,
//! or by a shard: so a resumed or sharded run writes the same bytes as an uninterrupted one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use circuitry_circuits::analysis::{Analysis, BatchContext, ModelContext, TableDecl};
use circuitry_circuits::table::{Table, TableSink};
use circuitry_data::{Dataset, pad_id};
use circuitry_models::burn::prelude::Device;
use circuitry_models::{Intervention, ModelSource, PaddingSide, Span, TokenBatch, parse_device};
use circuitry_spec::Experiment;
use serde_json::json;

use crate::assemble;
use crate::cache::cache_file;
use crate::cache::{Cache, NodeRecord, Staging};
use crate::error::{RunError, analysis_failure};
use crate::manifest::Manifest;
use crate::models::{self, ReadyModel};
use crate::plan::{ForwardNode, Plan, VariantPlan, plan};
use crate::progress::Progress;
use crate::publish::Outputs;
use crate::sink::TableWriter;
use crate::{datasets, failpoint, training};

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Root of the outputs; tables go to `<out_root>/<experiment name>/`.
    pub out_root: PathBuf,
    /// No progress bars or status lines.
    pub quiet: bool,
    /// Device name (`flex`, `tch`, `cuda:0`, ...); overrides the experiment's `device`.
    pub device: Option<String>,
    /// The node cache (default: `CIRCUITRY_CACHE`, else `<out_root>/.circuitry/cache`).
    pub cache: Option<PathBuf>,
    /// Recompute every node, replacing its cache entry.
    pub force: bool,
    /// Wait for another run holding the outputs instead of failing.
    pub wait: bool,
    /// Compute only this share of the nodes into the cache, and publish nothing.
    pub shard: Option<Shard>,
}

/// Share `index` of `count` (`--shard I/N`, `0 <= I < N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: write I/N with 0 <= I < N, e.g. 0/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Where the tables were published (none for a shard).
    pub out_dir: Option<PathBuf>,
    pub manifest: Option<Manifest>,
    /// Nodes computed by this run, by hash.
    pub computed: BTreeSet<String>,
    /// Forward passes run (over datasets, including reference passes).
    pub forward_passes: usize,
}

/// Runs `experiment`: computes what the cache lacks, then (unless sharded) publishes its
/// tables.
pub fn run(experiment: &Experiment, options: &RunOptions) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let device_name = crate::plan::device_name(experiment, options.device.as_deref());
    let device = parse_device(&device_name).map_err(RunError::Spec)?;
    let mut plan = plan(experiment, &device_name)?;
    let cache = Cache::for_outputs(&options.out_root, options.cache.as_deref());
    let progress = Progress::new(options.quiet);
    let outputs = Outputs::new(&options.out_root, &experiment.name);
    let lock = match options.shard {
        Some(_) => None,
        None => Some(outputs.lock(
            options.wait,
            &format!("circuitry run {}", experiment.path().display()),
            |holder| {
                progress.status(&format!(
                    "waiting for {holder} to finish with {}",
                    outputs.link.display()
                ))
            },
        )?),
    };
    failpoint::hit("after-lock")?;
    cache.clean_stale_staging();
    if let Some(lock) = &lock {
        outputs.clean(lock)?;
    }
    let mut run = Execution {
        cache: &cache,
        device,
        progress: &progress,
        force: options.force,
        owned: shard_owner(&plan, options.shard),
        models: BTreeMap::new(),
        computed: BTreeSet::new(),
        forward_passes: 0,
    };
    for v in &mut plan.variants {
        run.variant(v)?;
    }
    let (computed, forward_passes) = (run.computed, run.forward_passes);
    let Some(lock) = lock else {
        progress.status(&format!(
            "shard {}: computed {} node{} into {}",
            options.shard.map_or(0, |s| s.index),
            computed.len(),
            if computed.len() == 1 { "" } else { "s" },
            cache.root().display()
        ));
        return Ok(RunReport {
            out_dir: None,
            manifest: None,
            computed,
            forward_passes,
        });
    };
    let dir = outputs.stage(&lock)?;
    let work = assemble::Work {
        computed: &computed,
        forward_passes,
        started,
    };
    let published = assemble::tables(&plan, experiment, &cache, &dir, &work)
        .and_then(|manifest| outputs.publish(&dir, &lock).map(|()| manifest));
    let manifest = match published {
        Ok(m) => m,
        Err(e) => {
            // Nothing partial stays: the staged set goes, the published one is untouched.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    progress.status(&format!(
        "wrote {} table{} to {} ({} node{} computed, {} from the cache)",
        manifest.tables.len(),
        if manifest.tables.len() == 1 { "" } else { "s" },
        outputs.link.display(),
        computed.len(),
        if computed.len() == 1 { "" } else { "s" },
        manifest.nodes.len() - computed.len().min(manifest.nodes.len()),
    ));
    Ok(RunReport {
        out_dir: Some(outputs.link.clone()),
        manifest: Some(manifest),
        computed,
        forward_passes,
    })
}

/// Which node hashes this process computes: all without sharding; with `--shard I/N`, the work
/// units (a training run with everything that reads its model; a forward pass with its
/// analyses; a weight analysis) dealt round robin in plan order. Every shard deals the same
/// plan the same way, whatever the cache holds.
fn shard_owner(plan: &Plan, shard: Option<Shard>) -> Option<BTreeSet<String>> {
    let shard = shard?;
    // Unit anchor (a training node's hash, or the unit's own content) for every node hash.
    let mut anchors: Vec<String> = Vec::new();
    let mut anchor_of: BTreeMap<String, String> = BTreeMap::new();
    let mut assign = |hash: &str, anchor: String| {
        if !anchors.contains(&anchor) {
            anchors.push(anchor.clone());
        }
        anchor_of.entry(hash.to_string()).or_insert(anchor);
    };
    for v in &plan.variants {
        let trained = |model: &str| {
            v.model(model)
                .trained_by
                .as_ref()
                .map(|t| v.train(t).hash.clone())
        };
        for t in &v.trains {
            assign(&t.hash, t.hash.clone());
        }
        for f in &v.forwards {
            let mut unit: Vec<&str> = f
                .analyses
                .iter()
                .map(|a| v.analysis(a).hash.as_str())
                .collect();
            unit.sort();
            let anchor = trained(&f.model).unwrap_or_else(|| format!("pass:{}", unit.join(",")));
            for h in unit {
                assign(h, anchor.clone());
            }
        }
        for (model, a) in &v.weight_analyses {
            let hash = &v.analysis(a).hash;
            assign(hash, trained(model).unwrap_or_else(|| hash.clone()));
        }
    }
    let mine: BTreeSet<&String> = anchors
        .iter()
        .enumerate()
        .filter(|(i, _)| i % shard.count == shard.index)
        .map(|(_, a)| a)
        .collect();
    Some(
        anchor_of
            .into_iter()
            .filter(|(_, anchor)| mine.contains(anchor))
            .map(|(hash, _)| hash)
            .collect(),
    )
}

/// Model cache key: the model's content identity and how it is processed and tokenized.
type ModelKey = (String, String);

struct Execution<'a> {
    cache: &'a Cache,
    device: Device,
    progress: &'a Progress,
    force: bool,
    /// The node hashes this shard computes (`None`: all).
    owned: Option<BTreeSet<String>>,
    models: BTreeMap<ModelKey, ReadyModel>,
    computed: BTreeSet<String>,
    forward_passes: usize,
}

/// An analysis node being computed: its tables stream into a cache staging directory.
struct NodeRun {
    name: String,
    hash: String,
    analysis: Box<dyn Analysis>,
    staging: Staging,
    writers: BTreeMap<Option<&'static str>, TableWriter>,
    started: Instant,
}

impl NodeRun {
    fn new(
        cache: &Cache,
        name: &str,
        hash: &str,
        analysis: Box<dyn Analysis>,
        decls: &[TableDecl],
    ) -> Result<NodeRun, RunError> {
        let staging = cache.stage()?;
        let mut writers = BTreeMap::new();
        for decl in decls {
            let w = TableWriter::create(&staging.dir, &cache_file(decl.part), decl.columns)?;
            writers.insert(decl.part, w);
        }
        Ok(NodeRun {
            name: name.to_string(),
            hash: hash.to_string(),
            analysis,
            staging,
            writers,
            started: Instant::now(),
        })
    }
}

/// Sends an analysis's chunks to its node's writers.
struct NodeSink<'a> {
    writers: &'a mut BTreeMap<Option<&'static str>, TableWriter>,
}

impl TableSink for NodeSink<'_> {
    fn write(&mut self, part: Option<&str>, chunk: Table) -> Result<(), String> {
        let writer = self
            .writers
            .iter_mut()
            .find(|(p, _)| p.as_deref() == part)
            .map(|(_, w)| w)
            .ok_or_else(|| format!("internal error: table part {part:?} was not declared"))?;
        writer.write(&chunk).map_err(|e| e.to_string())
    }
}

impl Execution<'_> {
    /// Whether node `hash` is this process's to compute now.
    fn wanted(&self, hash: &str) -> bool {
        let missing = if self.force {
            !self.computed.contains(hash)
        } else {
            self.cache.get(hash).is_none()
        };
        missing && self.owned.as_ref().is_none_or(|o| o.contains(hash))
    }

    fn variant(&mut self, v: &mut VariantPlan) -> Result<(), RunError> {
        let todo = v
            .trains
            .iter()
            .map(|t| &t.hash)
            .chain(v.analyses.iter().map(|a| &a.hash))
            .filter(|h| self.wanted(h))
            .count();
        if todo == 0 {
            return Ok(());
        }
        if !v.label.is_empty() {
            self.progress
                .status(&format!("run {}: {}", v.index, v.label));
        }
        for i in 0..v.trains.len() {
            if self.wanted(&v.trains[i].hash) {
                self.train(v, i)?;
            }
        }
        for f in v.forwards.clone() {
            let missing: Vec<String> = f
                .analyses
                .iter()
                .filter(|a| self.wanted(&v.analysis(a).hash))
                .cloned()
                .collect();
            if !missing.is_empty() {
                self.forward(v, &f, &missing)?;
            }
        }
        for (model, name) in v.weight_analyses.clone() {
            if self.wanted(&v.analysis(&name).hash) {
                self.weights(v, &model, &name)?;
            }
        }
        Ok(())
    }

    /// Trains `v.trains[i]` into a cache entry: the model directory and the learning curve.
    fn train(&mut self, v: &VariantPlan, i: usize) -> Result<(), RunError> {
        let node = &v.trains[i];
        let started = Instant::now();
        let staging = self.cache.stage()?;
        let model_dir = staging.dir.join(crate::cache::TRAINED_MODEL_DIR);
        let curve = training::run(
            &node.name,
            &v.experiment,
            self.progress,
            &self.device,
            &model_dir,
        )?;
        let mut writer = TableWriter::create(&staging.dir, &cache_file(None), &curve.schema)?;
        writer.write(&curve)?;
        writer.finish(&json!({ "node": node.hash }))?;
        writer.commit()?;
        let model_hash =
            crate::nodes::files_hash(&crate::nodes::model_files(&ModelSource::HfDir(model_dir)))?;
        let record = NodeRecord {
            kind: "train".into(),
            name: node.name.clone(),
            experiment: v.experiment.name.clone(),
            hash: node.hash.clone(),
            key: node.key.clone(),
            facts: json!({ "model_content_hash": model_hash }),
            rows: BTreeMap::from([(String::new(), writer.rows)]),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.cache.commit(staging, &record, self.force)?;
        self.computed.insert(node.hash.clone());
        failpoint::hit("node-committed")
    }

    /// The loaded model `name` of variant `v` (loaded once per content and processing).
    fn ensure_model(&mut self, v: &VariantPlan, name: &str) -> Result<ModelKey, RunError> {
        let exp = &v.experiment;
        let spec = &exp.models[name];
        let node = v.model(name);
        let key = (
            node.identity.clone(),
            format!("{:?}|{:?}", spec.processing, spec.tokenizer),
        );
        if self.models.contains_key(&key) {
            return Ok(key);
        }
        let base = exp.base_dir();
        let source = match &node.trained_by {
            // The model this variant's training node wrote, wherever `output` points now.
            Some(t) => ModelSource::HfDir(
                self.cache
                    .node_dir(&v.train(t).hash)
                    .join(crate::cache::TRAINED_MODEL_DIR),
            ),
            None => models::source(name, spec, &base)?,
        };
        let spinner = self.progress.spinner(&format!(
            "loading model {name} ({})",
            source.path().display()
        ));
        let t = Instant::now();
        let ready = models::load(name, spec, source, &base, &self.device)
            .map_err(|e| e.located(exp, &crate::plan::model_key(name, spec)))?;
        spinner.finish_and_clear();
        self.progress.status(&format!(
            "loaded model {name} in {:.1}s",
            t.elapsed().as_secs_f64()
        ));
        self.models.insert(key.clone(), ready);
        Ok(key)
    }

    fn take_node(&self, v: &mut VariantPlan, name: &str) -> Result<NodeRun, RunError> {
        let node = v.analysis_mut(name);
        let analysis = node.built.take().expect("each analysis node runs once");
        NodeRun::new(self.cache, name, &node.hash, analysis, &node.tables)
    }

    /// Commits a finished analysis node with what it learnt about its inputs.
    fn commit_node(
        &mut self,
        v: &VariantPlan,
        node: NodeRun,
        dataset: Option<&Dataset>,
    ) -> Result<(), RunError> {
        let planned = v.analysis(&node.name);
        let mut rows = BTreeMap::new();
        for (part, mut w) in node.writers {
            w.finish(&json!({ "node": node.hash }))?;
            w.commit()?;
            rows.insert(part.unwrap_or("").to_string(), w.rows);
        }
        let mut facts = json!({});
        if let Some(d) = dataset {
            facts["dataset_content_hash"] = json!(d.hash);
            facts["prompts"] = json!(d.len());
        }
        let record = NodeRecord {
            kind: "analysis".into(),
            name: node.name.clone(),
            experiment: v.experiment.name.clone(),
            hash: node.hash.clone(),
            key: planned.key.clone(),
            facts,
            rows,
            seconds: node.started.elapsed().as_secs_f64(),
        };
        self.cache.commit(node.staging, &record, self.force)?;
        self.computed.insert(node.hash);
        failpoint::hit("node-committed")
    }

    fn weights(&mut self, v: &mut VariantPlan, model: &str, name: &str) -> Result<(), RunError> {
        let key = self.ensure_model(v, model)?;
        let mut node = self.take_node(v, name)?;
        let ready = &self.models[&key];
        let ctx = ModelContext {
            model: &ready.model,
            tokenizer: &ready.tokenizer,
        };
        let spinner = self.progress.spinner(&format!("{name} ({model} weights)"));
        node.analysis
            .finish(
                &ctx,
                &mut NodeSink {
                    writers: &mut node.writers,
                },
            )
            .map_err(|e| analysis_failure(&v.experiment, name, e))?;
        spinner.finish_and_clear();
        self.commit_node(v, node, None)
    }

    /// One forward pass over `f`'s dataset feeding the analyses `names` (those the cache
    /// lacks), capturing only the hook points they need.
    fn forward(
        &mut self,
        v: &mut VariantPlan,
        f: &ForwardNode,
        names: &[String],
    ) -> Result<(), RunError> {
        let key = self.ensure_model(v, &f.model)?;
        let exp = v.experiment.clone();
        let dataset = build_dataset(&exp, &self.models[&key], &f.dataset)?;
        let mut nodes: Vec<NodeRun> = names
            .iter()
            .map(|a| self.take_node(v, a))
            .collect::<Result<_, _>>()?;
        let mut hooks = BTreeSet::new();
        let mut corrupt_hooks = BTreeSet::new();
        let mut corrupt = false;
        for n in &nodes {
            let req = n.analysis.requirements();
            hooks.extend(req.hooks);
            corrupt |= req.corrupt_run;
            corrupt_hooks.extend(req.corrupt_hooks);
        }
        let stream = Stream {
            model: &self.models[&key],
            device: &self.device,
            side: exp.models[&f.model].padding_side,
            batch_size: f.batch_size,
        };
        let ctx = stream.context();
        // Passes over other datasets some analyses need first (e.g. mean-ablation references).
        for n in nodes.iter_mut() {
            let Some(prepass) = n.analysis.prepass() else {
                continue;
            };
            let reference = build_dataset(&exp, stream.model, &prepass.dataset)?;
            let bar = self.progress.bar(
                &format!(
                    "{} x {} -> {} (reference)",
                    f.model, prepass.dataset, n.name
                ),
                reference.len() as u64,
            );
            stream.each_batch(&reference, &prepass.hooks, None, |batch| {
                n.analysis
                    .absorb(&ctx, batch)
                    .map_err(|e| analysis_failure(&exp, &n.name, e))?;
                bar.inc(batch.prompts.len() as u64);
                Ok(())
            })?;
            bar.finish_and_clear();
            self.forward_passes += 1;
        }
        let bar = self.progress.bar(
            &format!("{} x {} -> {}", f.model, f.dataset, names.join(", ")),
            dataset.len() as u64,
        );
        let corrupt = corrupt.then_some(&corrupt_hooks);
        stream.each_batch(&dataset, &hooks, corrupt, |batch| {
            for n in nodes.iter_mut() {
                let mut sink = NodeSink {
                    writers: &mut n.writers,
                };
                n.analysis
                    .process(&ctx, batch, &mut sink)
                    .map_err(|e| analysis_failure(&exp, &n.name, e))?;
            }
            bar.inc(batch.prompts.len() as u64);
            Ok(())
        })?;
        bar.finish_and_clear();
        self.forward_passes += 1;
        for n in nodes.iter_mut() {
            let mut sink = NodeSink {
                writers: &mut n.writers,
            };
            n.analysis
                .finish(&ctx, &mut sink)
                .map_err(|e| analysis_failure(&exp, &n.name, e))?;
        }
        for n in nodes {
            self.commit_node(v, n, Some(&dataset))?;
        }
        Ok(())
    }
}

/// Dataset `name` of `exp`, tokenized for `model`.
fn build_dataset(exp: &Experiment, model: &ReadyModel, name: &str) -> Result<Dataset, RunError> {
    datasets::build(
        name,
        &exp.datasets[name],
        &exp.base_dir(),
        &model.tokenizer,
        model.model.config.n_ctx,
    )
    .map_err(|e| e.located(exp, &dataset_key(exp, name)))
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
        hooks: &BTreeSet<circuitry_models::HookPoint>,
        corrupt_hooks: Option<&BTreeSet<circuitry_models::HookPoint>>,
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
