"""Converts the tiny Hugging Face fixtures of the architectures llama.cpp reads through the
Llama layout, and GPT-NeoX's, into GGUF files, as llama.cpp's `convert_hf_to_gguf.py` writes them, so that
circuitry's GGUF reader can be checked to load the same weights as from the Hugging Face
directory.

- Tensor names come from the `gguf` package's own `get_tensor_name_map` (the table llama.cpp's
  converter uses), for `general.architecture` = qwen2, qwen3, olmo2, phi3, gemma, gemma2, gemma3
  and llama.
- Gemma 2 and 3 also get their soft-caps and window size, and, because the tiny configs differ
  from llama.cpp's defaults, `attention.sliding_window_pattern` (one flag per layer),
  `attention.scale` (where `query_pre_attn_scalar` is not `head_dim`) and `rope.freq_base_swa`.
- The converter's per-model changes are repeated here: Gemma's norm weights are stored as
  `1 + w` and its tied `lm_head` is dropped; only `llama` permutes the query and key rows (the
  other architectures use llama.cpp's NEOX rotary layout); Phi-3 keeps its fused `qkv_proj` and
  `gate_up_proj` as `attn_qkv` and `ffn_up`; tied embeddings have no `output.weight`;
  GPT-NeoX's head-by-head `query_key_value` rows are reordered to `[q; k; v]` (the converter's
  `GPTNeoXModel.modify_tensors`).
- Hyperparameters use the `gguf` package's writer methods (`{arch}.embedding_length`, ...).
  `rope-linear` (a Llama with `rope_scaling = {type = linear}`) becomes `llama.rope.scaling.type`
  and `.factor`; `rope-llama3` (Llama 3's `rope_type = llama3`) becomes a `rope_freqs` tensor of
  per-frequency factors, computed as the converter's `LlamaModel.generate_extra_tensors` does.
- `qwen2-hf/` is a tiny random Qwen2 (biases on q/k/v only) saved by transformers, the source of
  `arch-qwen2.gguf`; the other sources are the fixtures in tests/fixtures/.

Tensors are F32, so the loaded weights must equal the Hugging Face ones exactly. Run with a
virtual environment holding torch, transformers 4.57, safetensors and gguf 0.19:

    CUDA_VISIBLE_DEVICES= HF_HUB_OFFLINE=1 /root/.cache/hf-ref-venv-457/bin/python \
        scripts/reference/gguf_architectures.py tests/fixtures

The output is deterministic; rerunning rewrites identical files.
"""

import json
import os
import sys

import gguf
import numpy as np
import torch
from safetensors.numpy import load_file

SOURCES = {
    # file stem: (fixture directory, GGUF architecture)
    "qwen2": ("gguf/qwen2-hf", "qwen2"),
    "qwen3": ("qwen3-tiny", "qwen3"),
    "olmo2": ("olmo2-tiny", "olmo2"),
    "phi3": ("phi3-tiny", "phi3"),
    "gemma": ("gemma-tiny", "gemma"),
    "gemma2": ("gemma2-tiny", "gemma2"),
    "gemma3": ("gemma3-tiny", "gemma3"),
    "llama-rope-linear": ("rope-linear", "llama"),
    "llama-rope-llama3": ("rope-llama3", "llama"),
    "gptneox": ("gptneox-tiny", "gptneox"),
}


def write_qwen2(out_dir):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(2)
    cfg = Qwen2Config(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        initializer_range=0.2,
    )
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.normal_(0.0, 0.3).add_(1.0 if "norm" in name else 0.0)
    model.save_pretrained(out_dir, safe_serialization=True)
    os.remove(os.path.join(out_dir, "generation_config.json"))


def llama_cpp_permute(w, n_head):
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def llama3_factors(scaling, base, dim):
    """convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors."""
    import math

    factor = scaling.get("factor", 8.0)
    low_freq_factor = scaling.get("low_freq_factor", 1.0)
    high_freq_factor = scaling.get("high_freq_factor", 4.0)
    old_context_len = scaling.get("original_max_position_embeddings", 8192)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    rope_factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            rope_factors.append(1)
        elif wavelen > low_freq_wavelen:
            rope_factors.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            rope_factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(rope_factors, dtype=torch.float32).numpy()


