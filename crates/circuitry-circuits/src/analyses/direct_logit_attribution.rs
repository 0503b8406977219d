//! `direct_logit_attribution`: each component's direct contribution to a target logit (or logit
//! difference) through the final norm, as TransformerLens's `apply_ln_to_stack` does it: the
//! component is centred (LayerNorm models), divided by the final norm's cached scale at that
//! position, scaled by the norm weight (if not folded) and projected on the unembedding
//! direction. The rows of one prompt sum to the model's actual logit (difference): the `bias`
//! row carries the attention output biases, the final norm's shift and the unembedding bias.
//! Models where that sum cannot hold are refused: a logit soft-cap bends the logits after the
//! sum, and post-norms bend attention's output after its heads' results and bias are summed.

use circuitry_models::{HookKind, HookPoint, Positional, Transformer, host_values};
use circuitry_spec::{DirectLogitAttributionParams, DlaComponent};

use super::prelude::*;
use super::selected_layers_heads;
use crate::acts::{host, vector};
use crate::refs;

crate::table_row! {
    pub struct DirectAttributionRow {
        prompt = "Prompt id (index in the dataset).",
        position = "Token index whose prediction is explained.",
        target: String = "The explained quantity, e.g. `logit( Mary) - logit( John)`.",
        component: &'static str = "embed, pos_embed, head, mlp or bias.",
        layer: Option<i32> = "Layer of a head or MLP; null for embed, pos_embed and bias.",
        head: Option<i32> = "Head index; null for other components.",
        attribution: f32 = "Direct contribution to the target (logit units).",
    }
}

pub struct DirectLogitAttribution {
    params: DirectLogitAttributionParams,
    layers: Vec<usize>,
    heads: Vec<usize>,
    n_layers: usize,
    learned_positions: bool,
    centers: bool,
    attn_only: bool,
    /// Host copy of the unembedding, made on the first batch.
    unembed: Option<Unembed>,
}

impl Kind for DirectLogitAttribution {
    type Params = DirectLogitAttributionParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<DirectAttributionRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let (layers, heads) =
            selected_layers_heads(cx.config, params.layers.as_deref(), params.heads.as_deref())?;
        if let Some(cap) = cx.config.logit_softcap {
            return Err(AnalysisError::new(format!(
                "the model soft-caps its logits (at {cap}), so no sum of direct contributions equals a logit; patch or ablate components instead"
            )));
        }
        if cx.config.block_norms.post() {
            return Err(AnalysisError::new(
                "the model normalises attention's output before it joins the residual stream (post-norms), so neither a head's result nor an output bias is its share of it; patch or ablate components instead",
            ));
        }
        Ok(DirectLogitAttribution {
            layers,
            heads,
            n_layers: cx.config.n_layers,
            learned_positions: cx.config.positional == Positional::Learned,
            centers: cx.config.norm.centers(),
            attn_only: cx.config.attn_only,
            unembed: None,
            params,
        })
    }
}

impl DirectLogitAttribution {
    fn wants(&self, c: DlaComponent) -> bool {
        self.params.components.contains(&c)
    }
}

/// Host copies of the weights the attribution reads.
struct Unembed {
    /// `W_U`, `[d_model, d_vocab]`.
    w_u: Vec<f32>,
    b_u: Option<Vec<f32>>,
    ln_w: Option<Vec<f32>>,
    ln_b: Option<Vec<f32>>,
    /// Sum over layers of the attention output biases.
    attn_bias: Vec<f32>,
    d_vocab: usize,
}

impl Unembed {
    fn new(model: &Transformer) -> Unembed {
        let d = model.config.d_model;
        let mut attn_bias = vec![0f32; d];
        for block in model.blocks() {
            if let Some(b) = block.attn().b_o() {
                for (s, x) in attn_bias.iter_mut().zip(host_values(&b)) {
                    *s += x;
                }
            }
        }
        Unembed {
            w_u: host_values(&model.w_u()),
            b_u: model.b_u().map(|b| host_values(&b)),
            ln_w: model.ln_final().w().map(|w| host_values(&w)),
            ln_b: model.ln_final().b().map(|b| host_values(&b)),
            attn_bias,
            d_vocab: model.config.d_vocab,
        }
    }

    /// `ln_w ⊙ (W_U[:, plus] - W_U[:, minus])`.
    fn direction(&self, t: refs::ResolvedTarget) -> Vec<f32> {
        let d = self.w_u.len() / self.d_vocab;
        (0..d)
            .map(|i| {
                let row = &self.w_u[i * self.d_vocab..(i + 1) * self.d_vocab];
                let v = row[t.plus as usize] - t.minus.map_or(0.0, |m| row[m as usize]);
                v * self.ln_w.as_ref().map_or(1.0, |w| w[i])
            })
            .collect()
    }

