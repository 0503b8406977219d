"""Hugging Face transformers reference fixtures for RoPE scaling in Llama models.

Makes, for each rope type in ROPE_TYPES ("linear", "dynamic", "llama3", "yarn"), the directory
tests/fixtures/rope-<type>/ holding:
  config.json         config of a tiny randomly initialised LlamaForCausalLM (float32), with
                      config.rope_scaling set as in ROPE_SCALING below
  model.safetensors   its weights (model.save_pretrained(dir, safe_serialization=True); the
                      generation_config.json that save_pretrained writes is deleted)
  reference.json      transformers_version, torch_version, rope_scaling, input_ids [2, 40],
                      logits [2, 40, 64], inv_freq (after the 40-token forward), inv_freq_initial
                      (before any forward), attention_scaling (after the forward), cos / sin
                      [40, head_dim] from model.model.rotary_emb(x, position_ids=0..39) after the
                      forward, and max_abs_diff_vs_unscaled (max |logits - logits of the same seeded
                      model with rope_scaling=None|).

Model: torch.manual_seed(0) right before each LlamaForCausalLM(config); hidden_size=32,
intermediate_size=64, 2 layers, 4 heads, 2 KV heads (head_dim 8, so 4 inv_freq entries),
vocab 64, max_position_embeddings=128 (16 for "dynamic", so that the 40-token prompts exceed it
and the dynamic update triggers), rms_norm_eps=1e-6, rope_theta=10000, untied embeddings, SiLU,
attn_implementation="eager" (a plain softmax(QK^T/sqrt(d) + causal mask) V; not stored in
config.json). Inputs: torch.manual_seed(1); torch.randint(3, 64, (2, 40)); no attention mask,
position ids 0..39 (the default). Floats are stored with float(x) (full float32 precision).

Version note: in transformers 4.48.3, "yarn" does NOT read rope_scaling["original_max_position_embeddings"]
(it logs "Unrecognized keys ... {'original_max_position_embeddings'}") and uses
config.max_position_embeddings for the correction range with factor = rope_scaling["factor"]; newer
transformers read original_max_position_embeddings and derive the factor from it. The yarn fixture
leaves that key out (max_position_embeddings = 16), where both read the config the same way.

Versions used to make the committed fixtures: Python 3.11.7, torch 2.15.0+cu132 (run on CPU),
transformers 4.48.3, safetensors 0.8.0, numpy 2.4.6.

Run (from the repository root; venv outside the repo):
  python3 -m venv /root/.cache/hf-ref-venv
  /root/.cache/hf-ref-venv/bin/pip install torch        # CPU wheel index if reachable
  /root/.cache/hf-ref-venv/bin/pip install transformers==4.48.3 safetensors numpy
  CUDA_VISIBLE_DEVICES= HF_HUB_OFFLINE=1 /root/.cache/hf-ref-venv/bin/python \
      scripts/reference/rope_scaling.py tests/fixtures
"""
import json
import os
import sys

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

ROPE_TYPES = ["linear", "dynamic", "llama3", "yarn"]

ROPE_SCALING = {
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 4.0},
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    },
    "yarn": {"rope_type": "yarn", "factor": 4.0},
}

SEQ_LEN = 40
N_PROMPTS = 2
ATTN_IMPL = "eager"


def make_config(rope_type, rope_scaling):
    return LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=16 if rope_type in ("dynamic", "yarn") else 128,
        # Weights large enough that attention is far from uniform, so the rotary scaling moves
        # the logits by whole units, not 1e-3.
        initializer_range=0.2,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        hidden_act="silu",
        bos_token_id=1,
        eos_token_id=2,
        rope_scaling=None if rope_scaling is None else dict(rope_scaling),
        torch_dtype="float32",
    )


def make_model(rope_type, rope_scaling):
    config = make_config(rope_type, rope_scaling)
    config._attn_implementation = ATTN_IMPL
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.eval()
    return model


def floats(t):
    t = t.detach().to(torch.float32).cpu()
    if t.dim() == 0:
        return float(t)
    return [floats(x) for x in t] if t.dim() > 1 else [float(x) for x in t.tolist()]


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    torch.manual_seed(1)
    input_ids = torch.randint(3, 64, (N_PROMPTS, SEQ_LEN))

    for rope_type in ROPE_TYPES:
        rope_scaling = ROPE_SCALING[rope_type]
        out_dir = os.path.join(out_root, f"rope-{rope_type}")
        os.makedirs(out_dir, exist_ok=True)

        model = make_model(rope_type, rope_scaling)
        rotary = model.model.rotary_emb
        assert rotary.rope_type == rope_type, rotary.rope_type
        inv_freq_initial = rotary.inv_freq.clone()

        with torch.no_grad():
            logits = model(input_ids=input_ids).logits
        assert logits.shape == (N_PROMPTS, SEQ_LEN, 64), logits.shape
        inv_freq = rotary.inv_freq.clone()
        attention_scaling = float(rotary.attention_scaling)

        x = torch.zeros(1, SEQ_LEN, 32, dtype=torch.float32)
        position_ids = torch.arange(SEQ_LEN).unsqueeze(0)
        with torch.no_grad():
            cos, sin = rotary(x, position_ids)
        assert torch.equal(rotary.inv_freq, inv_freq)
        cos, sin = cos[0], sin[0]

        # Same seeded model without rope scaling: same weights, default rope.
        plain = make_model(rope_type, None)
        for (na, a), (nb, b) in zip(model.state_dict().items(), plain.state_dict().items()):
            assert na == nb and torch.equal(a, b), na
        with torch.no_grad():
            plain_logits = plain(input_ids=input_ids).logits
        diff = float((logits - plain_logits).abs().max())

        model.save_pretrained(out_dir, safe_serialization=True)
        gen = os.path.join(out_dir, "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
        os.chmod(os.path.join(out_dir, "model.safetensors"), 0o644)  # safetensors writes 0600
        with open(os.path.join(out_dir, "config.json")) as f:
            saved = json.load(f)
        assert saved["rope_scaling"] == rope_scaling, saved["rope_scaling"]
        assert saved["max_position_embeddings"] == model.config.max_position_embeddings

        ref = {
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "rope_scaling": rope_scaling,
            "max_position_embeddings": model.config.max_position_embeddings,
            "head_dim": model.config.head_dim,
            "attn_implementation": ATTN_IMPL,
            "input_ids": input_ids.tolist(),
            "logits": floats(logits),
            "inv_freq_initial": floats(inv_freq_initial),
            "inv_freq": floats(inv_freq),
            "attention_scaling": attention_scaling,
            "cos": floats(cos),
            "sin": floats(sin),
            "max_abs_diff_vs_unscaled": diff,
        }
        with open(os.path.join(out_dir, "reference.json"), "w") as f:
            json.dump(ref, f)
            f.write("\n")
        print(
            f"{rope_type}: max|logit|={float(logits.abs().max()):.6g} "
            f"max|diff vs unscaled|={diff:.6g} attention_scaling={attention_scaling!r}\n"
            f"  inv_freq_initial={floats(inv_freq_initial)}\n  inv_freq={floats(inv_freq)}"
        )


if __name__ == "__main__":
    main()