def write(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def add_special_ids(w, cfg):
    """The bos, eos and pad ids, which the converter's vocabulary step writes."""
    for key, add in [("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id),
                     ("pad_token_id", w.add_pad_token_id)]:
        if cfg.get(key) is not None:
            add(cfg[key])


def convert_gptneox(src, path):
    """convert_hf_to_gguf.py's GPTNeoXModel: its hyperparameters and qkv reordering."""
    cfg = json.load(open(os.path.join(src, "config.json")))
    tensors = load_file(os.path.join(src, "model.safetensors"))
    n_layers = cfg["num_hidden_layers"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPTNEOX, n_layers)
    n_head = cfg["num_attention_heads"]
    n_embed = cfg["hidden_size"]
    w = gguf.GGUFWriter(path, "gptneox")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(n_embed)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(int(cfg["rotary_pct"] * (n_embed // n_head)))
    w.add_head_count(n_head)
    w.add_parallel_residual(cfg.get("use_parallel_residual", True))
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    add_special_ids(w, cfg)
    for hf_name in sorted(tensors):
        data = tensors[hf_name].astype(np.float32)
        if hf_name.endswith("attention.query_key_value.weight"):
            qkv = data.reshape(n_head, 3, n_embed // n_head, n_embed)
            data = np.concatenate([qkv[:, i].reshape(-1, n_embed) for i in range(3)], axis=0)
        elif hf_name.endswith("attention.query_key_value.bias"):
            qkv = data.reshape(n_head, 3, n_embed // n_head)
            data = np.concatenate([qkv[:, i].reshape(n_embed) for i in range(3)], axis=0)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert name is not None, f"gptneox: no GGUF name for {hf_name}"
        w.add_tensor(name, np.ascontiguousarray(data))
    write(w)


def convert(src, arch_name, path):
    cfg = json.load(open(os.path.join(src, "config.json")))
    tensors = load_file(os.path.join(src, "model.safetensors"))
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    n_layers = cfg["num_hidden_layers"]
    names = gguf.get_tensor_name_map(arch, n_layers)
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_heads)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
    tied = cfg.get("tie_word_embeddings", arch_name.startswith("gemma"))
    if tied is None:
        tied = arch_name.startswith("gemma")

    w = gguf.GGUFWriter(path, arch_name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_vocab_size(cfg["vocab_size"])
    if "head_dim" in cfg:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    rotary = int(head_dim * cfg.get("partial_rotary_factor", 1.0))
    w.add_rope_dimension_count(rotary)
    if arch_name == "phi3" and cfg.get("sliding_window"):
        w.add_sliding_window(cfg["sliding_window"])
    if arch_name in ("gemma2", "gemma3"):
        for key, add in [("attn_logit_softcapping", w.add_attn_logit_softcapping),
                         ("final_logit_softcapping", w.add_final_logit_softcapping)]:
            if cfg.get(key) is not None:
                add(cfg[key])
        w.add_sliding_window(cfg["sliding_window"])
        # The tiny configs differ from llama.cpp's defaults (its layer pattern, a scale by
        # head_dim), so the file says what they are, with the keys the gguf package defines.
        w.add_sliding_window_pattern([t == "sliding_attention" for t in cfg["layer_types"]])
        if cfg["query_pre_attn_scalar"] != head_dim:
            w.add_attention_scale(cfg["query_pre_attn_scalar"] ** -0.5)
        if arch_name == "gemma3":
            w.add_rope_freq_base_swa(cfg.get("rope_local_base_freq", 10000.0))
    scaling = cfg.get("rope_scaling")
    if scaling and scaling["rope_type"] == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(scaling["factor"])
    elif scaling:
        assert scaling["rope_type"] == "llama3", scaling
        w.add_tensor("rope_freqs.weight", llama3_factors(scaling, cfg["rope_theta"], rotary))
    add_special_ids(w, cfg)

    for hf_name in sorted(tensors):
        data = tensors[hf_name].astype(np.float32)
        if hf_name == "lm_head.weight" and tied:
            continue
        if arch_name.startswith("gemma") and hf_name.endswith("norm.weight"):
            data = data + 1
        if arch_name == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = llama_cpp_permute(data, n_heads)
        if arch_name == "llama" and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = llama_cpp_permute(data, n_kv)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert name is not None, f"{arch_name}: no GGUF name for {hf_name}"
        w.add_tensor(name, np.ascontiguousarray(data))
    write(w)


def main():
    fixtures = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    qwen2 = os.path.join(fixtures, "gguf", "qwen2-hf")
    write_qwen2(qwen2)
    for stem, (src, arch_name) in SOURCES.items():
        path = os.path.join(fixtures, "gguf", f"arch-{stem}.gguf")
        if arch_name == "gptneox":
            convert_gptneox(os.path.join(fixtures, src), path)
        else:
            convert(os.path.join(fixtures, src), arch_name, path)
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
