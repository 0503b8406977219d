//! `kind = "ablation"`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use circuitry_vocab::MeanOver;

use super::activation_patching::{PositionSweepSpec, check_metric, check_patch_positions};
use super::{AnalysisKind, last};
use crate::refs::{MetricSpec, PositionSpec};
use crate::validate::Checker;

analysis_params! {
    /// The metric with each component knocked out (replaced by zero, by its mean over a reference
    /// dataset, or by its value on another prompt) or steered (scaled, or set to a value).
    ///
    /// Sweeps the selected units (every head, every MLP, every neuron or the residual stream of
    /// every selected layer), each ablated alone, at all positions together or one position at a
    /// time, and measures the metric of the ablated clean run against the unablated one. Mean
    /// ablation first averages the activations over the `reference` dataset (a pass of its own
    /// before the main one); resample ablation takes each prompt's activations from a donor prompt of
    /// the same dataset (a seeded random permutation without fixed points). Steering scales each
    /// unit's activation by `factor` or sets it to `value` (e.g. a neuron clamped on). Needs no
    /// corrupt prompts. Columns: prompt, unit, component, layer, head, neuron, position, position_name,
    /// method, metric, metric_baseline, delta.
    pub struct AblationParams {
        /// What is ablated: "heads" (each head's `attn.hook_z`), "mlps" (each MLP's output),
        /// "neurons" (each neuron of `mlp.hook_post`) or "residual" (the residual stream before each
        /// block, `hook_resid_pre`).
        #[serde(default = "heads")]
        pub units: AblationUnits,
        /// How the activation is replaced: "zero", "mean" (the mean over the `reference` dataset),
        /// "resample" (the activation of another prompt of the dataset), or, to steer, "scale"
        /// (times `factor`) or "set" (to `value`, every feature of the unit).
        #[serde(default = "zero")]
        pub method: AblationMethodSpec,
        /// For `method = "scale"`: the factor the activation is multiplied by (0 is zero
        /// ablation, 2 doubles it, -1 flips its sign).
        pub factor: Option<f64>,
        /// For `method = "set"`: the value every feature of the unit is set to (e.g. a neuron
        /// clamped to 10).
        pub value: Option<f64>,
        /// For `method = "mean"`: the `[datasets.*]` entry whose mean activations replace the
        /// ablated ones. Default: the analysis's own dataset.
        pub reference: Option<String>,
        /// For `method = "mean"`: "prompts" (the mean over prompts at each token index, for
        /// templated datasets; positions beyond the longest reference prompt use the overall mean)
        /// or "prompts_and_positions" (one mean over every prompt and position).
        #[serde(default)]
        pub mean_over: MeanOver,
        /// Layers whose units are ablated (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// For `units = "heads"`: heads ablated in every selected layer (0-based). Default: every
        /// head.
        pub heads: Option<Vec<u32>>,
        /// For `units = "neurons"`: neurons ablated in every selected layer (0-based). Default:
        /// every neuron (one forward pass per neuron: name a few on large models).
        pub neurons: Option<Vec<u32>>,
        /// Which positions one ablation covers: "all" (every position together, the default),
        /// "each" (one ablation per token index) or a list of positions, each ablated separately.
        #[serde(default)]
        pub positions: PositionSweepSpec,
        /// What is measured, e.g. { logit_diff = ["IO", "S"] } or "loss". Ablation has no corrupt
        /// run to normalize against, so `normalize` must be false.
        pub metric: MetricSpec,
        /// The position whose next-token prediction the metric reads. Ignored by the loss metric.
        #[serde(default = "last")]
        pub position: PositionSpec,
        /// For `method = "resample"`: the seed of the donor permutation. Default: derived from the
        /// experiment's `seed` and the analysis's name.
        pub seed: Option<u64>,
    }
}

fn heads() -> AblationUnits {
    AblationUnits::Heads
}

fn zero() -> AblationMethodSpec {
    AblationMethodSpec::Zero
}

/// What an ablation sweep knocks out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AblationUnits {
    /// Every attention head (`attn.hook_z` of one head).
    Heads,
    /// Every MLP layer (`hook_mlp_out`).
    Mlps,
    /// Every MLP neuron (one feature of `mlp.hook_post`).
    Neurons,
    /// The residual stream before each block (`hook_resid_pre`).
    Residual,
}

