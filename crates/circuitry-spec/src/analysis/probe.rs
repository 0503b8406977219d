//! `kind = "probe"`: linear probes for a label of each prompt at chosen sites.

use circuitry_vocab::FeatureSite;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnalysisKind, yes};
use crate::refs::PositionSpec;
use crate::validate::Checker;

/// How a probe is fitted, and what it predicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeMethod {
    /// L2-regularised logistic regression (binary: one sigmoid vector; more classes: softmax),
    /// minimising `sum of log-losses + alpha / 2 * |W|^2` (intercepts unpenalised; scikit-learn's
    /// `LogisticRegression(C = 1 / alpha)`), by L-BFGS. Scored by accuracy. The default.
    #[default]
    Logistic,
    /// Ridge regression on numeric labels, minimising `|y - Xw - b|^2 + alpha * |w|^2` in closed
    /// form (scikit-learn's `Ridge(alpha)`). Scored by R^2.
    Ridge,
}

impl ProbeMethod {
    pub fn name(self) -> &'static str {
        match self {
            ProbeMethod::Logistic => "logistic",
            ProbeMethod::Ridge => "ridge",
        }
    }
}

analysis_params! {
    /// Linear probes: how well a linear map of the activation at each site (layer x position)
    /// decodes a label of the prompt, on held-out prompts, and its selectivity against a control
    /// task (Hewitt and Liang, 2019).
    ///
    /// The label is a prompt field (`label`): a `causal_model` dataset carries every variable of
    /// its causal model, IOI prompts `IO`, `S`, `template`..., files their field columns. Prompts
    /// are split into train and test sets with `seed` (`test_fraction` held out); one probe is
    /// fitted per site on the train set and scored on both. The control task gives each token type
    /// at the probed position a label drawn (seeded by the token id) from the labels' empirical
    /// distribution, so it can be learnt only by memorising token identity; selectivity is the
    /// test score minus the control's. Columns: site, layer, position, position_name, method,
    /// n_train, n_test, n_classes, train_score, test_score, control_score, selectivity, majority
    /// (the test accuracy of always predicting the most frequent train label; NaN for ridge).
    pub struct ProbeParams {
        /// The prompt field holding each prompt's label.
        pub label: String,
        /// "logistic" (classes, accuracy; the default) or "ridge" (numbers, R^2).
        #[serde(default)]
        pub method: ProbeMethod,
        /// The activation probed: "resid_post" (the default), "resid_pre", "resid_mid", "attn_out",
        /// "mlp_out", "mlp_pre" or "mlp_post".
        #[serde(default = "resid_post")]
        pub site: FeatureSite,
        /// Layers to probe (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Positions to probe, each separately (named, "first", "last" or token indices; negative
        /// counts from the end). Default: ["last"].
        #[serde(default = "last_only")]
        pub positions: Vec<PositionSpec>,
        /// L2 regularisation strength (> 0).
        #[serde(default = "one")]
        pub alpha: f64,
        /// Fraction of prompts held out for testing (between 0 and 1, exclusive).
        #[serde(default = "quarter")]
        pub test_fraction: f64,
        /// Also fit the control task and report selectivity.
        #[serde(default = "yes")]
        pub control: bool,
        /// Seed of the train/test split and the control labels. Default: derived from the
        /// experiment's `seed` and the analysis's name (after loading, always set).
        pub seed: Option<u64>,
    }
}

fn resid_post() -> FeatureSite {
    FeatureSite::ResidPost
}

fn last_only() -> Vec<PositionSpec> {
    vec![PositionSpec::Last]
}

fn one() -> f64 {
    1.0
}

pub(super) fn quarter() -> f64 {
    0.25
}

/// `test_fraction` is strictly between 0 and 1.
pub(super) fn check_test_fraction(c: &mut Checker<'_, '_>, fraction: f64) {
    if !(fraction > 0.0 && fraction < 1.0) {
        c.error(
            "test_fraction",
            format!("`test_fraction = {fraction}` must be between 0 and 1 (exclusive)"),
        )
        .hint = Some("hold out a share of the prompts, e.g. 0.25".into());
    }
}

impl AnalysisKind for ProbeParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        if self.positions.is_empty() {
            c.error("positions", "`positions` lists no position").hint =
                Some("probe at least one position, e.g. [\"last\"]".into());
        }
        for (i, p) in self.positions.iter().enumerate() {
            c.position(&format!("positions.{i}"), p);
        }
        c.distinct("positions", &self.positions);
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            c.error(
                "alpha",
                format!("`alpha = {}` must be positive", self.alpha),
            )
            .hint = Some("regularise the probe, e.g. alpha = 1.0".into());
        }
        check_test_fraction(c, self.test_fraction);
        if self.label.trim().is_empty() {
            c.error("label", "`label` names no field");
        }
    }

    fn resolve(&mut self, derived_seed: u64) {
        self.seed.get_or_insert(derived_seed);
    }
}
