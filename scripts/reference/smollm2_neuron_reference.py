"""TransformerLens reference for neuron statistics and effective dimension of SmolLM2-135M-Instruct
on fortune-cookie text, computed by TransformerLens's TransformerBridge (raw mode, as the fixtures
in tests/fixtures/ were made) from the GGUF dequantised by transformers, in float32.

Run (venv from ../../../shared/reference/setup.sh):
  HF_HUB_OFFLINE=1 ~/.cache/circuitry-reference-venv/bin/python \
      scripts/reference/smollm2_neuron_reference.py \
      /root/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      data/corpus/fortunes-sample.txt tests/fixtures/smollm2-neurons.reference.json

Prompts: the corpus is split into documents at lines that are exactly `%` (after trimming
trailing whitespace, as circuitry's corpus reader does); a document's trailing newline is
stripped and whitespace-only documents are skipped. Each document is tokenized with the HF
tokenizer loaded from the GGUF (add_special_tokens=False, no BOS). Documents are scanned in
corpus order and the first PROMPT_LEN tokens of every document with at least PROMPT_LEN tokens
are kept, until N_PROMPTS prompts are found. (Fortunes are short: only 2 of the first 48
documents reach 24 tokens, so the scan is not limited to the first 48 documents; "documents" in
the fixture gives each prompt's source document index, 0-based, in corpus order.)

Hook names: TransformerBridge exposes TransformerLens's classic names as aliases, used here:
  blocks.{l}.mlp.hook_post    (= blocks.{l}.mlp.out.hook_in, act(gate) * up, input of down_proj)
  blocks.{l}.hook_resid_post  (= blocks.{l}.hook_out)
  blocks.{l}.attn.hook_result [batch, pos, head, d_model], present only after
      bridge.set_use_attn_result(True); each head's z_h @ W_O[h] without output bias (SmolLM2's
      o_proj has no bias). The script checks it against einsum(hook_z, o_proj weight) and that
      the heads sum to blocks.{l}.attn.hook_out.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoModelForCausalLM, AutoTokenizer

N_PROMPTS, PROMPT_LEN = 32, 24
NEURON_LAYERS = [0, 7, 15, 23, 29]
NEURONS_PER_LAYER = 6
TOP_K = 10
RESID_LAYERS = [0, 15, 29]
HEAD_LAYER, HEADS = 15, [0, 4, 8]


def sig(x, digits=7):
    return float(f"{float(x):.{digits}g}")


def split_documents(text, sep="%"):
    docs, cur = [], []
    for line in text.split("\n"):
        if line.rstrip() == sep:
            docs.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("\n".join(cur))
    # Joining lines with "\n" already drops the newline before a separator line; strip the
    # file's final newline likewise.
    docs = [d[:-1] if d.endswith("\n") else d for d in docs]
    return [d for d in docs if d.strip()]


def dimension(x, hook, head):
    x = np.asarray(x, dtype=np.float64)
    cov = np.cov(x, rowvar=False)
    ev = np.clip(np.sort(np.linalg.eigvalsh(cov))[::-1], 0.0, None)
    total = ev.sum()
    frac = np.cumsum(ev) / total
    return {
        "hook": hook,
        "head": head,
        "eigenvalues": [sig(v) for v in ev[:50]],
        "total_variance": sig(total),
        "participation_ratio": sig(total**2 / (ev**2).sum()),
        "components_90": int(np.argmax(frac >= 0.9) + 1),
        "components_99": int(np.argmax(frac >= 0.99) + 1),
    }


gguf, corpus_path, out_path = sys.argv[1:4]
d, f = os.path.dirname(os.path.abspath(gguf)), os.path.basename(gguf)

with tempfile.TemporaryDirectory() as tmp:
    hf = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager")
    # A GGUF-loaded model refuses to save; copy its (dequantised) weights into a plain one.
    config = hf.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(hf.state_dict())
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(d, gguf_file=f)
    tokenizer.save_pretrained(tmp)
    bridge = TransformerBridge.boot_transformers(tmp, device="cpu", dtype=torch.float32)
    bridge.set_use_attn_result(True)

    with open(corpus_path, encoding="utf-8") as fh:
        documents = split_documents(fh.read())
    tokens, sources = [], []
    for i, doc in enumerate(documents):
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        if len(ids) >= PROMPT_LEN:
            tokens.append(ids[:PROMPT_LEN])
            sources.append(i)
            if len(tokens) == N_PROMPTS:
                break
    assert len(tokens) == N_PROMPTS, f"only {len(tokens)} documents have {PROMPT_LEN} tokens"
    ids = torch.tensor(tokens)

    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids)
    cfg = bridge.cfg
    d_mlp, d_model, n_heads, d_head = cfg.d_mlp, cfg.d_model, cfg.n_heads, cfg.d_head

    # Neurons.
    rng = np.random.default_rng(0)
    neurons = []
    for l in NEURON_LAYERS:
        post = cache[f"blocks.{l}.mlp.hook_post"]
        assert post.shape == (N_PROMPTS, PROMPT_LEN, d_mlp), post.shape
        assert torch.equal(post, cache[f"blocks.{l}.mlp.out.hook_in"])
        post = post.numpy()
        for n in sorted(int(v) for v in rng.choice(d_mlp, NEURONS_PER_LAYER, replace=False)):
            a = post[:, :, n]  # float32 [prompt, pos]
            entries = [(float(a[p, q]), p, q) for p in range(N_PROMPTS) for q in range(PROMPT_LEN)]
            top = sorted(entries, key=lambda e: (-e[0], e[1], e[2]))[:TOP_K]
            bottom = sorted(entries, key=lambda e: (e[0], e[1], e[2]))[:TOP_K]
            a64 = a.astype(np.float64)
            neurons.append({
                "layer": l,
                "neuron": n,
                "top": [[p, q, sig(v)] for v, p, q in top],
                "bottom": [[p, q, sig(v)] for v, p, q in bottom],
                "mean": sig(a64.mean()),
                "std": sig(a64.std(ddof=0)),
                "max": sig(a64.max()),
                "min": sig(a64.min()),
                "frac_positive": sig((a > 0).mean()),
            })

    # Effective dimension.
    dims = []
    for l in RESID_LAYERS:
        hook = f"blocks.{l}.hook_resid_post"
        x = cache[hook].reshape(-1, d_model).numpy()
        dims.append(dimension(x, hook, None))
    hook = f"blocks.{HEAD_LAYER}.attn.hook_result"
    result = cache[hook]
    assert result.shape == (N_PROMPTS, PROMPT_LEN, n_heads, d_model), result.shape
    # Cross-check: z_h @ W_O[h] from the HF o_proj weight [d_model, n_heads * d_head].
    w_o = plain.model.layers[HEAD_LAYER].self_attn.o_proj.weight.detach().T.reshape(n_heads, d_head, d_model)
    mine = torch.einsum("bphd,hdm->bphm", cache[f"blocks.{HEAD_LAYER}.attn.hook_z"], w_o)
    err = (mine - result).abs().max().item()
    err_sum = (result.sum(dim=2) - cache[f"blocks.{HEAD_LAYER}.attn.hook_out"]).abs().max().item()
    print(f"hook_result vs einsum(hook_z, W_O): max abs diff {err:.3g}; sum over heads vs hook_out: {err_sum:.3g}")
    assert err < 1e-4 and err_sum < 1e-4
    for h in HEADS:
        dims.append(dimension(result[:, :, h, :].reshape(-1, d_model).numpy(), hook, h))

ref = {
    "model": f,
    "source": "TransformerLens TransformerBridge (raw), transformers GGUF dequantisation, float32",
    "d_mlp": d_mlp,
    "d_model": d_model,
    "tokens": tokens,
    "documents": sources,
    "neurons": neurons,
    "dimension": dims,
}
with open(out_path, "w") as fh:
    json.dump(ref, fh)
print("wrote", out_path, os.path.getsize(out_path), "bytes; documents", sources)
nr = neurons[0]
print(f"layer {nr['layer']} neuron {nr['neuron']} top-3:", nr["top"][:3])
for e in dims:
    print(e["hook"], "head", e["head"], "participation ratio", e["participation_ratio"],
          "components_90/99", e["components_90"], e["components_99"])
