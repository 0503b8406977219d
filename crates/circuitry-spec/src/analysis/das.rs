//! `kind = "das"`: distributed alignment search.

use circuitry_vocab::Site;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AnalysisKind;
use super::interchange_intervention::{require_pairs, resid_post};
use super::probe::{check_test_fraction, quarter};
use crate::refs::PositionSpec;
use crate::validate::Checker;

/// Where DAS's subspace starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DasInit {
    /// The k directions along which interchanging lowers the training loss fastest at the
    /// start (to second order in W: the eigenvectors of the symmetrised sum of
    /// `(h_source - h_base) dL/dh^T` over the training pairs with the most negative
    /// eigenvalues). The default: a random start is nearly orthogonal to the variable's
    /// direction, where the loss is flat, and training can stall there.
    #[default]
    Gradient,
    /// A seeded uniformly random orthonormal basis (as pyvene starts).
    Random,
}

analysis_params! {
    /// Distributed alignment search (Geiger, Wu et al., 2023): at each site (layer x position of
    /// the residual stream), learn a `k`-dimensional subspace (orthonormal basis W, `d_model x k`)
    /// such that writing the source's coordinates in it into the base run,
    /// `h' = h_base + W W^T (h_source - h_base)`, makes the model give the causal model's
    /// counterfactual output; report the held-out interchange intervention accuracy.
    ///
    /// Reads a `counterfactuals` dataset, split into train and test pairs with `seed`. W starts
    /// as `init` says and is trained by Adam on the cross-entropy of the counterfactual answer at
    /// `position` (gradients through the model's later blocks, which stay frozen),
    /// re-orthonormalised after every step; the start is kept if training ends with a higher
    /// training loss. Baselines on the same test pairs: a seeded random
    /// orthonormal basis of the same size (`iia_random`; the start itself with init = "random")
    /// and the full interchange of the whole residual vector (`iia_full`). Columns: site, layer, position, position_name, k, n_train, n_test,
    /// iia_train, iia_test, iia_random, iia_full, task_accuracy (top1(base) on the unintervened
    /// test bases), loss_initial, loss_final (the training pairs' cross-entropy at the start and
    /// for the subspace reported: the trained one, or the start where that fits them better).
    pub struct DasParams {
        /// The residual stream read and written: "resid_post" (the default) or "resid_pre".
        #[serde(default = "resid_post")]
        pub site: Site,
        /// Layers to search (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Positions, each searched separately (named, "first", "last" or token indices).
        /// Default: ["last"].
        #[serde(default = "last_only")]
        pub positions: Vec<PositionSpec>,
        /// Dimension of the learnt subspace (>= 1, at most d_model).
        #[serde(default = "one")]
        pub k: u32,
        /// Where W starts: "gradient" (the default: the directions along which interchanging
        /// lowers the loss fastest) or "random" (a seeded random basis).
        #[serde(default)]
        pub init: DasInit,
        /// Optimisation steps (> 0).
        #[serde(default = "steps")]
        pub steps: u32,
        /// Training pairs per step (> 0; all of them when there are fewer).
        #[serde(default = "pairs_per_step")]
        pub pairs_per_step: u32,
        /// Adam's learning rate (> 0).
        #[serde(default = "lr")]
        pub lr: f64,
        /// Fraction of pairs held out for testing (between 0 and 1, exclusive).
        #[serde(default = "quarter")]
        pub test_fraction: f64,
        /// The position whose next-token prediction is the model's output. Default: "last".
        #[serde(default = "super::last")]
        pub position: PositionSpec,
        /// Seed of the split, the initial basis and the order of training pairs. Default: derived
        /// from the experiment's `seed` and the analysis's name (after loading, always set).
        pub seed: Option<u64>,
    }
}

fn last_only() -> Vec<PositionSpec> {
    vec![PositionSpec::Last]
}

fn one() -> u32 {
    1
}

fn steps() -> u32 {
    200
}

fn pairs_per_step() -> u32 {
    64
}

fn lr() -> f64 {
    0.01
}

impl AnalysisKind for DasParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        if !matches!(self.site, Site::ResidPre | Site::ResidPost) {
            c.error(
                "site",
                format!(
                    "`das` searches the residual stream between blocks, not `{}`",
                    self.site
                ),
            )
            .hint = Some("use site = \"resid_post\" or \"resid_pre\"".into());
        }
        c.filter("layers", self.layers.as_deref());
        if self.positions.is_empty() {
            c.error("positions", "`positions` lists no position");
        }
        for (i, p) in self.positions.iter().enumerate() {
            c.position(&format!("positions.{i}"), p);
        }
        c.distinct("positions", &self.positions);
        c.positive("k", self.k);
        c.positive("steps", self.steps);
        c.positive("pairs_per_step", self.pairs_per_step);
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            c.error("lr", format!("`lr = {}` must be positive", self.lr));
        }
        check_test_fraction(c, self.test_fraction);
        c.position("position", &self.position);
        require_pairs(c, "das");
    }

    fn resolve(&mut self, derived_seed: u64) {
        self.seed.get_or_insert(derived_seed);
    }
}
