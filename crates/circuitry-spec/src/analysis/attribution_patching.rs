//! `kind = "attribution_patching"`.

use super::{AnalysisKind, denoising, last, yes};
use circuitry_vocab::{Direction, Site};

use super::activation_patching::{check_metric, require_corrupt};
use crate::refs::{MetricSpec, PositionSpec};
use crate::validate::Checker;

analysis_params! {
    /// Attribution patching (Nanda 2023): the first-order estimate of activation patching at every
    /// site, layer, head and position from one forward and one backward pass.
    ///
    /// `attribution = (a_source - a_dest) · dmetric/da` at the destination run estimates how much
    /// patching the activation from the source run would change the metric. Denoising (the default)
    /// takes gradients on the corrupt run and estimates patching clean activations into it; noising
    /// takes them on the clean run. Needs a dataset with corrupt prompts. Columns: prompt, site,
    /// layer, head, position, direction, attribution, estimated_metric, metric_clean,
    /// metric_corrupt, normalized.
    pub struct AttributionPatchingParams {
        /// The sites attributed (see `activation_patching`'s `site`). Per-head sites get a row per
        /// head (per key/value head for `k` and `v`).
        #[serde(default = "default_sites")]
        pub sites: Vec<Site>,
        /// Layers attributed (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// One row per position (true, the default) or one row per site, layer and head summed over
        /// positions (the estimate of patching every position together).
        #[serde(default = "yes")]
        pub per_position: bool,
        /// "denoising" (estimate clean activations patched into the corrupt run, the default) or
        /// "noising" (corrupt activations into the clean run).
        #[serde(default = "denoising")]
        pub direction: Direction,
        /// What is measured, e.g. { logit_diff = ["IO", "S"] }. The table always has the raw
        /// estimate and the normalized one; `normalize` makes no difference here.
        pub metric: MetricSpec,
        /// The position whose next-token prediction the metric reads (IOI: "END"). Ignored by the
        /// loss metric.
        #[serde(default = "last")]
        pub position: PositionSpec,
    }
}

fn default_sites() -> Vec<Site> {
    vec![Site::ResidPre, Site::Z]
}

impl AnalysisKind for AttributionPatchingParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.distinct("sites", &self.sites);
        c.filter("layers", self.layers.as_deref());
        check_metric(c, &self.metric, &self.position);
        require_corrupt(c, "attribution_patching");
    }
}
