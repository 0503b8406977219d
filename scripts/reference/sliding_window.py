"""Reference fixture for sliding-window attention (Mistral's `sliding_window`).

Makes tests/fixtures/mistral-window/: config.json and model.safetensors of a tiny random
MistralForCausalLM (torch.manual_seed(0); hidden 32, 2 layers, 4 heads, 2 key/value heads, vocab
64, sliding_window 8, initializer_range 0.2 so attention is far from uniform), and reference.json
with two 20-token prompts (torch.manual_seed(1); randint(3, 64)), the logits with the window, and
the largest logit change when the same weights run without it (showing the window matters).
Eager attention (a plain masked softmax), float32, CPU.

    CUDA_VISIBLE_DEVICES= HF_HUB_OFFLINE=1 /root/.cache/hf-ref-venv/bin/python \
        scripts/reference/sliding_window.py tests/fixtures

Versions used for the committed fixture: transformers 4.48.3, torch 2.15.0 (CPU), safetensors
0.8.0 (venv made as scripts/reference/rope_scaling.py describes).
"""

import json
import os
import sys

import torch
import transformers
from transformers import MistralConfig, MistralForCausalLM


def config(window):
    return MistralConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        hidden_act="silu",
        bos_token_id=1,
        eos_token_id=2,
        sliding_window=window,
        initializer_range=0.2,
        torch_dtype="float32",
    )


def model(window):
    cfg = config(window)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    m = MistralForCausalLM(cfg).to(torch.float32)
    m.eval()
    return m


def main(root):
    out = os.path.join(root, "mistral-window")
    os.makedirs(out, exist_ok=True)
    windowed = model(8)
    torch.manual_seed(1)
    ids = torch.randint(3, 64, (2, 20))
    with torch.no_grad():
        logits = windowed(ids).logits
        plain = model(None)
        plain.load_state_dict(windowed.state_dict())
        unwindowed = plain(ids).logits
    windowed.save_pretrained(out, safe_serialization=True)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    os.chmod(os.path.join(out, "model.safetensors"), 0o644)
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["sliding_window"] == 8
    moved = float((logits - unwindowed).abs().max())
    reference = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "sliding_window": 8,
        "input_ids": ids.tolist(),
        "logits": [[[float(x) for x in row] for row in p] for p in logits],
        "max_abs_diff_vs_no_window": moved,
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f)
    print(f"max |logit| {float(logits.abs().max()):.4f}, moved by the window {moved:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
