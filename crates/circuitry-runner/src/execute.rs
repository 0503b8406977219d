//! Executing a plan: compute every node the cache lacks (training runs, then shared forward
//! passes that capture only what their missing analyses need, then weight analyses), commit each
//! to the cache as it completes, then assemble the tables from the cache and publish them.
//!
//! Every table is assembled from cache entries, whether computed now, by an earlier killed run,
//! or by a shard: so a resumed or sharded run writes the same bytes as an uninterrupted one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use circuitry_circuits::analysis::{Analysis, BatchContext, ModelContext, NoProgress, TableDecl};
use circuitry_circuits::table::{Table, TableSink};
use circuitry_data::{Dataset, pad_id};
use circuitry_models::burn::prelude::Device;
use circuitry_models::{Intervention, ModelSource, PaddingSide, Span, TokenBatch, parse_device};
use circuitry_spec::Experiment;
use serde_json::json;

use crate::assemble;
use crate::cache::{Cache, NodeRecord, Staging, cache_file};
use crate::error::{RunError, analysis_failure};
use crate::manifest::Manifest;
use crate::models::{self, ReadyModel};
use crate::plan::{ForwardNode, Plan, VariantPlan, plan};
use crate::progress::{Progress, WorkBar};
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
        let trained = |model: &str| v.model(model).trained_by.as_ref().map(|t| t.hash.clone());
        for t in &v.trains {
            assign(&t.hash, t.hash.clone());
        }
        for f in &v.forwards {
            // One unit for the analyses that need the whole pass, one per prompt range.
            let mut whole: Vec<&str> = Vec::new();
            let mut ranges: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
            for a in &f.analyses {
                let node = v.analysis(a);
                if node.chunks.is_empty() {
                    whole.push(&node.hash);
                }
                for (k, c) in node.chunks.iter().enumerate() {
                    ranges.entry(k).or_default().push(&c.hash);
                }
            }
            for mut unit in std::iter::once(whole).chain(ranges.into_values()) {
                if unit.is_empty() {
                    continue;
                }
                unit.sort();
                let anchor =
                    trained(&f.model).unwrap_or_else(|| format!("pass:{}", unit.join(",")));
                for h in unit {
                    assign(h, anchor.clone());
                }
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

/// One node's output being written: its tables stream into a cache staging directory.
struct NodeOutput {
    hash: String,
    key: serde_json::Value,
    staging: Staging,
    writers: BTreeMap<Option<&'static str>, TableWriter>,
    started: Instant,
}

impl NodeOutput {
    fn new(
        cache: &Cache,
        hash: &str,
        key: &serde_json::Value,
        decls: &[TableDecl],
    ) -> Result<NodeOutput, RunError> {
        let staging = cache.stage()?;
        let mut writers = BTreeMap::new();
        for decl in decls {
            let w = TableWriter::create(&staging.dir, &cache_file(decl.part), decl.columns)?;
            writers.insert(decl.part, w);
        }
        Ok(NodeOutput {
            hash: hash.to_string(),
            key: key.clone(),
            staging,
            writers,
            started: Instant::now(),
        })
    }

    fn sink(&mut self) -> NodeSink<'_> {
        NodeSink {
            writers: &mut self.writers,
        }
    }
}

/// An analysis being run, and the nodes of it this run computes: the whole, or the wanted
/// prompt ranges (each with the batches it covers).
struct Feed {
    name: String,
    analysis: Box<dyn Analysis>,
    whole: Option<NodeOutput>,
    ranges: Vec<(std::ops::Range<usize>, Option<NodeOutput>)>,
}

impl Feed {
    /// Whether batch `i` is fed to this analysis.
    fn takes(&self, i: usize) -> bool {
        self.whole.is_some()
            || self
                .ranges
                .iter()
                .any(|(r, out)| out.is_some() && r.contains(&i))
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
            .map(String::as_str)
            .chain(v.analyses.iter().flat_map(|a| a.node_hashes()))
            .filter(|h| self.wanted(h))
            .count();
        if todo == 0 {
            return Ok(());
        }
        if !v.label.is_empty() && v.checkpoint.is_none() {
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
                .filter(|a| v.analysis(a).node_hashes().iter().any(|h| self.wanted(h)))
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
        // A checkpoint's model is not read again: free it before the next one loads.
        if let Some(c) = &v.checkpoint {
            let identity = &v.model(&c.model).identity;
            self.models.retain(|(id, _), _| id != identity);
        }
        Ok(())
    }

    /// Trains `v.trains[i]` into a cache entry: the model directory and the learning curve.
    fn train(&mut self, v: &VariantPlan, i: usize) -> Result<(), RunError> {
        let node = &v.trains[i];
        let decl = TableDecl::main::<training::LearningCurveRow>();
        let mut out = NodeOutput::new(self.cache, &node.hash, &node.key, &[decl])?;
        let model_dir = out.staging.dir.join(crate::cache::TRAINED_MODEL_DIR);
        let checkpoint_dir = out
            .staging
            .dir
            .join(circuitry_spec::checkpoints::CHECKPOINTS_DIR);
        let curve = training::run(
            &node.name,
            &v.experiment,
            self.progress,
            &self.device,
            &model_dir,
            &checkpoint_dir,
        )?;
        out.writers
            .get_mut(&None)
            .expect("the learning curve's writer")
            .write(&curve)?;
        let model_hash =
            crate::nodes::files_hash(&crate::nodes::model_files(&ModelSource::HfDir(model_dir)))?;
        let checkpoints = crate::nodes::checkpoint_hashes(&checkpoint_dir)?;
        commit_output(
            self.cache,
            self.force,
            &mut self.computed,
            Committed {
                kind: "train",
                experiment: &v.experiment.name,
                name: &node.name,
                facts: json!({ "model_content_hash": model_hash, "checkpoints": checkpoints }),
            },
            out,
        )
    }

    /// The loaded model `name` of variant `v` (loaded once per content, processing, precision
    /// and tokenizer).
    fn ensure_model(&mut self, v: &VariantPlan, name: &str) -> Result<ModelKey, RunError> {
        let exp = &v.experiment;
        let spec = &exp.models[name];
        let node = v.model(name);
        let key = (
            node.identity.clone(),
            format!(
                "{:?}|{:?}|{:?}",
                spec.processing, spec.dtype, spec.tokenizer
            ),
        );
        if self.models.contains_key(&key) {
            return Ok(key);
        }
        let base = exp.base_dir();
        let source = match &node.trained_by {
            // The model this variant's training node wrote, wherever `output` points now.
            Some(t) => ModelSource::HfDir(t.model_dir(self.cache)),
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
        let which = match v.checkpoint.as_ref().filter(|c| c.model == name) {
            Some(c) => format!("{name} (checkpoint step {})", c.step),
            None => name.to_string(),
        };
        self.progress.status(&format!(
            "loaded model {which} in {:.1}s",
            t.elapsed().as_secs_f64()
        ));
        self.models.insert(key.clone(), ready);
        Ok(key)
    }

    /// Takes analysis `name` from the plan with outputs for its wanted nodes (its ranges are
    /// counted in batches of `batch_size`).
    fn feed(&self, v: &mut VariantPlan, name: &str, batch_size: usize) -> Result<Feed, RunError> {
        let wanted: Vec<bool> = v
            .analysis(name)
            .chunks
            .iter()
            .map(|c| self.wanted(&c.hash))
            .collect();
        let whole_wanted = self.wanted(&v.analysis(name).hash);
        let node = v.analysis_mut(name);
        let analysis = node.built.take().expect("each analysis runs once");
        let mut feed = Feed {
            name: name.to_string(),
            analysis,
            whole: None,
            ranges: Vec::new(),
        };
        if node.chunks.is_empty() {
            if whole_wanted {
                feed.whole = Some(NodeOutput::new(
                    self.cache,
                    &node.hash,
                    &node.key,
                    &node.tables,
                )?);
            }
            return Ok(feed);
        }
        for (chunk, wanted) in node.chunks.iter().zip(wanted) {
            let out = if wanted {
                Some(NodeOutput::new(
                    self.cache,
                    &chunk.hash,
                    &chunk.key,
                    &node.tables,
                )?)
            } else {
                None
            };
            feed.ranges
                .push((crate::chunks::batches(&chunk.prompts, batch_size), out));
        }
        Ok(feed)
    }

    /// Commits a finished node of analysis `name` with what it learnt about its dataset.
    fn commit_node(
        &mut self,
        v: &VariantPlan,
        name: &str,
        out: NodeOutput,
        dataset: Option<&Dataset>,
    ) -> Result<(), RunError> {
        let what = Committed {
            kind: "analysis",
            experiment: &v.experiment.name,
            name,
            facts: dataset_facts(dataset),
        };
        commit_output(self.cache, self.force, &mut self.computed, what, out)
    }

    fn weights(&mut self, v: &mut VariantPlan, model: &str, name: &str) -> Result<(), RunError> {
        let key = self.ensure_model(v, model)?;
        let mut feed = self.feed(v, name, 1)?;
        let mut out = feed.whole.take().expect("a wanted weight analysis");
        let ready = &self.models[&key];
        let bar = WorkBar::new(self.progress, format!("{name} ({model} weights)"));
        let ctx = ModelContext {
            model: &ready.model,
            tokenizer: &ready.tokenizer,
            progress: &bar,
        };
        let spinner = self.progress.spinner(&format!("{name} ({model} weights)"));
        feed.analysis
            .finish(&ctx, &mut out.sink())
            .map_err(|e| analysis_failure(&v.experiment, name, e))?;
        spinner.finish_and_clear();
        self.commit_node(v, name, out, None)
    }

    /// One forward pass over `f`'s dataset feeding the analyses `names` (those with nodes the
    /// cache lacks), capturing only the hook points they need and running only the batches
    /// their missing nodes cover. Prompt-range nodes are committed as their last batch is done.
    fn forward(
        &mut self,
        v: &mut VariantPlan,
        f: &ForwardNode,
        names: &[String],
    ) -> Result<(), RunError> {
        let key = self.ensure_model(v, &f.model)?;
        let exp = v.experiment.clone();
        let dataset = build_dataset(&exp, &self.models[&key], &f.dataset)?;
        let mut feeds: Vec<Feed> = names
            .iter()
            .map(|a| self.feed(v, a, f.batch_size))
            .collect::<Result<_, _>>()?;
        let mut hooks = BTreeSet::new();
        let mut corrupt_hooks = BTreeSet::new();
        let mut corrupt = false;
        for feed in &feeds {
            let req = feed.analysis.requirements();
            hooks.extend(req.hooks);
            corrupt |= req.corrupt_run;
            corrupt_hooks.extend(req.corrupt_hooks);
        }
        let batch_size = f.batch_size;
        let n_batches = dataset.len().div_ceil(batch_size.max(1));
        let needed: Vec<bool> = (0..n_batches)
            .map(|i| feeds.iter().any(|feed| feed.takes(i)))
            .collect();
        let stream = Stream {
            model: &self.models[&key],
            device: &self.device,
            side: exp.models[&f.model].padding_side,
            batch_size,
        };
        let ctx = stream.context();
        // Passes over other datasets some analyses need first (e.g. mean-ablation references).
        for feed in feeds.iter_mut() {
            let Some(prepass) = feed.analysis.prepass() else {
                continue;
            };
            let reference = build_dataset(&exp, stream.model, &prepass.dataset)?;
            let bar = self.progress.bar(
                &format!(
                    "{} x {} -> {} (reference)",
                    f.model, prepass.dataset, feed.name
                ),
                reference.len() as u64,
            );
            stream.each_batch(
                &reference,
                &prepass.hooks,
                None,
                |_| true,
                |_, batch| {
                    feed.analysis
                        .absorb(&ctx, batch)
                        .map_err(|e| analysis_failure(&exp, &feed.name, e))?;
                    bar.inc(batch.prompts.len() as u64);
                    Ok(())
                },
            )?;
            bar.finish_and_clear();
            self.forward_passes += 1;
        }
        let bar = self.progress.bar(
            &format!("{} x {} -> {}", f.model, f.dataset, names.join(", ")),
            needed.iter().filter(|&&b| b).count() as u64,
        );
        let corrupt = corrupt.then_some(&corrupt_hooks);
        let mut finished: Vec<(String, NodeOutput)> = Vec::new();
        stream.each_batch(
            &dataset,
            &hooks,
            corrupt,
            |i| needed[i],
            |i, batch| {
                for feed in feeds.iter_mut() {
                    let name = &feed.name;
                    let fail = |e| analysis_failure(&exp, name, e);
                    if let Some(out) = feed.whole.as_mut() {
                        feed.analysis
                            .process(&ctx, batch, &mut out.sink())
                            .map_err(fail)?;
                        continue;
                    }
                    let Some((range, slot)) = feed
                        .ranges
                        .iter_mut()
                        .find(|(r, out)| out.is_some() && r.contains(&i))
                    else {
                        continue;
                    };
                    let out = slot.as_mut().expect("wanted range");
                    feed.analysis
                        .process(&ctx, batch, &mut out.sink())
                        .map_err(fail)?;
                    if i + 1 == range.end {
                        finished.push((name.clone(), slot.take().expect("wanted range")));
                    }
                }
                bar.inc(1);
                // A range whose last batch this was is complete: commit it now, so that a
                // killed run keeps it.
                for (name, out) in finished.drain(..) {
                    let what = Committed {
                        kind: "analysis",
                        experiment: &exp.name,
                        name: &name,
                        facts: dataset_facts(Some(&dataset)),
                    };
                    commit_output(self.cache, self.force, &mut self.computed, what, out)?;
                }
                Ok(())
            },
        )?;
        bar.finish_and_clear();
        self.forward_passes += 1;
        for feed in feeds.iter_mut() {
            if let Some(out) = feed.whole.as_mut() {
                let bar = WorkBar::new(self.progress, format!("{} ({} sites)", feed.name, f.model));
                let ctx = ModelContext {
                    progress: &bar,
                    ..ctx
                };
                feed.analysis
                    .finish(&ctx, &mut out.sink())
                    .map_err(|e| analysis_failure(&exp, &feed.name, e))?;
            }
        }
        for feed in feeds {
            if let Some(out) = feed.whole {
                self.commit_node(v, &feed.name, out, Some(&dataset))?;
            }
        }
        Ok(())
    }
}

/// What a committed node records besides its tables.
struct Committed<'a> {
    /// `train` or `analysis`.
    kind: &'static str,
    experiment: &'a str,
    name: &'a str,
    /// What it learnt about its inputs.
    facts: serde_json::Value,
}

/// What an analysis node learnt about its dataset.
fn dataset_facts(dataset: Option<&Dataset>) -> serde_json::Value {
    match dataset {
        Some(d) => json!({ "dataset_content_hash": d.hash, "prompts": d.len() }),
        None => json!({}),
    }
}

/// Finishes the tables of node `out`, commits it to `cache` with its record, and records it as
/// computed.
fn commit_output(
    cache: &Cache,
    force: bool,
    computed: &mut BTreeSet<String>,
    what: Committed<'_>,
    out: NodeOutput,
) -> Result<(), RunError> {
    let mut rows = BTreeMap::new();
    for (part, mut w) in out.writers {
        w.finish(&json!({ "node": out.hash }))?;
        w.commit()?;
        rows.insert(part.unwrap_or("").to_string(), w.rows);
    }
    let record = NodeRecord {
        kind: what.kind.into(),
        name: what.name.to_string(),
        experiment: what.experiment.to_string(),
        hash: out.hash.clone(),
        key: out.key,
        facts: what.facts,
        rows,
        seconds: out.started.elapsed().as_secs_f64(),
    };
    cache.commit(out.staging, &record, force)?;
    computed.insert(out.hash);
    failpoint::hit("node-committed")
}

/// Dataset `name` of `exp`, tokenized for `model`.
fn build_dataset(exp: &Experiment, model: &ReadyModel, name: &str) -> Result<Dataset, RunError> {
    datasets::build(exp, name, &model.tokenizer, model.model.config.n_ctx)
        // Data errors name their own key (`datasets.NAME.length`); others point at the section.
        .map_err(|e| e.located(exp, &format!("datasets.{name}")))
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
            progress: &NoProgress,
        }
    }

    /// Runs the batches `i` of `dataset` with `keep(i)`, handing each to `f`.
    fn each_batch(
        &self,
        dataset: &Dataset,
        hooks: &BTreeSet<circuitry_models::HookPoint>,
        corrupt_hooks: Option<&BTreeSet<circuitry_models::HookPoint>>,
        keep: impl Fn(usize) -> bool,
        mut f: impl FnMut(usize, &BatchContext) -> Result<(), RunError>,
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
        for (i, batch) in batches.iter().enumerate().filter(|(i, _)| keep(*i)) {
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
            f(
                i,
                &BatchContext {
                    prompts: &prompts,
                    clean: &clean,
                    clean_output: &clean_output,
                    corrupt: corrupt.as_ref().map(|(t, o)| (t, o)),
                },
            )?;
        }
        Ok(())
    }
}
