//! `kind = "direct_logit_attribution"`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnalysisKind, last};
use crate::refs::{PositionSpec, Target};
use crate::validate::Checker;

analysis_params! {
    /// How much each component's direct output contributes to a target logit (or logit difference).
    ///
    /// Decomposes the final residual stream at `position` into the outputs of the embeddings, every
    /// attention head, every MLP and the summed biases, each scaled by the final norm's scale, and
    /// projects them onto the target's unembedding direction. Columns: prompt, component (embed,
    /// pos_embed, head, mlp, bias), layer, head, attribution.
    pub struct DirectLogitAttributionParams {
        /// What to explain: "next" (the token that actually follows `position`), { token = T } or
        /// { diff = [A, B] }. Required: the last position has no next token, so "next" needs an
        /// earlier `position`.
        pub target: Target,
        /// The position whose prediction is explained.
        #[serde(default = "last")]
        pub position: PositionSpec,
        /// Which components to report.
        #[serde(default = "all_components")]
        pub components: Vec<DlaComponent>,
        /// Layers whose heads and MLPs are reported (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Heads reported in every selected layer (0-based). Default: every head.
        pub heads: Option<Vec<u32>>,
    }
}

/// A kind of component writing to the residual stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", rename = "Component")]
// A kind of direct-logit-attribution term, unlike `circuitry_circuits::interventions::Component`
// (one ablatable unit: a head, an MLP, a neuron).
pub enum DlaComponent {
    /// Every attention head's output (`blocks.L.attn.hook_result`).
    Heads,
    /// Every MLP's output (`blocks.L.hook_mlp_out`).
    Mlps,
    /// The token embedding (`hook_embed`).
    Embed,
    /// The positional embedding (`hook_pos_embed`), for models that have one.
    PosEmbed,
    /// The attention and MLP output biases, summed over layers.
    Bias,
}

impl DlaComponent {
    /// Every component, in listing order.
    pub const ALL: [DlaComponent; 5] = [
        DlaComponent::Heads,
        DlaComponent::Mlps,
        DlaComponent::Embed,
        DlaComponent::PosEmbed,
        DlaComponent::Bias,
    ];
}

impl fmt::Display for DlaComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DlaComponent::Heads => "heads",
            DlaComponent::Mlps => "mlps",
            DlaComponent::Embed => "embed",
            DlaComponent::PosEmbed => "pos_embed",
            DlaComponent::Bias => "bias",
        };
        f.write_str(name)
    }
}

fn all_components() -> Vec<DlaComponent> {
    DlaComponent::ALL.to_vec()
}

impl AnalysisKind for DirectLogitAttributionParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.target("target", &self.target);
        c.position("position", &self.position);
        if self.target == Target::Next
            && matches!(self.position, PositionSpec::Last | PositionSpec::Index(-1))
        {
            c.error("target", "target \"next\" at the last position: the last token has no next token")
                .hint = Some("explain an earlier position (e.g. position = -2) or an answer token (target = { token = \"IO\" } or { diff = [\"IO\", \"S\"] })".into());
        }
        if matches!(self.position, PositionSpec::Named(ref n) if n == "END")
            && self.target == Target::Next
        {
            c.error(
                "target",
                "target \"next\" at END: END is the last token and has no next token",
            )
            .hint = Some("use target = { diff = [\"IO\", \"S\"] } or { token = \"IO\" }".into());
        }
        c.distinct("components", &self.components);
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
    }
}
