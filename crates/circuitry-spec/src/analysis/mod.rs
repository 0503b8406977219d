//! `[analyses.NAME]`: what to compute. Every analysis has a `kind`, the `model` and `dataset` it
//! reads and a `batch_size`; the rest are the kind's own parameters, one struct per kind, each in
//! its own file of this module.
//!
//! # Adding a kind
//!
//! 1. Write `src/analysis/my_kind.rs` declaring `analysis_params! { pub struct MyKindParams {
//!    .. } }` (which derives what every kind needs), with a doc comment whose first line is the
//!    one-line description, and a doc comment on every field (they become the JSON Schema and
//!    the `circuitry analyses` listing). An `Option` field is an optional key; give every other
//!    optional field a `#[serde(default ...)]`.
//! 2. `impl AnalysisKind for MyKindParams` with the checks the types cannot express (ranges,
//!    duplicates, references to the dataset's positions and answers via [`Checker`]).
//! 3. Add one line to [`for_each_analysis_kind!`]: `my_kind => MyKind(MyKindParams),`. The
//!    module name is the `kind` written in experiment files. Then write the kind's analysis
//!    (`circuitry_circuits::analyses::my_kind::MyKind`, see ARCHITECTURE.md) and regenerate
//!    the schema: `CIRCUITRY_BLESS=1 cargo test -p circuitry-spec`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize, Serializer};

use circuitry_vocab::Direction;

use crate::de::{DeError, from_entries, from_node};
use crate::diagnostic::{did_you_mean, list};
use crate::node::{Entry, Node, join_path};
use crate::refs::PositionSpec;
use crate::validate::{Checker, Ctx};

/// The checks of one analysis kind beyond what its types enforce.
pub(crate) trait AnalysisKind {
    /// Reports problems through `c`; keys are relative to the analysis table. `c.dataset` is the
    /// analysis's dataset when it is defined and valid.
    fn validate(&self, c: &mut Checker<'_, '_>);

    /// Whether the kind reads prompts (false for kinds that read only the model's weights;
    /// those take no `dataset`).
    fn reads_dataset(&self) -> bool {
        true
    }

    /// Fills in defaults that depend on the experiment: `derived_seed` is derived from the
    /// experiment's `seed` and the analysis's name.
    fn resolve(&mut self, _derived_seed: u64) {}
}

/// Declares a kind's params struct with the derives and `deny_unknown_fields` every kind has;
/// its `Option` fields are optional keys ([`spec_struct!`](crate::spec_struct::spec_struct)).
/// Defined before the kinds' modules, so they name it without a `use`.
macro_rules! analysis_params {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $crate::spec_struct::spec_struct! {
            $(#[$attr])*
            #[derive(
                Clone, Debug, PartialEq,
                ::serde::Serialize, ::serde::Deserialize, ::schemars::JsonSchema,
            )]
            #[serde(deny_unknown_fields)]
            pub struct $name { $($fields)* }
        }
    };
}

/// One registered kind: its name, how to parse its parameters, and their schema.
pub(crate) struct KindEntry {
    pub name: &'static str,
    pub parse: fn(&Node, &str) -> Result<AnalysisParams, DeError>,
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

macro_rules! analysis_kinds {
    ($( $module:ident => $variant:ident($params:ident) ),+ $(,)?) => {
        $( mod $module; pub use self::$module::$params; )+

        /// The kind-specific parameters of an analysis; the variant is its `kind`.
        #[derive(Clone, Debug, PartialEq)]
        pub enum AnalysisParams {
            $( #[doc = concat!("`kind = \"", stringify!($module), "\"`")] $variant($params), )+
        }

        impl AnalysisParams {
            /// The `kind` as written in experiment files.
            pub fn kind(&self) -> &'static str {
                match self { $( AnalysisParams::$variant(_) => stringify!($module), )+ }
            }

            fn validate(&self, c: &mut Checker<'_, '_>) {
                match self { $( AnalysisParams::$variant(p) => AnalysisKind::validate(p, c), )+ }
            }

            /// Whether the kind reads prompts (weight-only kinds take no `dataset`).
            pub fn reads_dataset(&self) -> bool {
                match self { $( AnalysisParams::$variant(p) => AnalysisKind::reads_dataset(p), )+ }
            }

            fn resolve(&mut self, derived_seed: u64) {
                match self { $( AnalysisParams::$variant(p) => AnalysisKind::resolve(p, derived_seed), )+ }
            }

            fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self { $( AnalysisParams::$variant(p) => serde_json::to_value(p), )+ }
            }
        }

        /// Every kind, in listing order.
        pub(crate) const KINDS: &[KindEntry] = &[
            $( KindEntry {
                name: stringify!($module),
                parse: |node, path| from_node::<$params>(node, path).map(AnalysisParams::$variant),
                schema: <$params as JsonSchema>::json_schema,
            }, )+
        ];
    };
}

