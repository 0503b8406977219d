//! The experiment: loading ([`ExperimentFile`] → [`Experiment`]), sweep expansion ([`Variant`]),
//! hashes and the resolved configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::analysis::{self, AnalysisSpec};
use crate::causal_model::CausalModelSpec;
use crate::dataset::{DatasetSpec, derive_seed};
use crate::dataset_lower;
use crate::de::{from_entries, from_node};
use crate::device::Device;
use crate::diagnostic::{Diagnostic, Sources, SpecError};
use crate::hash::{self, Hashes};
use crate::model::ModelSpec;
use crate::node::{self, Entry, Node, join_path};
use crate::overrides;
use crate::paths::{base_dir_of, resolve_path};
use crate::sweep::{self, Sweep};
use crate::train::TrainSpec;
use crate::validate::Ctx;

/// The sections of an experiment file, besides the top-level keys of [`ExperimentHeader`].
pub(crate) const SECTIONS: &[&str] = &[
    "models",
    "causal_models",
    "datasets",
    "analyses",
    "train",
    "sweep",
];

/// The sections whose entries are named (`[models.NAME]`, ...), with what one entry is called.
const NAMED_SECTIONS: &[(&str, &str)] = &[
    ("models", "model"),
    ("causal_models", "causal model"),
    ("datasets", "dataset"),
    ("analyses", "analysis"),
    ("train", "training run"),
];

