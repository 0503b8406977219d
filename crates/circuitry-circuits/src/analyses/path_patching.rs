//! `path_patching`: each sender's output patched only along its direct path into the receivers
//! ([`interventions::path_patching`](fn@crate::interventions::path_patching)), one row per sender
//! unit and prompt, streamed batch by batch.

use circuitry_spec::{HeadInput, PathPatchingParams, Receivers, SenderRef, Senders};

use super::causal;
use super::prelude::*;
use crate::interventions::path_patching::PathPatchingRow;
use crate::interventions::{
    PatchOptions, PathPatchingConfig, Receiver, Sender, path_patching, path_patching_table,
};

pub struct PathPatching {
    params: PathPatchingParams,
    senders: Vec<Vec<Sender>>,
    receivers: Vec<Receiver>,
    config: Option<PathPatchingConfig>,
}

impl Kind for PathPatching {
    type Params = PathPatchingParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<PathPatchingRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let (n_layers, n_heads, n_kv) =
            (cx.config.n_layers, cx.config.n_heads, cx.config.n_kv_heads);
        let receivers: Vec<Receiver> = match &params.receivers {
            Receivers::Logits => vec![Receiver::Logits],
            Receivers::Heads(list) => list
                .iter()
                .map(|r| {
                    let n = if r.input == HeadInput::Q { n_heads } else { n_kv };
                    let what = if r.input == HeadInput::Q || n == n_heads {
                        "heads"
                    } else {
                        "key/value heads"
                    };
                    if r.layer as usize >= n_layers || r.head as usize >= n {
                        return Err(AnalysisError::at(
                            "receivers",
                            format!(
                                "receiver {r} does not exist: the model has {n_layers} layers of {n} {what} for `{}`",
                                r.input
                            ),
                        ));
                    }
                    Ok(Receiver::Head {
                        layer: r.layer as usize,
                        head: r.head as usize,
                        input: r.input,
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        // Senders must sit before the last receiving layer (the logits come after every layer).
        let below = match &params.receivers {
            Receivers::Logits => n_layers,
            Receivers::Heads(list) => list.iter().map(|r| r.layer as usize).max().unwrap_or(0),
        };
        let senders: Vec<Sender> = match &params.senders {
            Senders::All => (0..below)
                .flat_map(|layer| (0..n_heads).map(move |head| Sender::Head { layer, head }))
                .collect(),
            Senders::List(list) => list
                .iter()
                .map(|s| match *s {
                    SenderRef::Head { layer, head }
                        if (layer as usize) < n_layers && (head as usize) < n_heads =>
                    {
                        Ok(Sender::Head {
                            layer: layer as usize,
                            head: head as usize,
                        })
                    }
                    SenderRef::Mlp { layer } if (layer as usize) < n_layers && !cx.config.attn_only => {
                        Ok(Sender::Mlp {
                            layer: layer as usize,
                        })
                    }
                    SenderRef::Mlp { .. } if cx.config.attn_only => Err(AnalysisError::at(
                        "senders",
                        format!("sender {s} does not exist: the model is attention-only"),
                    )),
                    _ => Err(AnalysisError::at(
                        "senders",
                        format!(
                            "sender {s} does not exist: the model has {n_layers} layers of {n_heads} heads"
                        ),
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        if senders.is_empty() {
            return Err(AnalysisError::at(
                "receivers",
                "no head sits before the receivers, so there is no sender to patch",
            ));
        }
        let senders = if params.together {
            vec![senders]
        } else {
            senders.into_iter().map(|s| vec![s]).collect()
        };
        Ok(PathPatching {
            params,
            senders,
            receivers,
            config: None,
        })
    }
}

impl Analysis for PathPatching {
    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let p = &self.params;
        let cfg = causal::on_first_use(&mut self.config, || {
            Ok(PathPatchingConfig {
                senders: self.senders.clone(),
                receivers: self.receivers.clone(),
                direction: p.direction,
                metric: causal::metric(&p.metric, &p.position, model)?,
                freeze_mlps: p.freeze_mlps,
                options: PatchOptions::default(),
            })
        })?;
        let padding = causal::padding(model, batch);
        let results =
            path_patching(model.model, batch.prompts, padding, cfg).map_err(causal::error)?;
        emit(sink, None, path_patching_table(&results))
    }
}
