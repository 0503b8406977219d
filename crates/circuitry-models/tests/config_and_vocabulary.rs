//! Configurations that would make every output NaN are load errors naming the key of the file,
//! and text is one vocabulary token only when the tokenizer really has it (a word-level
//! vocabulary's unknown token is not a silent stand-in).

use std::path::{Path, PathBuf};

use circuitry_models::load::read_config;
use circuitry_models::{LoadError, ModelSource, TokenTextError, Tokenizer};
use circuitry_testkit::fixture_dir;

/// A copy of a fixture's `config.json` (no weights: only the configuration is read) with `key`
/// set to `value`, in a temporary model directory.
fn config_with(fixture: &str, key: &str, value: serde_json::Value) -> tempfile::TempDir {
    let text = std::fs::read_to_string(fixture_dir(fixture).join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json[key] = value;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    dir
}

fn config_error(dir: &Path) -> (String, String) {
    match read_config(&ModelSource::HfDir(dir.to_path_buf())) {
        Err(LoadError::Config { key, message, .. }) => (key, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn a_norm_epsilon_that_is_not_positive_is_an_error_at_its_key() {
    for (fixture, key) in [
        ("gpt2-tiny", "layer_norm_epsilon"),
        ("llama-tiny", "rms_norm_eps"),
    ] {
        // 0 and negative values divide by zero (or take the root of a negative number) on a
        // constant or zero vector; 1e-50 is 0 once the forward pass casts it to f32.
        for value in [-1e-5, 0.0, 1e-50, 1e39] {
            let dir = config_with(fixture, key, serde_json::json!(value));
            let (found, message) = config_error(dir.path());
            assert_eq!(found, key, "{fixture} {value}: {message}");
            assert!(
                message.contains("positive finite") && message.contains("NaN"),
                "{fixture} {value}: {message}"
            );
        }
        // The fixture's own value loads.
        read_config(&ModelSource::HfDir(fixture_dir(fixture))).unwrap();
    }
}

#[test]
fn a_rotary_base_that_is_not_positive_is_an_error_at_its_key() {
    for value in [-10000.0, 0.0] {
        // transformers >= 5 nests the base in `rope_parameters`...
        let params = serde_json::json!({"rope_theta": value, "rope_type": "default"});
        let dir = config_with("llama-tiny", "rope_parameters", params);
        let (key, message) = config_error(dir.path());
        assert_eq!(key, "rope_parameters.rope_theta", "{message}");
        assert!(message.contains("rotary base"), "{message}");
        // ...older configs have it at the top.
        let dir = config_with("llama-tiny", "rope_parameters", serde_json::Value::Null);
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["rope_theta"] = serde_json::json!(value);
        std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
        let (key, message) = config_error(dir.path());
        assert_eq!(key, "rope_theta", "{message}");
    }
}

#[test]
fn zero_heads_is_an_error_not_a_division_by_zero() {
    for (fixture, key) in [
        ("gpt2-tiny", "n_head"),
        ("llama-tiny", "num_attention_heads"),
    ] {
        let dir = config_with(fixture, key, serde_json::json!(0));
        let (found, message) = config_error(dir.path());
        assert_eq!(found, key, "{message}");
    }
}

/// Overwrites the f32 value of the metadata entry `key` of a GGUF file (the key's bytes, then
/// the value type 6 = f32, then the value).
fn gguf_with_f32(key: &str, value: f32) -> (tempfile::TempDir, PathBuf) {
    let mut bytes = std::fs::read(fixture_dir("gguf").join("llama-bias.gguf")).unwrap();
    let at = bytes
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .expect("key in the fixture")
        + key.len();
    assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 6);
    bytes[at + 4..at + 8].copy_from_slice(&value.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn gguf_norm_epsilon_and_rotary_base_are_checked_at_their_keys() {
    for (key, value) in [
        ("llama.attention.layer_norm_rms_epsilon", -1e-6),
        ("llama.attention.layer_norm_rms_epsilon", 0.0),
        ("llama.attention.layer_norm_rms_epsilon", f32::NAN),
        ("llama.rope.freq_base", -1.0),
    ] {
        let (_dir, path) = gguf_with_f32(key, value);
        match read_config(&ModelSource::Gguf(path)) {
            Err(LoadError::Config {
                key: found,
                message,
                ..
            }) => {
                assert_eq!(found, key, "{value}: {message}");
                assert!(message.contains("NaN"), "{message}");
            }
            other => panic!("{key} = {value}: expected a config error, got {other:?}"),
        }
    }
}

/// A word-level tokenizer over `t0 .. t9` split on whitespace, `t0` its special unknown token
/// (as `circuitry-train` writes for toy models).
fn word_level() -> Tokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|i| (format!("t{i}"), serde_json::json!(i)))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": 0, "content": "t0", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"}
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    Tokenizer::from_file(&path).unwrap()
}

#[test]
fn text_the_vocabulary_lacks_is_not_silently_the_unknown_token() {
    let tok = word_level();
    assert_eq!(tok.unk_token(), Some((0, "t0")));
    assert_eq!(tok.single_token(" t5").unwrap(), 5);
    // The unknown token's own spelling is known.
    assert_eq!(tok.single_token("t0").unwrap(), 0);
    // Plain encoding gives the unknown id without a word; the checks see it.
    assert_eq!(tok.encode(" Mary").unwrap(), [0]);
    let err = tok.single_token(" Mary").unwrap_err();
    let TokenTextError::Unknown { pieces, unk, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (pieces.as_slice(), unk.as_str()),
        (&["Mary".to_string()][..], "t0")
    );
    assert!(
        err.to_string()
            .contains("\" Mary\" is not in the vocabulary"),
        "{err}"
    );
    let encoded = tok.encode_checked("t1 Ann t2 Bob").unwrap();
    assert_eq!(encoded.ids, [1, 0, 2, 0]);
    assert_eq!(encoded.unknown, ["Ann", "Bob"]);
    let err = tok.single_token("t1 t2").unwrap_err();
    assert!(
        matches!(&err, TokenTextError::NotOne { ids, .. } if ids == &[1, 2]),
        "{err}"
    );
}

#[test]
fn byte_level_vocabularies_have_no_unknown_token() {
    let tok = Tokenizer::from_file(&fixture_dir("data").join("ioi-bpe/tokenizer.json")).unwrap();
    assert_eq!(tok.unk_token(), None);
    let encoded = tok.encode_checked(" Zyxwvut").unwrap();
    assert!(encoded.unknown.is_empty() && encoded.ids.len() > 1);
    let err = tok.single_token(" Zyxwvut").unwrap_err();
    assert!(err.to_string().contains("tokens, not one"), "{err}");
}