/// When `path` reaches into an entry of a named section (`models.toi.path`) that `root` does
/// not define: the message and the hint. Overrides and sweeps change entries; they never create
/// one from a single key, where a typo would otherwise run silently.
fn undefined_entry(root: &Node, path: &[String]) -> Option<(String, String)> {
    let [section, name, _, ..] = path else {
        return None;
    };
    let (_, what) = NAMED_SECTIONS.iter().find(|(s, _)| s == section)?;
    let entries = root.get(section).and_then(Node::as_table).unwrap_or(&[]);
    if entries.iter().any(|e| &e.key == name) {
        return None;
    }
    let names = entries.iter().map(|e| e.key.as_str());
    let hint = match crate::diagnostic::did_you_mean(name, names.clone()) {
        Some(close) => format!("did you mean `{section}.{close}`?"),
        None if entries.is_empty() => format!("the file has no [{section}.*] entries"),
        None => format!(
            "defined: {}",
            names
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Some((
        format!("the file defines no {what} `{name}` (no [{section}.{name}])"),
        hint,
    ))
}

/// The most distinct errors reported for one experiment.
const MAX_DIAGNOSTICS: usize = 50;

/// The top-level keys of an experiment file.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExperimentHeader {
    /// The experiment's name: outputs go to `<out>/<name>/`. Letters, digits, `_`, `-` and `.`.
    /// Default: the file name without its extension.
    #[serde(default)]
    pub name: Option<String>,
    /// What the experiment is about. Documentation only: not part of any hash.
    #[serde(default)]
    pub description: Option<String>,
    /// The master seed: generators and training runs without a `seed` of their own derive one
    /// from it and their name.
    #[serde(default)]
    pub seed: u64,
    /// The default compute device: flex (pure-Rust CPU), tch, cuda, cuda:N, wgpu or ndarray. The
    /// CLI's `--device` overrides it. Default: the CLI's default (flex).
    #[serde(default)]
    pub device: Option<Device>,
}

/// An experiment file that has been parsed as TOML and may receive `--set` overrides, but has not
/// been validated yet. [`ExperimentFile::resolve`] validates it into an [`Experiment`].
#[derive(Clone, Debug)]
pub struct ExperimentFile {
    sources: Sources,
    tree: Node,
}

impl ExperimentFile {
    /// Reads and parses the file at `path` (TOML syntax only).
    pub fn read(path: impl AsRef<Path>) -> Result<Self, SpecError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostic::new(format!(
                "cannot read experiment file `{}`: {e}",
                path.display()
            ))
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (TOML syntax only); `path` names it in errors and anchors its relative paths
    /// and default name.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self, SpecError> {
        let sources = Sources {
            file_path: path.as_ref().to_path_buf(),
            file_text: text.to_string(),
            overrides: Vec::new(),
        };
        let tree = node::parse_document(&sources)?;
        Ok(ExperimentFile { sources, tree })
    }

    /// Applies a `--set KEY=VALUE` override. `KEY` is a dotted TOML key
    /// (`analyses.heads.layers`, `sweep."datasets.rep.length"`); `VALUE` is a TOML value (`[0, 1]`,
    /// `true`, `"text"`, `{ id = 5 }`), and a value that is not valid TOML and does not start like
    /// an array, table or quoted string is a bare string, so `models.toy.path=models/x` works.
    /// Keys that do not exist are created, inside the entries the file defines: a key inside an
    /// entry it does not define (`models.toi.path`) is an error. Nothing else is validated until
    /// [`ExperimentFile::resolve`]; errors then point into the override's text.
    pub fn apply_override(&mut self, assignment: &str) -> Result<(), SpecError> {
        self.sources.overrides.push(assignment.to_string());
        let index = self.sources.overrides.len() - 1;
        let o = match overrides::parse(&self.sources, index) {
            Ok(o) => o,
            Err(e) => {
                self.sources.overrides.pop();
                return Err(e.into());
            }
        };
        if let Some((message, hint)) = undefined_entry(&self.tree, &o.path) {
            let mut d = self.sources.error(
                &o.key_span,
                format!("cannot set `{}`: {message}", node::display_path(&o.path)),
            );
            d.hint = Some(hint);
            self.sources.overrides.pop();
            return Err(d.into());
        }
        if let Err(why) = self.tree.set_path(&o.path, o.value, &o.key_span) {
            let d = self.sources.error(
                &o.key_span,
                format!("cannot set `{}`: {why}", node::display_path(&o.path)),
            );
            self.sources.overrides.pop();
            return Err(d.into());
        }
        Ok(())
    }

    /// The path the file was read from (or named by the caller).
    pub fn path(&self) -> &Path {
        &self.sources.file_path
    }

    /// Validates the file, fills in defaults and expands the sweep.
    pub fn resolve(&self) -> Result<Experiment, SpecError> {
        let sources = Arc::new(self.sources.clone());
        let mut tree = self.tree.clone();
        let sweep_entry = tree.remove("sweep");
        let mut ctx = Ctx::new(&sources);
        let axes = match &sweep_entry {
            Some(e) => sweep::parse(&e.node, &mut ctx),
            None => Vec::new(),
        };
        for axis in &axes {
            if let Some((message, hint)) = undefined_entry(&tree, &axis.path) {
                ctx.error(
                    &axis.key_span,
                    format!("cannot sweep `{}`: {message}", axis.axis.key),
                )
                .hint = Some(hint);
            }
        }
        if !ctx.diags.is_empty() {
            return Err(SpecError::new(ctx.diags));
        }
        if axes.is_empty() {
            let fields = lower(&tree, &mut ctx);
            return match fields {
                Some(fields) if ctx.diags.is_empty() => Ok(Experiment::new(
                    fields,
                    sources.clone(),
                    Arc::new(tree),
                    Vec::new(),
                )),
                _ => Err(SpecError::new(ctx.diags)),
            };
        }
        // Variants share the tree without the sweep and remember what their sweep values were,
        // so that `diagnostic_at` can point at them without a copy of the tree per run.
        let shared_tree = Arc::new(tree);

        let mut variants = Vec::new();
        let mut diags: Vec<Diagnostic> = Vec::new();
        for (index, point) in sweep::grid(&axes).into_iter().enumerate() {
            let mut variant_tree = (*shared_tree).clone();
            let mut ctx = Ctx::new(&sources);
            let mut columns = Vec::new();
            for (axis, &i) in axes.iter().zip(&point) {
                columns.push((axis.axis.column.clone(), axis.axis.values[i].clone()));
                if let Err(why) =
                    variant_tree.set_path(&axis.path, axis.values[i].clone(), &axis.key_span)
                {
                    ctx.error(
                        &axis.key_span,
                        format!("cannot sweep `{}`: {why}", axis.axis.key),
                    );
                }
            }
            let fields = if ctx.diags.is_empty() {
                lower(&variant_tree, &mut ctx)
            } else {
                None
            };
            let label = label(&columns);
            for d in ctx.diags {
                if diags.len() < MAX_DIAGNOSTICS && !diags.iter().any(|seen| same(seen, &d)) {
                    diags.push(d.with_note(format!("in sweep run {index}: {label}")));
                }
            }
            if let Some(fields) = fields {
                let swept = axes
                    .iter()
                    .zip(&point)
                    .map(|(axis, &i)| (axis.path.clone(), axis.values[i].clone()))
                    .collect();
                let experiment =
                    Experiment::new(fields, sources.clone(), shared_tree.clone(), swept);
                variants.push(Variant {
                    index,
                    columns,
                    experiment,
                });
            }
        }
        if !diags.is_empty() {
            return Err(SpecError::new(diags));
        }
        let sweep = Sweep {
            axes: axes.into_iter().map(|a| a.axis).collect(),
        };
        let Some(first) = variants.first().map(|v| v.experiment.clone()) else {
            return Err(SpecError::new(Vec::new()));
        };
        Ok(Experiment {
            sweep,
            variants,
            ..first
        })
    }
}

