//! The real SmolLM2-135M-Instruct (Q4_1 GGUF) with IOI prompts, for the SmolLM2 intervention
//! test and the patching benchmark. The model file is not in the repository: it is found through
//! `CIRCUITRY_SMOLLM2_GGUF`, else `$HOME/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf`
//! (fetch it with `scripts/fetch-smollm2.sh`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use circuitry_circuits::interventions::{Metric, Padding};
use circuitry_data::{
    DatasetOptions, IoiConfig, IoiTemplates, Prompt, Source, build_dataset, pad_id,
};
use circuitry_models::burn::prelude::*;
use circuitry_models::{LoadedModel, PaddingSide, Processing, load_model};

pub const FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub fn gguf_path() -> PathBuf {
    circuitry_testkit::smollm2_gguf()
}

/// SmolLM2 with TransformerLens's default processing; panics with fetching instructions when
/// the file is missing.
pub fn load() -> LoadedModel {
    load_with(Processing::all())
}

/// SmolLM2 with `processing`.
pub fn load_with(processing: Processing) -> LoadedModel {
    let path = gguf_path();
    load_model(
        path.to_str().unwrap(),
        Path::new("."),
        processing,
        &Device::flex(),
    )
    .expect("load SmolLM2")
}

/// `n` IOI prompts (BOS prepended, ABC counterfactuals), from the paper's BABA templates.
pub fn ioi_prompts(loaded: &LoadedModel, n: usize, seed: u64) -> Vec<Prompt> {
    let tokenizer = loaded
        .tokenizer
        .as_ref()
        .expect("the GGUF file has a tokenizer");
    let mut cfg = IoiConfig::new(n, seed);
    cfg.templates = IoiTemplates::Baba;
    cfg.skip_multi_token_names = true;
    let options = DatasetOptions {
        prepend_bos: true,
        n_ctx: None,
        repeats: None,
    };
    build_dataset("ioi", &Source::Ioi(cfg), tokenizer, &options)
        .expect("IOI dataset")
        .prompts
}

pub fn padding(loaded: &LoadedModel) -> Padding {
    Padding {
        pad_id: pad_id(loaded.tokenizer.as_ref().unwrap()),
        side: PaddingSide::Right,
    }
}

/// logit(IO) - logit(S) at the last token.
pub fn ioi_metric() -> Metric {
    Metric::logit_diff("IO", "S", "END")
}
