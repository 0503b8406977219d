//! Tokenizers built from GGUF metadata against Hugging Face transformers
//! (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`) on tiny byte-level BPE vocabularies with
//! the Llama 3 split regex (`llama-bpe`), Qwen2's (`qwen2`) and GPT-2's (`smollm`, with and
//! without `add_space_prefix`, which transformers ignores here), control, user-defined and
//! mislabelled tokens, and a token re-spelled in the byte alphabet. Fixtures and expected ids come
//! from `scripts/make_gguf_fixtures.py`.

use std::path::PathBuf;

use circuitry_models::Tokenizer;
use circuitry_models::loading::gguf::GgufFile;
use circuitry_testkit::fixture_dir;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    fixture_dir("gguf").join(name)
}

/// The `ids` of an expected case.
fn expected_ids(case: &Value) -> Vec<u32> {
    case["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn token_ids_and_decoding_match_transformers() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tokenizer.expected.json")).unwrap())
            .unwrap();
    let files = expected["tokenizers"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for file in files {
        let name = file["file"].as_str().unwrap();
        let tokenizer = Tokenizer::from_gguf(&GgufFile::open(&fixture(name)).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (
                tokenizer.bos_token_id,
                tokenizer.eos_token_id,
                tokenizer.pad_token_id
            ),
            (Some(1), Some(2), Some(2))
        );
        for case in file["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want = expected_ids(case);
            let got = tokenizer.encode(text).unwrap();
            assert_eq!(got, want, "{name}: {text:?}");
            assert_eq!(
                tokenizer.decode(&got),
                case["decoded"].as_str().unwrap(),
                "{name}: decoding {text:?}"
            );
        }
    }
}

#[test]
fn added_tokens_follow_transformers_rules() {
    let tokenizer =
        Tokenizer::from_gguf(&GgufFile::open(&fixture("tokenizer-llama-bpe.gguf")).unwrap())
            .unwrap();
    let added = tokenizer.inner().get_added_tokens_decoder();
    let special = |id: u32| added.get(&id).map(|t| t.special);
    assert_eq!(special(0), Some(true), "<|endoftext|> is control");
    assert_eq!(special(1), Some(true), "<|im_start|> is control");
    assert_eq!(special(3), Some(false), "<think> is user-defined");
    assert_eq!(
        special(5),
        None,
        "a control token with a space is a llama.cpp mislabel"
    );
    // Re-spelled in the byte alphabet: "京" is stored as its UTF-8 bytes' characters.
    assert_eq!(tokenizer.token_to_id("京"), None);
    assert_eq!(
        tokenizer.token_to_id("äº¬"),
        Some(tokenizer.vocab_size() as u32 - 1)
    );
}

#[test]
fn unsupported_tokenizer_model_is_an_error_naming_file_and_key() {
    // quants.gguf has no tokenizer at all.
    let err = Tokenizer::from_gguf(&GgufFile::open(&fixture("quants.gguf")).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("quants.gguf") && err.contains("tokenizer.ggml.model"),
        "{err}"
    );
}

/// A sentencepiece BPE vocabulary (`tokenizer.ggml.model = "llama"`) encodes and decodes as
/// sentencepiece itself does (`scripts/reference/gguf_sentencepiece.py` trained the model and
/// recorded its ids): merges by score, the dummy prefix, spaces as `▁`, byte fallback for
/// characters outside the vocabulary, a user-defined piece matched whole.
#[test]
fn sentencepiece_ids_and_decoding_match_sentencepiece() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tokenizer-spm.expected.json")).unwrap(),
    )
    .unwrap();
    let tokenizer =
        Tokenizer::from_gguf(&GgufFile::open(&fixture("tokenizer-spm.gguf")).unwrap()).unwrap();
    assert_eq!(tokenizer.bos_token_id, Some(1));
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    let mut bytes_seen = false;
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = expected_ids(case);
        let got = tokenizer.encode(text).unwrap();
        assert_eq!(
            got,
            want,
            "{text:?}: {} vs {}",
            tokenizer.pieces(&got),
            tokenizer.pieces(&want)
        );
        assert_eq!(
            tokenizer.decode(&got),
            case["decoded"].as_str().unwrap(),
            "decoding {text:?}"
        );
        bytes_seen |= got.iter().any(|&id| (3..259).contains(&id));
    }
    // The texts reach the byte pieces (ids 3.. after unk, bos, eos... and the user piece).
    assert!(bytes_seen);
}