fn same(a: &Diagnostic, b: &Diagnostic) -> bool {
    a.message == b.message && a.location == b.location && a.hint == b.hint
}

fn label(columns: &[(String, serde_json::Value)]) -> String {
    columns
        .iter()
        .map(|(c, v)| format!("{c} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A validated experiment with every default filled in.
///
/// With a `[sweep]`, the fields hold the first combination of the grid and
/// [`Experiment::expand`] lists them all; without one, `expand` returns the experiment itself.
/// Every `Option` documented as "after loading, always set" is `Some`.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// Outputs go to `<out>/<name>/`.
    pub name: String,
    /// Free text; not part of any hash.
    pub description: Option<String>,
    /// The master seed.
    pub seed: u64,
    /// The default device (the CLI's `--device` wins).
    pub device: Option<Device>,
    /// `[models.*]`, in file order.
    pub models: IndexMap<String, ModelSpec>,
    /// `[causal_models.*]`, in file order.
    pub causal_models: IndexMap<String, CausalModelSpec>,
    /// `[datasets.*]`, in file order.
    pub datasets: IndexMap<String, DatasetSpec>,
    /// `[analyses.*]`, in file order.
    pub analyses: IndexMap<String, AnalysisSpec>,
    /// `[train.*]`, in file order.
    pub train: IndexMap<String, TrainSpec>,
    /// The grid (empty without a `[sweep]`, and in each [`Variant`]'s experiment).
    pub sweep: Sweep,
    sources: Arc<Sources>,
    /// The file's tree after overrides, without `sweep`.
    tree: Arc<Node>,
    /// The sweep values this experiment was built with: (key path, value as written).
    swept: Arc<Vec<(Vec<String>, Node)>>,
    variants: Vec<Variant>,
}

/// One run of a sweep: a concrete experiment (without a sweep) and the values that make it
/// different from the other runs.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Position in the grid (0-based; the first axis varies slowest).
    pub index: usize,
    /// `(column, value)` for every sweep axis, in axis order: add them to every table row.
    pub columns: Vec<(String, serde_json::Value)>,
    /// The experiment with this combination's values.
    pub experiment: Experiment,
}

impl Variant {
    /// `length = 10, batch_size = 8` (empty without a sweep).
    pub fn label(&self) -> String {
        label(&self.columns)
    }
}

impl PartialEq for Experiment {
    fn eq(&self, other: &Self) -> bool {
        self.resolved_json() == other.resolved_json()
    }
}

/// The fields lowered from a tree.
struct Fields {
    name: String,
    description: Option<String>,
    seed: u64,
    device: Option<Device>,
    models: IndexMap<String, ModelSpec>,
    causal_models: IndexMap<String, CausalModelSpec>,
    datasets: IndexMap<String, DatasetSpec>,
    analyses: IndexMap<String, AnalysisSpec>,
    train: IndexMap<String, TrainSpec>,
}

impl Experiment {
    fn new(
        fields: Fields,
        sources: Arc<Sources>,
        tree: Arc<Node>,
        swept: Vec<(Vec<String>, Node)>,
    ) -> Self {
        Experiment {
            name: fields.name,
            description: fields.description,
            seed: fields.seed,
            device: fields.device,
            models: fields.models,
            causal_models: fields.causal_models,
            datasets: fields.datasets,
            analyses: fields.analyses,
            train: fields.train,
            sweep: Sweep::default(),
            sources,
            tree,
            swept: Arc::new(swept),
            variants: Vec::new(),
        }
    }

    /// Reads, validates and expands the experiment file at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SpecError> {
        ExperimentFile::read(path)?.resolve()
    }

    /// Like [`Experiment::from_file`], applying `--set` overrides before validation.
    pub fn from_file_with_overrides<S: AsRef<str>>(
        path: impl AsRef<Path>,
        overrides: &[S],
    ) -> Result<Self, SpecError> {
        let mut file = ExperimentFile::read(path)?;
        for o in overrides {
            file.apply_override(o.as_ref())?;
        }
        file.resolve()
    }

    /// Parses and validates `text`; `path` names it in errors, anchors its relative paths and
    /// gives the default name (its file stem).
    #[allow(clippy::should_implement_trait)] // `FromStr` cannot take the path
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Self, SpecError> {
        ExperimentFile::parse(text, path)?.resolve()
    }

    /// The experiment file's path, as given.
    pub fn path(&self) -> &Path {
        &self.sources.file_path
    }

    /// The directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        base_dir_of(&self.sources.file_path)
    }

    /// Resolves a path written in the file (see [`crate::resolve_path`]).
    pub fn resolve_path(&self, raw: &str) -> PathBuf {
        resolve_path(&self.base_dir(), raw)
    }

    /// The `--set` overrides applied, in order.
    pub fn overrides(&self) -> &[String] {
        &self.sources.overrides
    }

    /// Whether the experiment has a `[sweep]`.
    pub fn is_sweep(&self) -> bool {
        !self.sweep.is_empty()
    }

    /// Every run: one per combination of the sweep grid (first axis slowest), or the experiment
    /// itself without a sweep. Each variant's experiment has an empty sweep.
    pub fn expand(&self) -> Vec<Variant> {
        if self.variants.is_empty() {
            vec![Variant {
                index: 0,
                columns: Vec::new(),
                experiment: self.clone(),
            }]
        } else {
            self.variants.clone()
        }
    }

    /// The resolved configuration as JSON: every default filled in, the canonical form of every
    /// value (it parses back, as TOML, to an identical experiment).
    pub fn resolved_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The resolved configuration as a TOML document.
    pub fn resolved_toml(&self) -> String {
        toml::to_string(&self.resolved_json()).unwrap_or_default()
    }

    /// The hash of the whole resolved experiment (sweep grid included, `description` excluded).
    pub fn hash(&self) -> String {
        let mut json = self.resolved_json();
        if let Some(map) = json.as_object_mut() {
            map.remove("description");
        }
        hash::hash_value("experiment", &json)
    }

    /// The hash of a model's resolved configuration.
    pub fn model_hash(&self, name: &str) -> Option<String> {
        self.models.get(name).map(|m| hash::hash_of("model", m))
    }

    /// The hash of a dataset's resolved configuration (including its derived seed).
    pub fn dataset_hash(&self, name: &str) -> Option<String> {
        self.datasets.get(name).map(|d| hash::hash_of("dataset", d))
    }

    /// The hash of everything an analysis's output depends on: its own configuration and the
    /// resolved configurations of its model and dataset.
    pub fn analysis_hash(&self, name: &str) -> Option<String> {
        let a = self.analyses.get(name)?;
        let json = serde_json::json!({
            "analysis": a,
            "model": self.models.get(&a.model),
            "dataset": a.dataset.as_ref().and_then(|d| self.datasets.get(d)),
        });
        Some(hash::hash_value("analysis", &json))
    }

    /// The hash of a training run: its configuration and its dataset's.
    pub fn train_hash(&self, name: &str) -> Option<String> {
        let t = self.train.get(name)?;
        let dataset = t.dataset.as_ref().and_then(|d| self.datasets.get(d));
        let json = serde_json::json!({ "train": t, "dataset": dataset });
        Some(hash::hash_value("train", &json))
    }

    /// Every hash at once.
    pub fn hashes(&self) -> Hashes {
        let collect = |names: Vec<&String>, f: &dyn Fn(&str) -> Option<String>| {
            names
                .into_iter()
                .filter_map(|n| f(n).map(|h| (n.clone(), h)))
                .collect()
        };
        Hashes {
            experiment: self.hash(),
            models: collect(self.models.keys().collect(), &|n| self.model_hash(n)),
            datasets: collect(self.datasets.keys().collect(), &|n| self.dataset_hash(n)),
            analyses: collect(self.analyses.keys().collect(), &|n| self.analysis_hash(n)),
            train: collect(self.train.keys().collect(), &|n| self.train_hash(n)),
        }
    }

    /// A diagnostic pointing at a dotted key of this experiment's file, for problems found later
    /// (e.g. the runner finding that `datasets.texts.file` does not exist). A key that is not
    /// written in the file points at its nearest written ancestor.
    pub fn diagnostic_at(&self, key: &str, message: impl Into<String>) -> Diagnostic {
        let segments: Vec<&str> = key.split('.').collect();
        for (path, value) in self.swept.iter() {
            if segments.len() >= path.len() && segments[..path.len()] == *path {
                let rest = segments[path.len()..].join(".");
                return self.sources.error(value.span_at(&rest), message);
            }
        }
        self.sources.error(self.tree.span_at(key), message)
    }
}

