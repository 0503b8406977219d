//! Hook point names, exactly as TransformerLens spells them, and their shapes.

use std::fmt;
use std::str::FromStr;

/// What a hook point is, independent of the layer it sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookKind {
    Embed,
    PosEmbed,
    ResidPre,
    Ln1Scale,
    Q,
    K,
    V,
    QNormed,
    KNormed,
    RotQ,
    RotK,
    AttnScores,
    Pattern,
    Z,
    Result,
    Ln1PostScale,
    AttnOut,
    ResidMid,
    Ln2Scale,
    MlpPre,
    MlpPreLinear,
    MlpPost,
    Ln2PostScale,
    MlpOut,
    ResidPost,
    LnFinalScale,
    Logits,
}

/// The hook each patching site names.
impl From<circuitry_vocab::Site> for HookKind {
    fn from(site: circuitry_vocab::Site) -> HookKind {
        use circuitry_vocab::Site;
        match site {
            Site::ResidPre => HookKind::ResidPre,
            Site::ResidMid => HookKind::ResidMid,
            Site::ResidPost => HookKind::ResidPost,
            Site::AttnOut => HookKind::AttnOut,
            Site::MlpOut => HookKind::MlpOut,
            Site::Z => HookKind::Z,
            Site::Q => HookKind::Q,
            Site::K => HookKind::K,
            Site::V => HookKind::V,
            Site::Pattern => HookKind::Pattern,
            Site::Result => HookKind::Result,
        }
    }
}

/// The hook whose features a neuron or dimension analysis reads.
impl From<circuitry_vocab::FeatureSite> for HookKind {
    fn from(site: circuitry_vocab::FeatureSite) -> HookKind {
        use circuitry_vocab::FeatureSite;
        match site {
            FeatureSite::MlpPost => HookKind::MlpPost,
            FeatureSite::MlpPre => HookKind::MlpPre,
            FeatureSite::ResidPre => HookKind::ResidPre,
            FeatureSite::ResidMid => HookKind::ResidMid,
            FeatureSite::ResidPost => HookKind::ResidPost,
            FeatureSite::AttnOut => HookKind::AttnOut,
            FeatureSite::MlpOut => HookKind::MlpOut,
        }
    }
}

/// The hook of a receiving head's input (`hook_q`, `hook_k`, `hook_v`).
impl From<circuitry_vocab::HeadInput> for HookKind {
    fn from(input: circuitry_vocab::HeadInput) -> HookKind {
        use circuitry_vocab::HeadInput;
        match input {
            HeadInput::Q => HookKind::Q,
            HeadInput::K => HookKind::K,
            HeadInput::V => HookKind::V,
        }
    }
}

/// How the axes of a hook's tensor are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookLayout {
    /// `[batch, pos, d]` (d is d_model, d_mlp, 1 for norm scales, or d_vocab).
    BatchPosD,
    /// `[batch, pos, head, d]`.
    BatchPosHeadD,
    /// `[batch, head, query_pos, key_pos]`.
    BatchHeadQK,
}

impl HookKind {
    pub const ALL: [HookKind; 27] = [
        HookKind::Embed,
        HookKind::PosEmbed,
        HookKind::ResidPre,
        HookKind::Ln1Scale,
        HookKind::Q,
        HookKind::K,
        HookKind::V,
        HookKind::QNormed,
        HookKind::KNormed,
        HookKind::RotQ,
        HookKind::RotK,
        HookKind::AttnScores,
        HookKind::Pattern,
        HookKind::Z,
        HookKind::Result,
        HookKind::Ln1PostScale,
        HookKind::AttnOut,
        HookKind::ResidMid,
        HookKind::Ln2Scale,
        HookKind::MlpPre,
        HookKind::MlpPreLinear,
        HookKind::MlpPost,
        HookKind::Ln2PostScale,
        HookKind::MlpOut,
        HookKind::ResidPost,
        HookKind::LnFinalScale,
        HookKind::Logits,
    ];

