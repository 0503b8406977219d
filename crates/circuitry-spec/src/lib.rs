//! The circuitry experiment file format.
//!
//! This crate parses, validates, expands and hashes experiment files: the TOML files in which
//! researchers name models, prompt datasets, analyses, training runs and parameter sweeps. It
//! owns the format's types (serde + schemars), its error messages (with file, line, column and a
//! did-you-mean), `--set` overrides, sweep expansion, canonical hashing and the JSON Schema.
//!
//! It never loads models, reads datasets' contents, touches the file system beyond reading the
//! experiment file itself, or computes anything: the runner does that with what this crate
//! returns. It depends on no other circuitry crate but `circuitry-vocab`, whose shared types it
//! re-exports (nor on burn or arrow).
//!
//! # Use
//!
//! ```
//! use circuitry_spec::Experiment;
//!
//! let text = r#"
//! [models.toy]
//! path = "models/attn-only-2l"
//!
//! [datasets.rep]
//! generator = "repeated_tokens"
//! n = 64
//! length = 20
//!
//! [analyses.heads]
//! kind = "head_detector"
//! model = "toy"
//! dataset = "rep"
//!
//! [sweep]
//! "datasets.rep.length" = [10, 20]
//! "#;
//! let experiment = Experiment::from_str(text, "experiments/demo.toml").unwrap();
//! assert_eq!(experiment.name, "demo");
//! let runs = experiment.expand();
//! assert_eq!(runs.len(), 2);
//! assert_eq!(runs[1].columns[0].0, "length");
//! let hashes = runs[1].experiment.hashes();
//! assert_eq!(hashes.analyses["heads"].len(), 64);
//! ```
//!
//! Errors render like rustc's:
//!
//! ```
//! let err = circuitry_spec::Experiment::from_str(
//!     "[models.toy]\npath = \"m\"\n[datasets.d]\nprompts = [\"hi\"]\n\
//!      [analyses.a]\nkind = \"next_token\"\nmodel = \"tyo\"\ndataset = \"d\"\n",
//!     "demo.toml",
//! )
//! .unwrap_err();
//! assert!(err.to_string().contains("did you mean `toy`?"));
//! assert_eq!(err.first().line_column(), Some((7, 9)));
//! ```
//!
//! # The format
//!
//! Top-level keys: `name` (default: the file stem; outputs go to `<out>/<name>/`),
//! `description`, `seed` (default 0), `device` (flex, tch, cuda, cuda:N, wgpu, ndarray), and the
//! sections `[models.NAME]` ([`ModelSpec`]), `[causal_models.NAME]` ([`CausalModelSpec`]),
//! `[datasets.NAME]` ([`DatasetSpec`]),
//! `[analyses.NAME]` ([`AnalysisSpec`], one params struct per kind), `[train.NAME]`
//! ([`TrainSpec`]) and `[sweep]` ([`Sweep`]). Unknown keys are errors everywhere. Every key is
//! documented on its type, and the same doc comments make the JSON Schema ([`json_schema`]) and
//! the `circuitry analyses` listing ([`analysis_kinds`]).
//!
//! # Adding an analysis kind
//!
//! One params struct in `src/analysis/<kind>.rs` and one line in the kind list,
//! [`for_each_analysis_kind!`] in `src/analysis/mod.rs`; see that module's docs. Then regenerate
//! the schema with `CIRCUITRY_BLESS=1 cargo test -p circuitry-spec`.

mod analysis;
mod causal_model;
mod dataset;
mod dataset_lower;
mod de;
mod device;
mod diagnostic;
mod experiment;
mod hash;
mod listing;
mod model;
mod node;
mod overrides;
mod paths;
mod refs;
mod schema;
mod schema_branch;
mod span;
mod spec_struct;
mod sweep;
mod train;
mod validate;

pub use analysis::{
    AblationMethodSpec, AblationParams, AblationUnits, ActivationPatchingParams,
    AttributionPatchingParams, DEFAULT_IG_STEPS, DEFAULT_TOP_N, EapMethod,
    EdgeAttributionPatchingParams, PathPatchingParams, PositionSweepSpec, ReceiverRef, Receivers,
    SenderRef, Senders,
};
pub use analysis::{
    AnalysisParams, AnalysisSpec, AttentionPatternParams, Detector, DirectLogitAttributionParams,
    DlaComponent, ErrorMeasure, HeadDetectorParams, LogitLensParams, NextTokenParams, kind_names,
};
pub use analysis::{
    Composition, CompositionScoresParams, IclHeadsParams, IclScoreParams, InductionScoresParams,
    OvCircuitParams, QkCircuitParams, TokensParams,
};
pub use analysis::{DasInit, DasParams, InterchangeInterventionParams, ProbeMethod, ProbeParams};
pub use analysis::{
    EffectiveDimensionParams, NeuronLogitEffectParams, NeuronStatsParams, NeuronTopContextsParams,
    SubspaceOverlapParams,
};
pub use causal_model::{CausalModelSpec, OUTPUT_VARIABLE};
/// The types the file shares with the engines (see `circuitry-vocab`).
pub use circuitry_vocab::checkpoints;
pub use circuitry_vocab::expr;
pub use circuitry_vocab::{
    Direction, FeatureSite, FileFormat, HeadInput, HeadSweep, IoiCorruption, MeanOver, PaddingSide,
    Processing, Site, WeightDtype,
};
pub use dataset::{
    AnswerToken, CAUSAL_OUTPUT_ANSWER, COUNTERFACTUAL_ANSWERS, CausalModelDataset,
    CounterfactualsDataset, DatasetSource, DatasetSpec, FileDataset, GENERATORS, IOI_ANSWERS,
    IOI_POSITIONS, InlinePrompts, InlineTokens, Ioi, PromptSpec, RepeatedTokensSpec, ResolvedBase,
    TextDataset, TokenRow,
};
pub use device::{DEVICE_NAMES, Device};
pub use diagnostic::{Diagnostic, Location, SourceName, SpecError};
pub use experiment::{Experiment, ExperimentFile, Variant};
pub use hash::{HASH_VERSION, Hashes, canonical_json};
pub use listing::{KindInfo, ParamInfo, analysis_kind, analysis_kinds, dataset_sources};
pub use model::{ModelLocation, ModelSpec};
pub use paths::resolve_path;
pub use refs::{
    Measure, MetricSpec, PositionSpec, PositionsSpec, Target, TokenSelection, TokenSpec,
};
pub use schema::{NAME_PATTERN, json_schema};
pub use sweep::{MAX_VARIANTS, RESERVED_COLUMNS, Sweep, SweepAxis};
pub use train::{ActFn, Decay, Repeats, TrainRows, TrainSpec};