impl Serialize for Experiment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &self.name)?;
        if let Some(d) = &self.description {
            m.serialize_entry("description", d)?;
        }
        m.serialize_entry("seed", &self.seed)?;
        if let Some(d) = &self.device {
            m.serialize_entry("device", d)?;
        }
        m.serialize_entry("models", &self.models)?;
        if !self.causal_models.is_empty() {
            m.serialize_entry("causal_models", &self.causal_models)?;
        }
        m.serialize_entry("datasets", &self.datasets)?;
        m.serialize_entry("analyses", &self.analyses)?;
        if !self.train.is_empty() {
            m.serialize_entry("train", &self.train)?;
        }
        if !self.sweep.is_empty() {
            m.serialize_entry("sweep", &self.sweep)?;
        }
        m.end()
    }
}

/// Whether `name` can name an entry (and so an output file): letters, digits, `_` and `-`.
/// Calls `each` on the entries of `[section.*]` in file order, reporting and skipping those with
/// invalid names as it meets them (so diagnostics stay in file order).
fn for_each_named<'c, 'n>(
    ctx: &mut Ctx<'c>,
    section: &str,
    entries: &'n [Entry],
    mut each: impl FnMut(&mut Ctx<'c>, &'n Entry),
) {
    for e in entries {
        if check_entry_name(ctx, section, e) {
            each(ctx, e);
        }
    }
}