/// The list of analysis kinds, the one place a kind is registered: `module => Variant(Params)`,
/// where `module` is the `kind` written in experiment files, `Params` its parameters (in
/// `src/analysis/<module>.rs` of this crate) and `Variant` its [`AnalysisParams`] variant (and the
/// type implementing it in `circuitry_circuits::analyses::<module>`). Everything that enumerates
/// kinds is generated from it: `for_each_analysis_kind!(m)` expands to `m! { <the list> }`.
#[macro_export]
macro_rules! for_each_analysis_kind {
    ($callback:ident) => {
        $callback! {
            attention_pattern => AttentionPattern(AttentionPatternParams),
            logit_lens => LogitLens(LogitLensParams),
            direct_logit_attribution => DirectLogitAttribution(DirectLogitAttributionParams),
            head_detector => HeadDetector(HeadDetectorParams),
            next_token => NextToken(NextTokenParams),
            ov_circuit => OvCircuit(OvCircuitParams),
            qk_circuit => QkCircuit(QkCircuitParams),
            composition_scores => CompositionScores(CompositionScoresParams),
            induction_scores => InductionScores(InductionScoresParams),
            icl_score => IclScore(IclScoreParams),
            icl_heads => IclHeads(IclHeadsParams),
            tokens => Tokens(TokensParams),
            activation_patching => ActivationPatching(ActivationPatchingParams),
            ablation => Ablation(AblationParams),
            path_patching => PathPatching(PathPatchingParams),
            attribution_patching => AttributionPatching(AttributionPatchingParams),
            edge_attribution_patching => EdgeAttributionPatching(EdgeAttributionPatchingParams),
            neuron_top_contexts => NeuronTopContexts(NeuronTopContextsParams),
            neuron_stats => NeuronStats(NeuronStatsParams),
            neuron_logit_effect => NeuronLogitEffect(NeuronLogitEffectParams),
            effective_dimension => EffectiveDimension(EffectiveDimensionParams),
            subspace_overlap => SubspaceOverlap(SubspaceOverlapParams),
            probe => Probe(ProbeParams),
            interchange_intervention => InterchangeIntervention(InterchangeInterventionParams),
            das => Das(DasParams),
        }
    };
}

crate::for_each_analysis_kind!(analysis_kinds);

pub use self::ablation::{AblationMethodSpec, AblationUnits};
pub use self::activation_patching::PositionSweepSpec;
pub use self::composition_scores::Composition;
pub use self::das::DasInit;
pub use self::direct_logit_attribution::DlaComponent;
pub use self::edge_attribution_patching::{DEFAULT_IG_STEPS, DEFAULT_TOP_N, EapMethod};
pub use self::head_detector::{Detector, ErrorMeasure};
pub use self::path_patching::{ReceiverRef, Receivers, SenderRef, Senders};
pub use self::probe::ProbeMethod;

/// The names of every analysis kind.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

/// An analysis: which model and dataset it reads, in what batches, and its kind's parameters.
/// Its output table is `<out>/<experiment>/<analysis name>.parquet`.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisSpec {
    /// The `[models.*]` entry it analyses.
    pub model: String,
    /// The `[datasets.*]` entry it reads (`None` for kinds that read only weights).
    pub dataset: Option<String>,
    /// Prompts per forward pass.
    pub batch_size: u32,
    /// The kind and its parameters.
    pub params: AnalysisParams,
}

impl AnalysisSpec {
    /// The `kind` as written in experiment files.
    pub fn kind(&self) -> &'static str {
        self.params.kind()
    }
}

impl Serialize for AnalysisSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut map = serde_json::Map::new();
        map.insert("kind".into(), self.kind().into());
        map.insert("model".into(), self.model.clone().into());
        if let Some(d) = &self.dataset {
            map.insert("dataset".into(), d.clone().into());
        }
        map.insert("batch_size".into(), self.batch_size.into());
        if let serde_json::Value::Object(params) =
            self.params.to_json().map_err(S::Error::custom)?
        {
            map.extend(params);
        }
        map.serialize(s)
    }
}

/// Keys every analysis has, whatever its kind.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnalysisCommon {
    /// The model to analyse: the name of a `[models.*]` entry.
    pub model: String,
    /// The prompts: the name of a `[datasets.*]` entry (required by every kind that reads
    /// prompts; absent for kinds that read only the model's weights).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Prompts per forward pass (> 0).
    #[schemars(range(min = 1))]
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
}

// Serde defaults (`#[serde(default = "...")]`) that several kinds share.
fn yes() -> bool {
    true
}

fn last() -> PositionSpec {
    PositionSpec::Last
}

fn denoising() -> Direction {
    Direction::Denoising
}

fn noising() -> Direction {
    Direction::Noising
}

fn default_batch_size() -> u32 {
    8
}

const COMMON_KEYS: &[&str] = &["kind", "model", "dataset", "batch_size"];

