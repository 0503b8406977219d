//! Writing a trained model as a Hugging Face GPT-2 directory that
//! `circuitry_models::load_model` reads back: `config.json` (with circuitry's `attn_only`
//! extension key), `model.safetensors` (f32, GPT-2 tensor names), a word-level `tokenizer.json`
//! over `t0 .. t{V-1}` (`t0` is BOS), `tokenizer_config.json`, and `training.json` (the
//! training configuration and final metrics, for provenance). Every file is a deterministic
//! function of the weights and the configuration.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::{Map, Value, json};

use circuitry_models::Transformer;
use circuitry_models::architectures::gpt2::{config_to_json, to_hf_tensors};

use crate::config::{BOS_TOKEN, TrainConfig};
use crate::curve::CurveRow;
use crate::error::TrainError;

/// The `tokenizer.json` of a synthetic vocabulary: a `WordLevel` model mapping `t{i}` to `i`
/// for `i < d_vocab`, split on whitespace (so the text `"t0 t5 t7"` encodes to `[0, 5, 7]`),
/// with `t0` as the special (BOS and unknown) token.
pub fn word_level_tokenizer_json(d_vocab: usize) -> Value {
    let bos = format!("t{BOS_TOKEN}");
    let vocab: Map<String, Value> = (0..d_vocab).map(|i| (format!("t{i}"), json!(i))).collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{
            "id": BOS_TOKEN,
            "content": bos,
            "single_word": false,
            "lstrip": false,
            "rstrip": false,
            "normalized": false,
            "special": true
        }],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": bos}
    })
}

/// Writes `model` (unprocessed GPT-2-family weights) as a Hugging Face directory at `dir`,
/// replacing any existing directory there. The files are written into a temporary sibling
/// directory which is then renamed onto `dir`, so `dir` never holds a partial model (an existing
/// `dir` is first renamed aside and removed once the new one is in place). With `training`,
/// `training.json` records the configuration and the last curve row (without its time).
/// `tokenizer` replaces the synthetic word-level `tokenizer.json`.
pub fn save_model_dir(
    model: &Transformer,
    training: Option<(&TrainConfig, Option<&CurveRow>)>,
    tokenizer: Option<&Value>,
    dir: &Path,
) -> Result<(), TrainError> {
    let write_err = |path: &Path, message: String| TrainError::Write {
        path: path.to_path_buf(),
        message,
    };
    let weights = model.to_weights(dir);
    let tensors = to_hf_tensors(&weights).map_err(|m| write_err(dir, m))?;
    let name = dir
        .file_name()
        .ok_or_else(|| write_err(dir, "the output path has no directory name".into()))?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| TrainError::io(&parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let result = (|| {
        let cfg = &model.config;
        write_json(&tmp.join("config.json"), &config_to_json(cfg))?;
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .into_iter()
            .map(|(k, t)| {
                (
                    k,
                    t.data().iter().flat_map(|x| x.to_le_bytes()).collect(),
                    t.shape,
                )
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(k, b, shape)| {
                TensorView::new(Dtype::F32, shape.clone(), b)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| write_err(&tmp, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let st_path = tmp.join("model.safetensors");
        let data = safetensors::serialize(views, Some(meta))
            .map_err(|e| write_err(&st_path, e.to_string()))?;
        std::fs::write(&st_path, data).map_err(|e| TrainError::io(&st_path, e))?;
        match tokenizer {
            Some(t) => write_json(&tmp.join("tokenizer.json"), t)?,
            None => write_json(
                &tmp.join("tokenizer.json"),
                &word_level_tokenizer_json(cfg.d_vocab),
            )?,
        }
        let bos = format!("t{BOS_TOKEN}");
        write_json(
            &tmp.join("tokenizer_config.json"),
            &json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": bos,
                "eos_token": bos,
                "unk_token": bos,
                "model_max_length": cfg.n_ctx,
            }),
        )?;
        if let Some((train_cfg, last)) = training {
            let last = last.map(|r| {
                json!({
                    "step": r.step,
                    "train_loss": r.train_loss,
                    "eval_loss_first_repeat": r.eval_loss_first_repeat,
                    "eval_loss_second_repeat": r.eval_loss_second_repeat,
                    "icl_score": r.icl_score,
                })
            });
            write_json(
                &tmp.join("training.json"),
                &json!({
                    "tool": format!("circuitry-train {}", env!("CARGO_PKG_VERSION")),
                    "config": train_cfg,
                    "final": last,
                }),
            )?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
        std::fs::rename(&tmp, dir).map_err(|e| TrainError::io(dir, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    } else {
        std::fs::rename(&tmp, dir).map_err(|e| TrainError::io(dir, e))?;
    }
    Ok(())
}

fn write_json(path: &Path, value: &Value) -> Result<(), TrainError> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    std::fs::write(path, text).map_err(|e| TrainError::io(path, e))
}
