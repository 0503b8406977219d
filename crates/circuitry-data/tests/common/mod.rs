//! Shared test helpers: the fixture tokenizers.
#![allow(dead_code)]

use std::path::PathBuf;

use circuitry_models::Tokenizer;

/// `tests/fixtures/...` of the repository.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

/// The word-level toy tokenizer over "t0".."t127" (t0 is special; BOS = EOS = 0).
pub fn tiny() -> Tokenizer {
    Tokenizer::from_file(&fixture("gpt2-tiny/tokenizer.json"))
        .unwrap()
        .with_special_tokens(Some(0), Some(0), None)
}

/// The byte-level BPE fixture trained on IOI sentences (`<|endoftext|>` = 0 = BOS = EOS).
pub fn bpe() -> Tokenizer {
    Tokenizer::from_file(&fixture("data/ioi-bpe/tokenizer.json"))
        .unwrap()
        .with_special_tokens(Some(0), Some(0), None)
}

/// The same BPE tokenizer without any special token ids.
pub fn bpe_plain() -> Tokenizer {
    Tokenizer::from_file(&fixture("data/ioi-bpe/tokenizer.json")).unwrap()
}