/// The schema of an analysis table: one branch per kind, each with the common keys.
pub(crate) fn analysis_schema(g: &mut SchemaGenerator) -> Schema {
    let common = AnalysisCommon::json_schema(g);
    let branches: Vec<Schema> = KINDS
        .iter()
        .map(|k| {
            let kind = json_schema!({
                "const": k.name,
                "description": "The analysis kind; `circuitry analyses` lists every kind and its parameters."
            });
            crate::schema_branch::merge_branch((k.schema)(g), &[("kind", kind)], &common, k.name)
        })
        .collect();
    json_schema!({
        "description": format!("An analysis: `kind` ({}), the `model` and `dataset` it reads, `batch_size`, and the kind's own parameters. Its table is written to <out>/<experiment>/<analysis name>.parquet.", kind_names().join(", ")),
        "oneOf": branches
    })
}

/// Builds an analysis from its table (without cross-references, see [`validate`]);
/// `experiment_seed` feeds the defaults derived from it.
pub(crate) fn lower(
    name: &str,
    node: &Node,
    experiment_seed: u64,
    ctx: &mut Ctx<'_>,
) -> Option<AnalysisSpec> {
    let path = join_path("analyses", name);
    let entries = ctx.section_entries(node, &path, format!("write it as an [{path}] section"))?;
    let names = kind_names();
    let Some(kind_entry) = entries.iter().find(|e| e.key == "kind") else {
        ctx.error(
            &node.span,
            format!("missing required key `kind` in `{path}`"),
        )
        .hint = Some(format!("kinds: {}", list(&names)));
        return None;
    };
    let Some(kind) = kind_entry.node.as_str() else {
        ctx.error(
            &kind_entry.node.span,
            format!(
                "`{path}.kind` must be a string, found {}",
                kind_entry.node.value.a_type_name()
            ),
        )
        .hint = Some(format!("kinds: {}", list(&names)));
        return None;
    };
    let Some(registered) = KINDS.iter().find(|k| k.name == kind) else {
        let d = ctx.error(
            &kind_entry.node.span,
            format!("unknown analysis kind `{kind}`"),
        );
        d.hint = Some(match did_you_mean(kind, &names) {
            Some(s) => format!("did you mean `{s}`? kinds: {}", list(&names)),
            None => format!("kinds: {}", list(&names)),
        });
        return None;
    };
    let (common, rest): (Vec<Entry>, Vec<Entry>) = entries
        .iter()
        .filter(|e| e.key != "kind")
        .cloned()
        .partition(|e| COMMON_KEYS.contains(&e.key.as_str()));
    let common = from_entries::<AnalysisCommon>(common, &node.span, &path)
        .map_err(|e| ctx.de_error(e, &[]))
        .ok();
    let params = (registered.parse)(&Node::table(rest, node.span.clone()), &path)
        .map_err(|e| ctx.de_error(e, COMMON_KEYS))
        .ok();
    let (common, mut params) = (common?, params?);
    params.resolve(crate::dataset::derive_seed(
        experiment_seed,
        "analyses",
        name,
    ));
    match (&common.dataset, params.reads_dataset()) {
        (None, true) => {
            ctx.error(
                &node.span,
                format!("missing required key `dataset` in `{path}`"),
            )
            .hint = Some(format!(
                "`{kind}` reads prompts: name a [datasets.*] entry, e.g. dataset = \"prompts\""
            ));
            return None;
        }
        (Some(_), false) => {
            let span = entries
                .iter()
                .find(|e| e.key == "dataset")
                .map_or(&node.span, |e| &e.key_span);
            ctx.error(
                span,
                format!("`{kind}` reads only the model's weights and takes no `dataset`"),
            )
            .hint = Some("remove the `dataset` key".into());
            return None;
        }
        _ => {}
    }
    Some(AnalysisSpec {
        model: common.model,
        dataset: common.dataset,
        batch_size: common.batch_size,
        params,
    })
}

/// Checks an analysis against the experiment: its model and dataset exist, its parameters are in
/// range and refer to positions and answers its dataset has. `datasets` holds the valid datasets.
pub(crate) fn validate(
    spec: &AnalysisSpec,
    c: &mut Checker<'_, '_>,
    model_names: &[&str],
    dataset_names: &[&str],
) {
    check_reference(c, "model", &spec.model, model_names);
    if let Some(dataset) = &spec.dataset {
        check_reference(c, "dataset", dataset, dataset_names);
    }
    c.positive("batch_size", spec.batch_size);
    c.dataset_names = dataset_names.iter().map(|d| d.to_string()).collect();
    spec.params.validate(c);
}

/// `key` names an entry of `section`; reports a did-you-mean otherwise.
pub(crate) fn check_reference(c: &mut Checker<'_, '_>, key: &str, value: &str, defined: &[&str]) {
    if defined.contains(&value) {
        return;
    }
    let section = if key == "model" { "models" } else { "datasets" };
    let d = c.error(key, format!("no {key} `{value}`"));
    d.hint = Some(match did_you_mean(value, defined) {
        Some(s) => format!("did you mean `{s}`? defined {section}: {}", list(defined)),
        None if defined.is_empty() => format!("define it in a [{section}.{value}] section"),
        None => format!("defined {section}: {}", list(defined)),
    });
}