    /// The name inside a block (`attn.hook_q`), or the whole name for model-level hooks.
    pub fn suffix(self) -> &'static str {
        match self {
            HookKind::Embed => "hook_embed",
            HookKind::PosEmbed => "hook_pos_embed",
            HookKind::ResidPre => "hook_resid_pre",
            HookKind::Ln1Scale => "ln1.hook_scale",
            HookKind::Q => "attn.hook_q",
            HookKind::K => "attn.hook_k",
            HookKind::V => "attn.hook_v",
            HookKind::QNormed => "attn.hook_q_normed",
            HookKind::KNormed => "attn.hook_k_normed",
            HookKind::RotQ => "attn.hook_rot_q",
            HookKind::RotK => "attn.hook_rot_k",
            HookKind::AttnScores => "attn.hook_attn_scores",
            HookKind::Pattern => "attn.hook_pattern",
            HookKind::Z => "attn.hook_z",
            HookKind::Result => "attn.hook_result",
            HookKind::Ln1PostScale => "ln1_post.hook_scale",
            HookKind::AttnOut => "hook_attn_out",
            HookKind::ResidMid => "hook_resid_mid",
            HookKind::Ln2Scale => "ln2.hook_scale",
            HookKind::MlpPre => "mlp.hook_pre",
            HookKind::MlpPreLinear => "mlp.hook_pre_linear",
            HookKind::MlpPost => "mlp.hook_post",
            HookKind::Ln2PostScale => "ln2_post.hook_scale",
            HookKind::MlpOut => "hook_mlp_out",
            HookKind::ResidPost => "hook_resid_post",
            HookKind::LnFinalScale => "ln_final.hook_scale",
            HookKind::Logits => "logits",
        }
    }

    /// Whether the hook exists once per block (as opposed to once per model).
    pub fn per_layer(self) -> bool {
        !matches!(
            self,
            HookKind::Embed | HookKind::PosEmbed | HookKind::LnFinalScale | HookKind::Logits
        )
    }

    pub fn layout(self) -> HookLayout {
        match self {
            HookKind::Q
            | HookKind::K
            | HookKind::V
            | HookKind::QNormed
            | HookKind::KNormed
            | HookKind::RotQ
            | HookKind::RotK
            | HookKind::Z
            | HookKind::Result => HookLayout::BatchPosHeadD,
            HookKind::AttnScores | HookKind::Pattern => HookLayout::BatchHeadQK,
            _ => HookLayout::BatchPosD,
        }
    }

    /// Rank of the hook's tensor.
    pub fn rank(self) -> usize {
        match self.layout() {
            HookLayout::BatchPosD => 3,
            _ => 4,
        }
    }

    /// Short name used in tables and experiment files (`resid_pre`, `z`, `pattern`, ...).
    pub fn site_name(self) -> &'static str {
        let s = self.suffix();
        let s = s.rsplit('.').next().unwrap_or(s);
        match self {
            HookKind::Ln1Scale => "ln1_scale",
            HookKind::Ln2Scale => "ln2_scale",
            HookKind::Ln1PostScale => "ln1_post_scale",
            HookKind::Ln2PostScale => "ln2_post_scale",
            HookKind::LnFinalScale => "ln_final_scale",
            _ => s.strip_prefix("hook_").unwrap_or(s),
        }
    }
}

/// A named point in the forward pass where activations can be read or edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookPoint {
    /// The block, for per-layer hooks; `None` for model-level ones.
    pub layer: Option<usize>,
    pub kind: HookKind,
}

/// The shape of hook `kind`'s tensor at one (batch row, position) in a model with `config`:
/// `(heads, width)`. `[batch, pos, d]` hooks have one head; `[batch, head, query, key]` hooks
/// have width 1 per key position (their last axis is the key length).
pub fn hook_position_shape(config: &crate::ModelConfig, kind: HookKind) -> (usize, usize) {
    use HookKind::*;
    match kind.layout() {
        HookLayout::BatchPosD => {
            let width = match kind {
                Ln1Scale | Ln2Scale | Ln1PostScale | Ln2PostScale | LnFinalScale => 1,
                MlpPre | MlpPreLinear | MlpPost => config.d_mlp,
                Logits => config.d_vocab,
                _ => config.d_model,
            };
            (1, width)
        }
        HookLayout::BatchPosHeadD => {
            let heads = if matches!(kind, K | V | KNormed | RotK) {
                config.n_kv_heads
            } else {
                config.n_heads
            };
            let width = if kind == Result {
                config.d_model
            } else {
                config.d_head
            };
            (heads, width)
        }
        HookLayout::BatchHeadQK => (config.n_heads, 1),
    }
}

