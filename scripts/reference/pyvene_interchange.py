"""Reference fixture: pyvene 0.1.8 RotatedSpaceIntervention (interchange in a fixed rotated basis,
first k coordinates) on the residual stream (block_output == TransformerLens blocks.L.hook_resid_post)
of tests/fixtures/gpt2-tiny, cross-checked against plain torch forward hooks.

Setup (outside the repo):
  python3 -m venv /root/.cache/causal-ref-venv && /root/.cache/causal-ref-venv/bin/pip install \
    torch==2.6.0 transformers==4.48.3 pyvene==0.1.8 scikit-learn==1.9.1 safetensors numpy
Run (from the repo root):
  HF_HUB_OFFLINE=1 /root/.cache/causal-ref-venv/bin/python scripts/reference/pyvene_interchange.py \
    tests/fixtures/causal/pyvene_interchange.json

pyvene 0.1.8 RotatedSpaceIntervention.forward (pyvene/models/interventions.py), RotateLayer.forward
is x @ weight:
    rotated_base = self.rotate_layer(base); rotated_source = self.rotate_layer(source)
    rotated_base[..., :interchange_dim] = rotated_source[..., :interchange_dim]   (_do_intervention_by_swap)
    output = torch.matmul(rotated_base, self.rotate_layer.weight.T)
i.e. h' = ((h R) with first k coords from (s R)) R^T = h + (s - h) W W^T, W = R[:, :k].
Notes: RotatedSpaceIntervention ignores low_rank_dimension (it defaults interchange_dim to embed_dim,
a full swap), so set_interchange_dim(k) is called; keep_last_dim=True makes the rotation act per
position (otherwise pyvene concatenates the positions into one s*d vector).
"""
import json, os, sys

import numpy as np
import torch
import importlib.metadata, pyvene, transformers
from pyvene import IntervenableConfig, IntervenableModel, RepresentationConfig, RotatedSpaceIntervention
from transformers import GPT2LMHeadModel

torch.set_num_threads(1)
MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/fixtures/gpt2-tiny")
SITES = [("A", 0, [3], 3), ("B", 1, [2, 5], 3), ("C", 0, [6], 64)]
N_PAIRS, SEQ, D = 6, 7, 64

rng = np.random.default_rng(0)  # per pair: base (7 ids) then source (7 ids), ids in 1..127
pairs = [(rng.integers(1, 128, SEQ), rng.integers(1, 128, SEQ)) for _ in range(N_PAIRS)]
base = torch.tensor(np.stack([b for b, _ in pairs]))
source = torch.tensor(np.stack([s for _, s in pairs]))
R_np = np.linalg.qr(np.random.default_rng(1).standard_normal((D, D)))[0].astype(np.float32)
R = torch.from_numpy(R_np)

model = GPT2LMHeadModel.from_pretrained(MODEL, torch_dtype=torch.float32).eval()
with torch.no_grad():
    base_logits = model(input_ids=base).logits
    source_logits = model(input_ids=source).logits


def hook_run(layer, positions, k, full=False):
    """Plain torch: h[:, p] <- h + (s - h) W W^T (or s itself if full) at block `layer` output."""
    W = R[:, :k]
    cache = {}
    h1 = model.transformer.h[layer].register_forward_hook(lambda m, i, o: cache.update(s=o[0].detach().clone()))
    with torch.no_grad():
        model(input_ids=source)
    h1.remove()

    def patch(m, i, o):
        h = o[0].clone()
        sp = cache["s"][:, positions]
        h[:, positions] = sp if full else h[:, positions] + (sp - h[:, positions]) @ W @ W.T
        return (h,) + tuple(o[1:])

    h2 = model.transformer.h[layer].register_forward_hook(patch)
    with torch.no_grad():
        out = model(input_ids=base).logits
    h2.remove()
    return out


def pyvene_run(layer, positions, k):
    iv = RotatedSpaceIntervention(embed_dim=D, keep_last_dim=True, low_rank_dimension=k)
    iv.set_interchange_dim(k)
    with torch.no_grad():
        iv.rotate_layer.weight = R  # orthogonal parametrization's right_inverse: base <- R, original <- -I
    eff = iv.rotate_layer.weight.detach()
    assert (eff - R).abs().max().item() <= 1e-6, "rotation not set"
    cfg = IntervenableConfig(representations=[RepresentationConfig(
        layer=layer, component="block_output", unit="pos", max_number_of_units=len(positions),
        low_rank_dimension=k, intervention=iv)])
    ivm = IntervenableModel(cfg, model)
    ivm.disable_model_gradients()
    loc = [[list(positions)] * N_PAIRS]
    with torch.no_grad():
        _, cf = ivm({"input_ids": base}, [{"input_ids": source}],
                    unit_locations={"sources->base": (loc, loc)})
    return cf.logits, (eff - R).abs().max().item()


def tolist(t):
    return [[[float(x) for x in row] for row in seq] for seq in t.detach().numpy()]


sites, max_diff = [], 0.0
for name, layer, positions, k in SITES:
    pv, rot_err = pyvene_run(layer, positions, k)
    hk = hook_run(layer, positions, k)
    diff = (pv - hk).abs().max().item()
    max_diff = max(max_diff, diff)
    print(f"site {name}: layer {layer} pos {positions} k {k}: |pyvene - hook| = {diff:.3e}, "
          f"|rot - R| = {rot_err:.1e}, |cf - clean base| = {(pv - base_logits).abs().max().item():.3e}")
    if diff > 1e-5:
        sys.exit(f"site {name}: pyvene and hook logits differ by {diff}")
    if k == D:  # full rotation must equal patching in the source's whole residual
        full = (pv - hook_run(layer, positions, k, full=True)).abs().max().item()
        print(f"  k = {D}: |pyvene - whole-residual patch| = {full:.3e}")
        if full > 1e-5:
            sys.exit(f"site {name}: full-rank interchange differs from a whole-residual patch by {full}")
    sites.append({"name": name, "layer": layer, "positions": positions, "k": k, "logits": tolist(pv)})

out = {
    "model": "gpt2-tiny",
    "pairs": [{"base": [int(x) for x in b], "source": [int(x) for x in s]} for b, s in pairs],
    "rotation": [[float(x) for x in row] for row in R_np],
    "sites": sites,
    "base_logits": tolist(base_logits),
    "source_logits": tolist(source_logits),
    "max_abs_diff_pyvene_vs_hooks": max_diff,
    "notes": "RotatedSpaceIntervention: h' = ((h @ R) with coords [:k] from (s @ R)) @ R.T "
             "= h + (s - h) @ R[:, :k] @ R[:, :k].T, applied per position; logits are [pair][position][vocab]",
    "versions": {"pyvene": importlib.metadata.version("pyvene"),
                 "torch": torch.__version__, "transformers": transformers.__version__},
}
os.makedirs(os.path.dirname(os.path.abspath(sys.argv[1])), exist_ok=True)
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
print(f"wrote {sys.argv[1]} ({os.path.getsize(sys.argv[1])} bytes), max diff {max_diff:.3e}")