fn check_entry_name(ctx: &mut Ctx<'_>, section: &str, entry: &Entry) -> bool {
    let ok = node::is_bare_key(&entry.key) && !entry.key.starts_with('-') && entry.key.len() <= 100;
    if !ok {
        ctx.error(&entry.key_span, format!("invalid name `{}` in [{section}]", entry.key))
            .hint = Some("names use letters, digits, `_` and `-` (they become file names and references), at most 100 characters".into());
    }
    ok
}

fn check_experiment_name(name: &str) -> Result<(), &'static str> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if name.is_empty() || !ok_chars || name.starts_with('.') || name.len() > 100 {
        Err(
            "names use letters, digits, `_`, `-` and `.` (not first), at most 100 characters: it is a directory name",
        )
    } else {
        Ok(())
    }
}

/// The entries of a section table (`[models]`, ...), reporting a non-table.
fn section<'n>(root: &'n Node, key: &str, ctx: &mut Ctx<'_>) -> &'n [Entry] {
    match root.get(key) {
        None => &[],
        Some(node) => match node.as_table() {
            Some(entries) => entries,
            None => {
                ctx.error(
                    &node.span,
                    format!(
                        "`{key}` must be a table of named entries, found {}",
                        node.value.a_type_name()
                    ),
                )
                .hint = Some(format!("write entries as [{key}.NAME] sections"));
                &[]
            }
        },
    }
}

