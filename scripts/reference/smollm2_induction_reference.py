"""TransformerLens reference for experiments/induction-smollm2.toml: per-head induction scores of
SmolLM2-135M-Instruct on exactly the tokens circuitry generated (read from the run's
tokens.parquet), computed by TransformerLens's TransformerBridge (raw mode, as the fixtures in
tests/fixtures/ were made).

Run (venv from ../../../shared/reference/setup.sh, plus pyarrow):
  circuitry run experiments/induction-smollm2.toml --out /tmp/out
  HF_HUB_OFFLINE=1 python scripts/reference/smollm2_induction_reference.py PATH.gguf \
      /tmp/out/induction-smollm2/tokens.parquet tests/fixtures/smollm2-induction.reference.json
"""
import json
import os
import sys
import tempfile

import pyarrow.parquet as pq
import torch
from transformer_lens import head_detector
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, tokens_path, out_path = sys.argv[1:4]
d, f = os.path.dirname(os.path.abspath(gguf)), os.path.basename(gguf)
table = pq.read_table(tokens_path).to_pydict()
rows = {}
for p, pos, t in zip(table["prompt"], table["position"], table["token_id"]):
    rows.setdefault(p, {})[pos] = t
ids = torch.tensor([[r[i] for i in range(len(r))] for _, r in sorted(rows.items())])
n, seq = ids.shape
length = (seq - 1) // 2  # [BOS] r r

with tempfile.TemporaryDirectory() as tmp:
    hf = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager")
    # A GGUF-loaded model refuses to save; copy its (dequantised) weights into a plain one.
    config = hf.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(hf.state_dict())
    plain.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(tmp)
    bridge = TransformerBridge.boot_transformers(tmp, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids)
    L, H = bridge.cfg.n_layers, bridge.cfg.n_heads
    induction = torch.zeros(L, H)
    demo = torch.zeros(L, H)
    detect = torch.zeros(L, H)
    for l in range(L):
        pat = cache[f"blocks.{l}.attn.hook_pattern"]  # [n, head, q, k]
        # The stripe key = query - length + 1 (the token after the earlier copy). Entry j of the
        # diagonal is query length - 1 + j. circuitry's induction_score averages the second
        # repeat only (queries length + 1 .. 2 * length); the fixtures' and TransformerLens
        # demos' variant also includes query `length` (the last token of the first repeat).
        stripe = pat.diagonal(offset=1 - length, dim1=-2, dim2=-1)
        induction[l] = stripe[..., 2:].mean(dim=(0, -1))
        demo[l] = stripe[..., 1:].mean(dim=(0, -1))
        # TransformerLens's own detect_head (mul measure), averaged over prompts.
        for b in range(n):
            det = head_detector.get_induction_head_detection_pattern(ids[b : b + 1])
            a = pat[b]
            detect[l] += (a * det).sum(dim=(-2, -1)) / a.sum(dim=(-2, -1))
        detect[l] /= n

ref = {
    "model": f,
    "source": "TransformerLens TransformerBridge (raw), transformers GGUF dequantisation, float32",
    "tokens": ids.tolist(),
    "repeat_length": length,
    "induction_score": induction.tolist(),
    "induction_score_with_first_repeat_end": demo.tolist(),
    "detect_induction_head": detect.tolist(),
}
with open(out_path, "w") as fh:
    json.dump(ref, fh)
print("wrote", out_path, "top heads:", sorted(((induction[l, h].item(), l, h) for l in range(L) for h in range(H)), reverse=True)[:5])
