//! `kind = "activation_patching"`, and the types the causal-intervention kinds share: patching
//! sites ([`Site`]), the direction of a patch ([`Direction`]), which positions a sweep patches
//! ([`PositionSweepSpec`]) and which heads ([`HeadSweep`]).

use circuitry_vocab::{Direction, HeadSweep, Site, keyword_or_list};

use super::{AnalysisKind, denoising, last, yes};
use crate::refs::{Measure, MetricSpec, PositionSpec};
use crate::validate::Checker;

analysis_params! {
    /// Activation patching: each component's activation copied from one run of a clean/corrupt pair
    /// into the other, and the metric of the patched run.
    ///
    /// Denoising (the default) patches clean activations into the corrupt run: a component that
    /// restores the clean behaviour carries the information the corruption removed. Noising patches
    /// corrupt activations into the clean run. Sweeps every selected layer, each head separately
    /// for per-head sites (`z`, `q`, `k`, `v`, `pattern`, `result`), at all positions together or
    /// one position at a time. Patched passes reuse the unpatched prefix of the destination run and
    /// run many patches as rows of one batch. Needs a dataset with corrupt prompts (the ioi
    /// generator, `corrupt` texts, `corrupt_tokens` or a `corrupt_column`). Columns: prompt, site,
    /// layer, head, position, position_name, direction, metric, metric_clean, metric_corrupt,
    /// normalized; with `summary = true` (the default) also `<name>.summary.parquet` with the means
    /// over prompts.
    pub struct ActivationPatchingParams {
        /// The activation patched: "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"
        /// (one per layer), or per head "z", "q", "k", "v", "pattern", "result".
        #[serde(default = "resid_pre")]
        pub site: Site,
        /// Layers to patch (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// For per-head sites: "each" (every head separately, the default), "all" (all heads of a
        /// layer together) or a list of heads, each patched separately. For `k` and `v` of
        /// grouped-query models the heads are key/value heads. Sites without heads take no `heads`.
        #[serde(default)]
        pub heads: HeadSweep,
        /// Which positions one patch covers: "all" (every position together, the default),
        /// "each" (one patch per token index) or a list of positions (named like "S2" or "END",
        /// "first", "last", or token indices), each patched separately.
        #[serde(default)]
        pub positions: PositionSweepSpec,
        /// "denoising" (clean activations into the corrupt run, the default) or "noising" (corrupt
        /// activations into the clean run).
        #[serde(default = "denoising")]
        pub direction: Direction,
        /// What is measured on the patched run, e.g. { logit_diff = ["IO", "S"] }. The table
        /// always has the raw metric and the normalized one, (patched - corrupt) / (clean - corrupt);
        /// `normalize` makes no difference here.
        pub metric: MetricSpec,
        /// The position whose next-token prediction the metric reads (IOI: "END"). Ignored by the
        /// loss metric, which averages over every position.
        #[serde(default = "last")]
        pub position: PositionSpec,
        /// Also write `<name>.summary.parquet`: per patch, the means over prompts of the metrics and
        /// the normalized mean.
        #[serde(default = "yes")]
        pub summary: bool,
    }
}

fn resid_pre() -> Site {
    Site::ResidPre
}

impl AnalysisKind for ActivationPatchingParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        check_heads(c, self.site, &self.heads);
        check_patch_positions(c, "positions", &self.positions);
        check_metric(c, &self.metric, &self.position);
        require_corrupt(c, "activation_patching");
    }
}

/// Checks a sweep's `heads` against its site.
pub(super) fn check_heads(c: &mut Checker<'_, '_>, site: Site, heads: &HeadSweep) {
    if !site.has_heads() && *heads != HeadSweep::Each {
        c.error(
            "heads",
            format!("site `{site}` has no heads, so it takes no `heads`"),
        )
        .hint =
            Some("remove `heads`, or sweep a per-head site: z, q, k, v, pattern or result".into());
    }
    if let HeadSweep::List(list) = heads {
        c.distinct("heads", list);
    }
}

/// Checks a metric and the position it is read at.
pub(super) fn check_metric(c: &mut Checker<'_, '_>, metric: &MetricSpec, position: &PositionSpec) {
    c.metric("metric", metric);
    if !matches!(metric.measure, Measure::Loss | Measure::IclScore { .. }) {
        c.position("position", position);
    }
}

/// Checks the positions of a patching or ablation sweep.
pub(super) fn check_patch_positions(c: &mut Checker<'_, '_>, key: &str, p: &PositionSweepSpec) {
    if let PositionSweepSpec::List(items) = p {
        for (i, item) in items.iter().enumerate() {
            c.position(&format!("{key}.{i}"), item);
        }
        c.distinct(key, items);
    }
}

/// The analysis's dataset must pair every prompt with a corrupt counterpart.
pub(super) fn require_corrupt(c: &mut Checker<'_, '_>, kind: &str) {
    let Some((name, dataset)) = c.dataset else {
        return;
    };
    if dataset.has_corrupt() {
        return;
    }
    let source = dataset.source_name();
    c.error(
        "dataset",
        format!("`{kind}` needs clean/corrupt prompt pairs, but dataset `{name}` ({source}) has no corrupt prompts"),
    )
    .hint = Some(
        "use the ioi generator (corrupt = \"abc\"), give inline prompts a `corrupt` text, inline tokens `corrupt_tokens`, or a file a `corrupt_column`".into(),
    );
}

// ---------------------------------------------------------------------------------------------
// PositionSweepSpec

/// Which positions the patches (or ablations) of a sweep cover.
// As written; resolved to `circuitry_circuits::interventions::PositionSweep`.

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum PositionSweepSpec {
    /// `"all"`: every position of the prompt, in one patch.
    #[default]
    All,
    /// `"each"`: one patch per token index (up to the longest prompt).
    Each,
    /// One patch per listed position.
    List(Vec<PositionSpec>),
}

keyword_or_list! {
    PositionSweepSpec: "all" => All, "each" => Each, [PositionSpec] => List;

    const SCHEMA_NAME: &'static str = "PatchPositions";
    const TITLE: &'static str = "patch positions";
    const DESCRIPTION: &'static str = "Which positions one patch covers: \"all\" (every position, together), \"each\" (one patch per token index) or a list of positions, each patched separately.";
    const EXPECTING: &'static str = "\"all\", \"each\", a position or a list of positions";
    const EMPTY_LIST: &'static str =
        "an empty list selects no position; write \"all\", \"each\" or list at least one";
}