/// Turns a tree (without `sweep`) into experiment fields; problems go to `ctx`.
fn lower(root: &Node, ctx: &mut Ctx<'_>) -> Option<Fields> {
    let Some(entries) = root.as_table() else {
        ctx.error(&root.span, "an experiment file must be a TOML table");
        return None;
    };
    let header_entries: Vec<Entry> = entries
        .iter()
        .filter(|e| !SECTIONS.contains(&e.key.as_str()))
        .cloned()
        .collect();
    let header = from_entries::<ExperimentHeader>(header_entries, &root.span, "")
        .map_err(|e| ctx.de_error(e, SECTIONS))
        .ok();
    let seed = header.as_ref().map_or(0, |h| h.seed);

    let mut name = None;
    if let Some(h) = &header {
        let (value, span) = match &h.name {
            Some(n) => (Some(n.clone()), root.span_at("name").clone()),
            None => (
                ctx.sources
                    .file_path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_string),
                root.span.clone(),
            ),
        };
        match value {
            Some(v) => match check_experiment_name(&v) {
                Ok(()) => name = Some(v),
                Err(why) => {
                    let d = if h.name.is_some() {
                        ctx.error(&span, format!("invalid experiment name `{v}`"))
                    } else {
                        ctx.error(
                            &span,
                            format!("cannot use the file name `{v}` as the experiment's name"),
                        )
                    };
                    d.hint = Some(format!("{why}; set name = \"...\""));
                }
            },
            None => {
                ctx.error(&span, "the experiment has no name").hint =
                    Some("set name = \"...\" at the top of the file".into());
            }
        }
    }

    // Models.
    let model_entries = section(root, "models", ctx);
    let model_names: Vec<&str> = model_entries.iter().map(|e| e.key.as_str()).collect();
    let mut models = IndexMap::new();
    for_each_named(ctx, "models", model_entries, |ctx, e| {
        let path = join_path("models", &e.key);
        match from_node::<ModelSpec>(&e.node, &path) {
            Ok(m) => {
                let before = ctx.diags.len();
                m.validate(&mut ctx.checker(&e.node, path));
                if ctx.diags.len() == before {
                    models.insert(e.key.clone(), m);
                }
            }
            Err(err) => ctx.de_error(err, &[]),
        }
    });

    // Causal models.
    let causal_entries = section(root, "causal_models", ctx);
    let causal_names: Vec<&str> = causal_entries.iter().map(|e| e.key.as_str()).collect();
    let mut causal_models = IndexMap::new();
    for_each_named(ctx, "causal_models", causal_entries, |ctx, e| {
        let path = join_path("causal_models", &e.key);
        match from_node::<CausalModelSpec>(&e.node, &path) {
            Ok(m) => {
                let before = ctx.diags.len();
                m.validate(&mut ctx.checker(&e.node, path));
                if ctx.diags.len() == before {
                    causal_models.insert(e.key.clone(), m);
                }
            }
            Err(err) => ctx.de_error(err, &[]),
        }
    });

    // Datasets.
    let dataset_entries = section(root, "datasets", ctx);
    let dataset_names: Vec<&str> = dataset_entries.iter().map(|e| e.key.as_str()).collect();
    let mut datasets = IndexMap::new();
    for_each_named(ctx, "datasets", dataset_entries, |ctx, e| {
        if let Some(d) = dataset_lower::lower(&e.key, &e.node, seed, ctx) {
            datasets.insert(e.key.clone(), d);
        }
    });
    for e in dataset_entries {
        let mut c = ctx.checker(&e.node, join_path("datasets", &e.key));
        crate::causal_model::check_causal_references(
            &e.key,
            &mut datasets,
            &causal_models,
            &causal_names,
            &mut c,
        );
    }
    // The dataset an analysis or a training run names, for the checks against its contents.
    let named_dataset = |name: &Option<String>| {
        name.as_ref()
            .and_then(|d| datasets.get_key_value(d))
            .map(|(k, v)| (k.as_str(), v))
    };

    // Analyses.
    let mut analyses = IndexMap::new();
    let analysis_entries = section(root, "analyses", ctx);
    for_each_named(ctx, "analyses", analysis_entries, |ctx, e| {
        let Some(spec) = analysis::lower(&e.key, &e.node, seed, ctx) else {
            return;
        };
        let before = ctx.diags.len();
        let mut c = ctx.checker(&e.node, join_path("analyses", &e.key));
        c.dataset = named_dataset(&spec.dataset);
        analysis::validate(&spec, &mut c, &model_names, &dataset_names);
        if ctx.diags.len() == before {
            analyses.insert(e.key.clone(), spec);
        }
    });

    // Training runs.
    let mut train: IndexMap<String, TrainSpec> = IndexMap::new();
    let train_entries = section(root, "train", ctx);
    for_each_named(ctx, "train", train_entries, |ctx, e| {
        let path = join_path("train", &e.key);
        let mut spec = match from_node::<TrainSpec>(&e.node, &path) {
            Ok(t) => t,
            Err(err) => {
                ctx.de_error(err, &[]);
                return;
            }
        };
        spec.resolve(derive_seed(seed, "train", &e.key));
        let before = ctx.diags.len();
        let mut c = ctx.checker(&e.node, path);
        if let Some(dataset) = &spec.dataset {
            analysis::check_reference(&mut c, "dataset", dataset, &dataset_names);
        }
        c.dataset = named_dataset(&spec.dataset);
        spec.validate(&mut c);
        if let Some((other, _)) = train.iter().find(|(_, t)| t.output == spec.output) {
            c.error(
                "output",
                format!(
                    "training runs `{other}` and `{}` both write to `{}`",
                    e.key, spec.output
                ),
            );
        }
        if ctx.diags.len() == before {
            train.insert(e.key.clone(), spec);
        }
    });

    if root.get("analyses").is_none() && root.get("train").is_none() && ctx.diags.is_empty() {
        ctx.error(&root.span, "the experiment has nothing to do: it defines no analyses and no training runs")
            .hint = Some("add an [analyses.NAME] section with a kind, a model and a dataset (`circuitry analyses` lists the kinds)".into());
    }

    let header = header?;
    Some(Fields {
        name: name?,
        description: header.description,
        seed,
        device: header.device,
        models,
        causal_models,
        datasets,
        analyses,
        train,
    })
}
