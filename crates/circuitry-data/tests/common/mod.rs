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

/// A word-level tokenizer over `t0 .. t{n-1}` split on whitespace, with `t0` its special BOS and
/// unknown token (as `circuitry-train` writes for toy models): any other word encodes to 0.
pub fn word_level(n: usize) -> Tokenizer {
    let vocab: Vec<String> = (0..n).map(|i| format!("\"t{i}\": {i}")).collect();
    let json = format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{{"id": 0, "content": "t0", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}}],
        "normalizer": null, "pre_tokenizer": {{"type": "WhitespaceSplit"}},
        "post_processor": null, "decoder": null,
        "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "t0"}}}}"#,
        vocab.join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    Tokenizer::from_file(&path)
        .unwrap()
        .with_special_tokens(Some(0), Some(0), None)
}
