//! Where features are read: the `[batch, pos, d]` hooks of every layer whose coordinates
//! neuron and dimension analyses study one by one (an MLP's neurons, the residual stream's
//! dimensions).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A per-layer hook whose last axis holds features (`[batch, pos, d]`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSite {
    /// The MLP's neurons after the activation function (`blocks.L.mlp.hook_post`; for gated
    /// MLPs the activation times the up projection, as TransformerLens): the default.
    #[default]
    MlpPost,
    /// The MLP's neurons before the activation function (`blocks.L.mlp.hook_pre`).
    MlpPre,
    /// The residual stream before the block (`blocks.L.hook_resid_pre`).
    ResidPre,
    /// The residual stream between attention and MLP (`blocks.L.hook_resid_mid`).
    ResidMid,
    /// The residual stream after the block (`blocks.L.hook_resid_post`).
    ResidPost,
    /// The attention layer's output (`blocks.L.hook_attn_out`).
    AttnOut,
    /// The MLP's output (`blocks.L.hook_mlp_out`).
    MlpOut,
}

impl FeatureSite {
    /// The name written in experiment files and tables.
    pub fn name(self) -> &'static str {
        match self {
            FeatureSite::MlpPost => "mlp_post",
            FeatureSite::MlpPre => "mlp_pre",
            FeatureSite::ResidPre => "resid_pre",
            FeatureSite::ResidMid => "resid_mid",
            FeatureSite::ResidPost => "resid_post",
            FeatureSite::AttnOut => "attn_out",
            FeatureSite::MlpOut => "mlp_out",
        }
    }
}

impl fmt::Display for FeatureSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