impl HookPoint {
    /// A per-layer hook.
    pub fn layer(layer: usize, kind: HookKind) -> HookPoint {
        debug_assert!(kind.per_layer());
        HookPoint {
            layer: Some(layer),
            kind,
        }
    }

    /// A model-level hook (`hook_embed`, `hook_pos_embed`, `ln_final.hook_scale`, `logits`).
    pub fn model(kind: HookKind) -> HookPoint {
        debug_assert!(!kind.per_layer());
        HookPoint { layer: None, kind }
    }

    pub fn resid_pre(layer: usize) -> HookPoint {
        HookPoint::layer(layer, HookKind::ResidPre)
    }

    /// Every hook point of a model with `n_layers` blocks, in forward order.
    pub fn all(n_layers: usize) -> Vec<HookPoint> {
        let mut out = vec![
            HookPoint::model(HookKind::Embed),
            HookPoint::model(HookKind::PosEmbed),
        ];
        for l in 0..n_layers {
            out.extend(
                HookKind::ALL
                    .iter()
                    .filter(|k| k.per_layer())
                    .map(|&k| HookPoint::layer(l, k)),
            );
        }
        out.push(HookPoint::model(HookKind::LnFinalScale));
        out.push(HookPoint::model(HookKind::Logits));
        out
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer {
            Some(l) => write!(f, "blocks.{l}.{}", self.kind.suffix()),
            None => f.write_str(self.kind.suffix()),
        }
    }
}

/// Why a hook name could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook point `{name}`: {reason}")]
pub struct HookNameError {
    pub name: String,
    pub reason: String,
}

impl FromStr for HookPoint {
    type Err = HookNameError;

    fn from_str(name: &str) -> Result<HookPoint, HookNameError> {
        let err = |reason: &str| HookNameError {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = name.strip_prefix("blocks.") {
            let (layer, suffix) = rest
                .split_once('.')
                .ok_or_else(|| err("expected `blocks.<layer>.<hook>`"))?;
            let layer: usize = layer
                .parse()
                .map_err(|_| err("the layer must be a non-negative integer"))?;
            let kind = HookKind::ALL
                .iter()
                .copied()
                .find(|k| k.per_layer() && k.suffix() == suffix)
                .ok_or_else(|| err("not a per-layer hook name (e.g. `attn.hook_z`)"))?;
            Ok(HookPoint::layer(layer, kind))
        } else {
            HookKind::ALL
                .iter()
                .copied()
                .find(|k| !k.per_layer() && k.suffix() == name)
                .map(HookPoint::model)
                .ok_or_else(|| {
                    err("expected `hook_embed`, `hook_pos_embed`, `ln_final.hook_scale`, `logits` or `blocks.<layer>.<hook>`")
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for hp in HookPoint::all(3) {
            let name = hp.to_string();
            assert_eq!(name.parse::<HookPoint>().unwrap(), hp, "{name}");
        }
        assert_eq!(
            HookPoint::layer(2, HookKind::Z).to_string(),
            "blocks.2.attn.hook_z"
        );
        assert_eq!(HookKind::ResidPre.site_name(), "resid_pre");
        assert_eq!(HookKind::Pattern.site_name(), "pattern");
    }

    #[test]
    fn bad_names_are_rejected() {
        assert!("blocks.x.hook_resid_pre".parse::<HookPoint>().is_err());
        assert!("blocks.0.hook_embed".parse::<HookPoint>().is_err());
        assert!("hook_resid_pre".parse::<HookPoint>().is_err());
        assert!("blocks.0".parse::<HookPoint>().is_err());
    }
}
