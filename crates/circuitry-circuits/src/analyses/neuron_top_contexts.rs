//! `neuron_top_contexts`: each neuron's most (and least) activating tokens over the whole
//! dataset, with their context, kept in a bounded heap per neuron while the batches stream by.

use circuitry_data::Prompt;
use circuitry_spec::NeuronTopContextsParams;

use super::prelude::*;
use crate::neurons::{Extremes, FeatureReader};

crate::table_row! {
    pub struct NeuronContextRow {
        layer = "Layer of the neuron.",
        neuron: i32 = "Index of the neuron (feature) in the site's hook.",
        kind: &'static str = "`top` (most activating) or `bottom` (least activating).",
        rank: u32 = "Rank among the neuron's kept tokens of this kind (0 = most extreme).",
        activation: f32 = "The neuron's activation at the token.",
        prompt = "Prompt id (index in the dataset).",
        position = "Token index in the prompt.",
        token_id: u32 = "Vocabulary id of the token.",
        token = "Text of the token.",
        context_before: String = "Decoded text of up to `context_before` tokens before it (within the prompt).",
        context_after: String = "Decoded text of up to `context_after` tokens after it (within the prompt).",
        document: Option<i64> = "The prompt's `document` field (text corpora: the document's index in the corpus), null when absent.",
        offset: Option<i64> = "The prompt's `offset` field (text corpora: the token index in the document where the prompt starts), null when absent.",
    }
}

/// What is kept with an activation: its token, the tokens around it and where its prompt came
/// from.
struct Context {
    token_id: u32,
    before: Vec<u32>,
    after: Vec<u32>,
    document: Option<i64>,
    offset: Option<i64>,
}

pub struct NeuronTopContexts {
    params: NeuronTopContextsParams,
    reader: FeatureReader,
    /// Per selected layer, per selected feature.
    top: Vec<Vec<Extremes<Context>>>,
    bottom: Vec<Vec<Extremes<Context>>>,
}

impl Kind for NeuronTopContexts {
    type Params = NeuronTopContextsParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<NeuronContextRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let reader = FeatureReader::new(
            cx.config,
            params.site,
            (params.layers.as_deref(), params.neurons.as_deref()),
            params.sample,
            params.seed,
            params.include_bos,
        )?;
        Ok(NeuronTopContexts {
            top: reader.heaps(Extremes::largest, params.top_k),
            bottom: reader.heaps(Extremes::smallest, params.bottom_k),
            reader,
            params,
        })
    }
}

/// A prompt field that holds an integer (`document`, `offset`).
fn int_field(prompt: &Prompt, name: &str) -> Option<i64> {
    prompt.fields.get(name).and_then(|v| v.parse().ok())
}

impl Analysis for NeuronTopContexts {
    fn requirements(&self) -> Requirements {
        self.reader.requirements()
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let (before, after) = (
            self.params.context_before as usize,
            self.params.context_after as usize,
        );
        let (top, bottom) = (&mut self.top, &mut self.bottom);
        self.reader
            .for_each_token(model, batch, |li, prompt, i, row| {
                // Made only for an activation that is kept.
                let context = || Context {
                    token_id: prompt.tokens[i],
                    before: prompt.tokens[i.saturating_sub(before)..i].to_vec(),
                    after: prompt.tokens[i + 1..(i + 1 + after).min(prompt.len())].to_vec(),
                    document: int_field(prompt, "document"),
                    offset: int_field(prompt, "offset"),
                };
                let features = &self.reader.selection[li].1;
                for (j, &f) in features.iter().enumerate() {
                    let v = row[f];
                    for heap in [&mut top[li][j], &mut bottom[li][j]] {
                        if heap.sign() * v > heap.bar() {
                            heap.offer(v, prompt.id, i as u32, context);
                        }
                    }
                }
            })
    }

    fn finish(
        &mut self,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let top = std::mem::take(&mut self.top);
        let bottom = std::mem::take(&mut self.bottom);
        for (((layer, features), top), bottom) in self.reader.selection.iter().zip(top).zip(bottom)
        {
            let mut rows = Rows::<NeuronContextRow>::new();
            for ((&neuron, top), bottom) in features.iter().zip(top).zip(bottom) {
                for (kind, heap) in [("top", top), ("bottom", bottom)] {
                    for (rank, e) in heap.into_sorted().into_iter().enumerate() {
                        let c = e.item;
                        rows.push(NeuronContextRow {
                            layer: *layer as i32,
                            neuron: neuron as i32,
                            kind,
                            rank: rank as u32,
                            activation: e.activation,
                            prompt: e.prompt,
                            position: e.position as i32,
                            token_id: c.token_id,
                            token: model.token_text(c.token_id),
                            context_before: model.tokenizer.decode(&c.before),
                            context_after: model.tokenizer.decode(&c.after),
                            document: c.document,
                            offset: c.offset,
                        });
                    }
                }
            }
            emit(sink, None, rows)?;
        }
        Ok(())
    }
}