    /// The constant part of the target: final norm shift and unembedding bias.
    fn constant(&self, t: refs::ResolvedTarget) -> f32 {
        let d = self.w_u.len() / self.d_vocab;
        let mut c = 0.0;
        if let Some(b) = &self.ln_b {
            for (i, bi) in b.iter().enumerate().take(d) {
                let row = &self.w_u[i * self.d_vocab..(i + 1) * self.d_vocab];
                c += bi * (row[t.plus as usize] - t.minus.map_or(0.0, |m| row[m as usize]));
            }
        }
        if let Some(b) = &self.b_u {
            c += b[t.plus as usize] - t.minus.map_or(0.0, |m| b[m as usize]);
        }
        c
    }
}

/// `(centre(c) / scale) · direction`.
fn project(c: &[f32], centers: bool, scale: f32, direction: &[f32]) -> f32 {
    let mean = if centers {
        c.iter().sum::<f32>() / c.len() as f32
    } else {
        0.0
    };
    c.iter()
        .zip(direction)
        .map(|(x, d)| (x - mean) * d)
        .sum::<f32>()
        / scale
}

impl Analysis for DirectLogitAttribution {
    /// Each batch's rows are its prompts' alone.
    fn batch_local(&self) -> bool {
        true
    }

    fn requirements(&self) -> Requirements {
        let mut hooks = vec![HookPoint::model(HookKind::LnFinalScale)];
        for l in 0..self.n_layers {
            if self.wants(DlaComponent::Heads) {
                hooks.push(HookPoint::layer(l, HookKind::Result));
            }
            if self.wants(DlaComponent::Mlps) && !self.attn_only {
                hooks.push(HookPoint::layer(l, HookKind::MlpOut));
            }
        }
        if self.wants(DlaComponent::Embed) {
            hooks.push(HookPoint::model(HookKind::Embed));
        }
        if self.wants(DlaComponent::PosEmbed) && self.learned_positions {
            hooks.push(HookPoint::model(HookKind::PosEmbed));
        }
        Requirements::hooks(hooks)
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let out = batch.clean_output;
        if self.unembed.is_none() {
            self.unembed = Some(Unembed::new(model.model));
        }
        let unembed = self.unembed.as_ref().expect("just set");
        let scale = host(out, HookPoint::model(HookKind::LnFinalScale))?;
        let fetch = |kind: HookKind, layer: Option<usize>| match layer {
            Some(l) => host(out, HookPoint::layer(l, kind)),
            None => host(out, HookPoint::model(kind)),
        };
        let results = if self.wants(DlaComponent::Heads) {
            self.layers
                .iter()
                .map(|&l| fetch(HookKind::Result, Some(l)))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![]
        };
        let mlps = if self.wants(DlaComponent::Mlps) && !self.attn_only {
            self.layers
                .iter()
                .map(|&l| fetch(HookKind::MlpOut, Some(l)))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![]
        };
        let embed = if self.wants(DlaComponent::Embed) {
            Some(fetch(HookKind::Embed, None)?)
        } else {
            None
        };
        let pos_embed = if self.wants(DlaComponent::PosEmbed) && self.learned_positions {
            Some(fetch(HookKind::PosEmbed, None)?)
        } else {
            None
        };
        let mut table = Rows::<DirectAttributionRow>::new();
        for (r, prompt) in batch.prompts.iter().enumerate() {
            let pos = refs::position(&self.params.position, prompt)?;
            let t = refs::target(
                &self.params.target,
                prompt,
                pos,
                model.tokenizer,
                unembed.d_vocab,
            )?;
            let label = match t.minus {
                Some(m) => format!(
                    "logit({}) - logit({})",
                    model.token_text(t.plus),
                    model.token_text(m)
                ),
                None => format!("logit({})", model.token_text(t.plus)),
            };
            let slot = batch.slot(r, pos);
            let s = vector(&scale, &[r, slot])[0];
            let dir = unembed.direction(t);
            let mut row =
                |component: &'static str, layer: Option<usize>, head: Option<usize>, value: f32| {
                    table.push(DirectAttributionRow {
                        prompt: prompt.id,
                        position: pos as i32,
                        target: label.clone(),
                        component,
                        layer: layer.map(|l| l as i32),
                        head: head.map(|h| h as i32),
                        attribution: value,
                    });
                };
            if let Some(e) = &embed {
                row(
                    "embed",
                    None,
                    None,
                    project(vector(e, &[r, slot]), self.centers, s, &dir),
                );
            }
            if let Some(p) = &pos_embed {
                row(
                    "pos_embed",
                    None,
                    None,
                    project(vector(p, &[r, slot]), self.centers, s, &dir),
                );
            }
            for (li, &layer) in self.layers.iter().enumerate() {
                if let Some(res) = results.get(li) {
                    for &head in &self.heads {
                        row(
                            "head",
                            Some(layer),
                            Some(head),
                            project(vector(res, &[r, slot, head]), self.centers, s, &dir),
                        );
                    }
                }
                if let Some(m) = mlps.get(li) {
                    row(
                        "mlp",
                        Some(layer),
                        None,
                        project(vector(m, &[r, slot]), self.centers, s, &dir),
                    );
                }
            }
            if self.wants(DlaComponent::Bias) {
                let value =
                    project(&unembed.attn_bias, self.centers, s, &dir) + unembed.constant(t);
                row("bias", None, None, value);
            }
        }
        emit(sink, None, table)
    }
}