impl fmt::Display for AblationUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AblationUnits::Heads => "heads",
            AblationUnits::Mlps => "mlps",
            AblationUnits::Neurons => "neurons",
            AblationUnits::Residual => "residual",
        })
    }
}

/// How ablated activations are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", rename = "AblationMethod")]
// The method's name as written; `circuitry_circuits::interventions::AblationMethod` carries the
// resolved means or donor seed.
pub enum AblationMethodSpec {
    /// By zeros.
    Zero,
    /// By the mean activation over the reference dataset.
    Mean,
    /// By the activation of a donor prompt of the same dataset.
    Resample,
    /// By the activation times `factor` (steering).
    Scale,
    /// By `value` (steering).
    Set,
}

impl fmt::Display for AblationMethodSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AblationMethodSpec::Zero => "zero",
            AblationMethodSpec::Mean => "mean",
            AblationMethodSpec::Resample => "resample",
            AblationMethodSpec::Scale => "scale",
            AblationMethodSpec::Set => "set",
        })
    }
}

impl AnalysisKind for AblationParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
        c.filter("neurons", self.neurons.as_deref());
        for (key, given, units) in [
            ("heads", self.heads.is_some(), AblationUnits::Heads),
            ("neurons", self.neurons.is_some(), AblationUnits::Neurons),
        ] {
            if given && self.units != units {
                c.error(
                    key,
                    format!("`{key}` selects {key}, but `units` is \"{}\"", self.units),
                )
                .hint = Some(format!("set units = \"{units}\", or remove `{key}`"));
            }
        }
        if let Some(reference) = &self.reference {
            c.dataset_reference("reference", reference);
        }
        if self.method != AblationMethodSpec::Resample && self.seed.is_some() {
            c.error(
                "seed",
                format!(
                    "`seed` picks the donors of resample ablation, but `method` is \"{}\"",
                    self.method
                ),
            )
            .hint = Some("set method = \"resample\", or remove `seed`".into());
        }
        if self.method != AblationMethodSpec::Mean {
            if self.reference.is_some() {
                c.error(
                    "reference",
                    format!(
                        "`reference` is the dataset a mean ablation averages over, but `method` is \"{}\"",
                        self.method
                    ),
                )
                .hint = Some("set method = \"mean\", or remove `reference`".into());
            }
            if self.mean_over != MeanOver::default() {
                c.error(
                    "mean_over",
                    format!(
                        "`mean_over` applies to mean ablation, but `method` is \"{}\"",
                        self.method
                    ),
                )
                .hint = Some("set method = \"mean\", or remove `mean_over`".into());
            }
        }
        for (key, given, method, example) in [
            (
                "factor",
                self.factor,
                AblationMethodSpec::Scale,
                "factor = 2.0",
            ),
            ("value", self.value, AblationMethodSpec::Set, "value = 10.0"),
        ] {
            match given {
                Some(_) if self.method != method => {
                    c.error(
                        key,
                        format!(
                            "`{key}` applies to method \"{method}\", but `method` is \"{}\"",
                            self.method
                        ),
                    )
                    .hint = Some(format!("set method = \"{method}\", or remove `{key}`"));
                }
                Some(x) if !x.is_finite() => {
                    c.error(key, format!("`{key}` must be a finite number"));
                }
                None if self.method == method => {
                    c.error("method", format!("method \"{method}\" needs `{key}`"))
                        .hint = Some(format!("add e.g. {example}"));
                }
                _ => {}
            }
        }
        check_patch_positions(c, "positions", &self.positions);
        check_metric(c, &self.metric, &self.position);
        if self.metric.normalize {
            c.error(
                "metric.normalize",
                "ablation has no corrupt run to normalize against",
            )
            .hint = Some(
                "remove `normalize`: the table reports metric, metric_baseline and delta".into(),
            );
        }
    }

    fn resolve(&mut self, derived_seed: u64) {
        if self.method == AblationMethodSpec::Resample {
            self.seed.get_or_insert(derived_seed);
        }
    }
}
