"""Hugging Face transformers reference fixtures for seven decoder architectures, hook by hook.

Makes, for each NAME in ARCHS (gptneox, gemma, gemma2, gemma3, qwen3, olmo2, phi3), the directory
OUT_ROOT/NAME-tiny/ holding:
  config.json            config of a tiny randomly initialised <Arch>ForCausalLM (float32), as
                         model.save_pretrained(dir, safe_serialization=True) writes it
  model.safetensors      its weights (same call; the generation_config.json it writes is deleted,
                         the file is chmod 0644)
  reference.safetensors  (0644) float32 tensors (int64 for the ids) keyed "{set}.{hook}" for two input sets:
                           plain     torch.manual_seed(1); torch.randint(3, 128, (3, 16))
                           repeated  torch.manual_seed(2); s = torch.randint(3, 128, (2, 8));
                                     [BOS id 1] + s + s, shape [2, 17]
                         each with {set}.input_ids [b, t], {set}.logits [b, t, 128] and every hook of
                         HOOK SEMANTICS below that the architecture has
  reference.json         model, transformers_version, torch_version, config (the saved config.json),
                         hooks (the hook names stored for both sets, sorted, input_ids and logits
                         included), max_abs_logit, attention (scaling, softcaps, sliding window and
                         its layers, rotary dims / base / linear factor per layer), notes, and the
                         max_abs_diff_vs_* numbers of FEATURE CHECKS below

Models (torch.manual_seed(0) right before each <Arch>ForCausalLM(config); all: vocab 128, hidden 64,
max_position_embeddings 64, initializer_range 0.2, bos 1, eos 2, pad 0, float32,
attn_implementation="eager", not stored in config.json):
  gptneox-tiny  GPTNeoXForCausalLM: 2 layers, 4 heads (head 16), intermediate 256, rotary_pct 0.25,
                rotary_emb_base 10000, use_parallel_residual, gelu, layer_norm_eps 1e-5, untied,
                attention_bias
  gemma-tiny    GemmaForCausalLM: 2 layers, 4 heads, 1 KV head, head_dim 24, intermediate 128,
                gelu_pytorch_tanh (hidden_act and hidden_activation), rms_norm_eps 1e-6, tied
  gemma2-tiny   Gemma2ForCausalLM: 2 layers, 4 heads, 2 KV heads, head_dim 24, intermediate 128,
                query_pre_attn_scalar 32, attn_logit_softcapping 5, final_logit_softcapping 3,
                sliding_window 4 (default layer_types: layer 0 sliding, layer 1 full), tied
  gemma3-tiny   Gemma3ForCausalLM (gemma3_text): 3 layers, 4 heads, 2 KV heads, head_dim 24,
                intermediate 128, query_pre_attn_scalar 24, sliding_window 4, layer_types
                [sliding, full, sliding], rope_theta 1e6, rope_local_base_freq 1e4, rope_scaling
                linear x4 (global layers only), no softcapping, tied
  qwen3-tiny    Qwen3ForCausalLM: 2 layers, 4 heads, 2 KV heads, head_dim 24, intermediate 128,
                rope_theta 1e6, rms_norm_eps 1e-6, untied
  olmo2-tiny    Olmo2ForCausalLM: 2 layers, 4 heads, 2 KV heads (head 16), intermediate 128,
                rms_norm_eps 1e-6, untied
  phi3-tiny     Phi3ForCausalLM: 2 layers, 4 heads, 2 KV heads (head 16), intermediate 128,
                partial_rotary_factor 0.5, sliding_window 6 (every layer), rope_scaling None, untied
After construction every norm weight is randomised (1 + 0.2 randn; 0.2 randn for the Gemma-family
RMSNorms, whose forward multiplies by 1 + weight), LayerNorm biases and every Linear bias 0.1 randn.

HOOK SEMANTICS (layouts [b, t, d]; per head [b, t, head, d_head], HF's [b, h, t, d] transposed;
attention [b, head, q, k]). Captured with forward hooks / pre-hooks on the HF modules, with the
attention inputs and outputs taken from a wrapper around the modeling module's
eager_attention_forward (the function HF itself calls), and hook_pattern from output_attentions:
  hook_embed                 input of layer 0 (Gemma family: after the sqrt(hidden) normalizer)
  blocks.L.hook_resid_pre    decoder layer input
  blocks.L.ln1.hook_scale    [b, t, 1] of input_layernorm's input: LayerNorm sqrt(var(x) + eps),
                             RMSNorm sqrt(mean(x^2) + eps) (computed in float64 from the input)
  blocks.L.attn.hook_q/k/v   projections with bias, before q/k norm and rotary (fused projections
                             split: GPT-NeoX per head [q k v], Phi-3 [all q; all k; all v])
  blocks.L.attn.hook_q_normed / hook_k_normed   after q_norm / k_norm (Qwen3, Gemma3, OLMo-2)
  blocks.L.attn.hook_rot_q / hook_rot_k          query / key as HF passes them to attention
                             (after rotary; k with the KV heads, not repeated)
  blocks.L.attn.hook_attn_scores  recomputed: rot_q . repeat_kv(rot_k) * HF's scaling, then
                             softcapping where the model has it, -inf where the mask forbids
                             (future keys; keys outside the sliding window, i.e. k <= q - window)
  blocks.L.attn.hook_pattern HF's attention weights
  blocks.L.attn.hook_z       input of the output projection
  blocks.L.ln1_post.hook_scale    post_attention_layernorm's input (Gemma2, Gemma3, OLMo-2)
  blocks.L.hook_attn_out     what attention adds to the residual (after that post norm)
  blocks.L.hook_resid_mid    the residual the MLP branch reads (not GPT-NeoX, parallel residual)
  blocks.L.ln2.hook_scale    input of the MLP's norm (post_attention_layernorm; Gemma2/3:
                             pre_feedforward_layernorm; GPT-NeoX: post_attention_layernorm on the
                             layer input); none in OLMo-2
  blocks.L.mlp.hook_pre      gate projection output (Phi-3: first half of gate_up_proj; GPT-NeoX:
                             dense_h_to_4h output)
  blocks.L.mlp.hook_pre_linear    up projection output (gated MLPs; Phi-3: second half)
  blocks.L.mlp.hook_post     input of the down projection
  blocks.L.ln2_post.hook_scale    post_feedforward_layernorm's input (Gemma2, Gemma3, OLMo-2)
  blocks.L.hook_mlp_out      what the MLP adds (after post_feedforward_layernorm where present)
  blocks.L.hook_resid_post   decoder layer output
  ln_final.hook_scale        final norm's input
Asserted: resid_post = resid_pre + attn_out + mlp_out and resid_mid = resid_pre + attn_out
(1e-5), z = pattern @ v, softmax(attn_scores) = pattern, HF's mask = the causal/window rule above,
rot_q / rot_k = a plain rotary (rotate-half over the first rotary_dim dims) of q(_normed) / k(_normed),
lm_head(final norm) (softcapped) = HF's logits, and the hooked logits = an unhooked forward.

FEATURE CHECKS (same weights, the feature off, max |logits - logits without| over both sets):
gptneox max_abs_diff_vs_sequential_residual; gemma2 max_abs_diff_vs_no_final_softcap,
max_abs_diff_vs_no_attn_softcap, max_abs_diff_vs_no_window (sliding_window 64); gemma3
max_abs_diff_vs_no_window (sliding_window 64, local rope kept), max_abs_diff_vs_no_rope_scaling;
phi3 max_abs_diff_vs_no_window (sliding_window None).

Versions used to make the committed fixtures: Python 3.11.7, torch 2.15.0+cu132 (run on CPU),
transformers 4.57.1, safetensors 0.8.0, numpy 2.4.6.

Run (from the repository root; venv outside the repo):
  python3 -m venv /root/.cache/hf-ref-venv-457
  /root/.cache/hf-ref-venv-457/bin/pip install torch        # CPU wheel index if reachable
  /root/.cache/hf-ref-venv-457/bin/pip install transformers==4.57.1 safetensors numpy
  CUDA_VISIBLE_DEVICES= HF_HUB_OFFLINE=1 /root/.cache/hf-ref-venv-457/bin/python \
      scripts/reference/architectures.py tests/fixtures
"""
import copy
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GemmaConfig,
    GemmaForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    Olmo2Config,
    Olmo2ForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

VOCAB = 128
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    max_position_embeddings=64,
    initializer_range=0.2,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    dtype="float32",
)

ARCHS = {
    "gptneox": (
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=256,
            rotary_pct=0.25,
            rotary_emb_base=10000,
            use_parallel_residual=True,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            tie_word_embeddings=False,
            attention_bias=True,
        ),
    ),
    "gemma": (
        GemmaConfig,
        GemmaForCausalLM,
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=24,
            intermediate_size=128,
            hidden_act="gelu_pytorch_tanh",
            hidden_activation="gelu_pytorch_tanh",
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
        ),
    ),
    "gemma2": (
        Gemma2Config,
        Gemma2ForCausalLM,
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=24,
            intermediate_size=128,
            hidden_activation="gelu_pytorch_tanh",
            rms_norm_eps=1e-6,
            query_pre_attn_scalar=32,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=3.0,
            sliding_window=4,
            tie_word_embeddings=True,
        ),
    ),
    "gemma3": (
        Gemma3TextConfig,
        Gemma3ForCausalLM,
        dict(
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=24,
            intermediate_size=128,
            hidden_activation="gelu_pytorch_tanh",
            rms_norm_eps=1e-6,
            query_pre_attn_scalar=24,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            rope_theta=1e6,
            rope_local_base_freq=10000.0,
            rope_scaling={"rope_type": "linear", "factor": 4.0},
            attn_logit_softcapping=None,
            final_logit_softcapping=None,
            tie_word_embeddings=True,
        ),
    ),
    "qwen3": (
        Qwen3Config,
        Qwen3ForCausalLM,
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=24,
            intermediate_size=128,
            rope_theta=1e6,
            rms_norm_eps=1e-6,
            hidden_act="silu",
            tie_word_embeddings=False,
        ),
    ),
    "olmo2": (
        Olmo2Config,
        Olmo2ForCausalLM,
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            rms_norm_eps=1e-6,
            hidden_act="silu",
            tie_word_embeddings=False,
        ),
    ),
    "phi3": (
        Phi3Config,
        Phi3ForCausalLM,
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            partial_rotary_factor=0.5,
            sliding_window=6,
            rope_scaling=None,
            rms_norm_eps=1e-5,
            hidden_act="silu",
            tie_word_embeddings=False,
        ),
    ),
}

# Same weights, one feature off: name -> {key: config overrides}.
FEATURE_OFF = {
    "gptneox": {"max_abs_diff_vs_sequential_residual": dict(use_parallel_residual=False)},
    "gemma2": {
        "max_abs_diff_vs_no_final_softcap": dict(final_logit_softcapping=None),
        "max_abs_diff_vs_no_attn_softcap": dict(attn_logit_softcapping=None),
        "max_abs_diff_vs_no_window": dict(sliding_window=64),
    },
    "gemma3": {
        "max_abs_diff_vs_no_window": dict(sliding_window=64),
        "max_abs_diff_vs_no_rope_scaling": dict(rope_scaling=None),
    },
    "phi3": {"max_abs_diff_vs_no_window": dict(sliding_window=None)},
}

GEMMA_FAMILY = ("gemma", "gemma2", "gemma3")
POST_NORMS = ("gemma2", "gemma3", "olmo2")  # norms on the attention / MLP outputs


def make_model(name, **overrides):
    cfg_cls, model_cls, kw = ARCHS[name]
    kw = {**COMMON, **copy.deepcopy(kw), **overrides}
    config = cfg_cls(**kw)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = model_cls(config).to(torch.float32)
    model.eval()
    return model


@torch.no_grad()
def randomise(name, model):
    """Norm weights 1 + 0.2 randn (Gemma RMSNorms: 0.2 randn), LayerNorm and Linear biases 0.1 randn."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.LayerNorm):
            mod.weight.copy_(1 + 0.2 * torch.randn_like(mod.weight))
            mod.bias.copy_(0.1 * torch.randn_like(mod.bias))
        elif "RMSNorm" in type(mod).__name__:
            w = 0.2 * torch.randn_like(mod.weight)
            mod.weight.copy_(w if name in GEMMA_FAMILY else 1 + w)
        elif isinstance(mod, torch.nn.Linear) and mod.bias is not None:
            mod.bias.copy_(0.1 * torch.randn_like(mod.bias))


def base(model):
    return model.gpt_neox if hasattr(model, "gpt_neox") else model.model


def norm_eps(norm):
    for attr in ("eps", "variance_epsilon"):
        if hasattr(norm, attr):
            return float(getattr(norm, attr))
    raise AttributeError(type(norm).__name__)


def norm_scale(norm, x):
    x = x.to(torch.float64)
    if isinstance(norm, torch.nn.LayerNorm):
        x = x - x.mean(-1, keepdim=True)
    return torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm_eps(norm)).to(torch.float32)


def layer_parts(name, layer):
    """The modules of one decoder layer that the hooks read."""
    attn = layer.attention if name == "gptneox" else layer.self_attn
    p = {"attn": attn, "mlp": layer.mlp}
    if name != "olmo2":
        p["ln1"] = layer.input_layernorm
    if name in POST_NORMS:
        p["ln1_post"] = layer.post_attention_layernorm
        p["ln2_post"] = layer.post_feedforward_layernorm
    if name in ("gemma2", "gemma3"):
        p["ln2"] = layer.pre_feedforward_layernorm
    elif name != "olmo2":
        p["ln2"] = layer.post_attention_layernorm
    p["o_proj"] = attn.dense if name == "gptneox" else attn.o_proj
    return p


def head_dim(model):
    c = model.config
    return getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads


class Capture:
    """Forward hooks and an eager-attention wrapper filling self.cap for one forward."""

    def __init__(self, name, model):
        self.name, self.model = name, model
        self.cap, self.attn_calls, self.handles = {}, {}, []
        c = model.config
        self.dh = head_dim(model)
        self.nh, self.nkv = c.num_attention_heads, getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        b = base(model)
        for L, layer in enumerate(b.layers):
            self.hook_layer(L, layer)
        final = b.final_layer_norm if name == "gptneox" else b.norm
        self.pre(final, lambda x: self.put("ln_final.hook_scale", norm_scale(final, x)))
        self.post(final, lambda out: self.put("_final_norm_out", out))
        self.module = sys.modules[type(layer_parts(name, b.layers[0])["attn"]).__module__]
        self.orig_eager = self.module.eager_attention_forward

        def eager(module, query, key, value, attention_mask, **kwargs):
            out, weights = self.orig_eager(module, query, key, value, attention_mask, **kwargs)
            self.attn_calls[module.layer_idx] = dict(
                q=query, k=key, v=value, mask=attention_mask, kwargs=kwargs, out=out, weights=weights
            )
            return out, weights

        self.module.eager_attention_forward = eager

    def put(self, key, t):
        assert key not in self.cap, key
        self.cap[key] = t.detach().clone().to(torch.float32)

    def pre(self, mod, fn):
        self.handles.append(mod.register_forward_pre_hook(lambda m, args: fn(args[0])))

    def post(self, mod, fn):
        self.handles.append(
            mod.register_forward_hook(lambda m, args, out: fn(out[0] if isinstance(out, tuple) else out))
        )

    def hook_layer(self, L, layer):
        name, dh, nh = self.name, self.dh, self.nh
        P = f"blocks.{L}."
        p = layer_parts(name, layer)
        attn, mlp = p["attn"], p["mlp"]

        def layer_pre(m, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            self.put(P + "hook_resid_pre", x)
            if L == 0:
                self.put("hook_embed", x)

        self.handles.append(layer.register_forward_pre_hook(layer_pre, with_kwargs=True))
        self.post(layer, lambda out: self.put(P + "hook_resid_post", out))

        def heads(t):
            return t.reshape(*t.shape[:2], -1, dh)

        for ln in ("ln1", "ln2", "ln1_post", "ln2_post"):
            if ln in p:
                norm = p[ln]
                self.pre(norm, lambda x, norm=norm, ln=ln: self.put(P + f"{ln}.hook_scale", norm_scale(norm, x)))

        # q, k, v before any norm / rotary
        if name == "gptneox":
            def qkv(out):
                q, k, v = out.view(*out.shape[:2], nh, 3 * dh).chunk(3, dim=-1)
                for n, t in (("q", q), ("k", k), ("v", v)):
                    self.put(P + f"attn.hook_{n}", t)
            self.post(attn.query_key_value, qkv)
        elif name == "phi3":
            def qkv(out):
                nq, nk = nh * dh, self.nkv * dh
                for n, t in (("q", out[..., :nq]), ("k", out[..., nq:nq + nk]), ("v", out[..., nq + nk:])):
                    self.put(P + f"attn.hook_{n}", heads(t))
            self.post(attn.qkv_proj, qkv)
        else:
            for n in ("q", "k", "v"):
                self.post(getattr(attn, f"{n}_proj"), lambda out, n=n: self.put(P + f"attn.hook_{n}", heads(out)))
        if hasattr(attn, "q_norm"):
            for n in ("q", "k"):
                def normed(out, n=n):
                    if name == "gemma3":  # applied on [b, h, t, d]
                        out = out.transpose(1, 2)
                    self.put(P + f"attn.hook_{n}_normed", heads(out))
                self.post(getattr(attn, f"{n}_norm"), normed)
        self.pre(p["o_proj"], lambda x: self.put(P + "attn.hook_z", heads(x)))
        if "ln1_post" in p:
            self.post(p["ln1_post"], lambda out: self.put(P + "hook_attn_out", out))
        else:
            self.post(p["o_proj"], lambda out: self.put(P + "hook_attn_out", out))
        # resid_mid: the residual the MLP branch reads
        if name == "olmo2":
            self.pre(mlp, lambda x: self.put(P + "hook_resid_mid", x))
        elif name != "gptneox":
            self.pre(p["ln2"], lambda x: self.put(P + "hook_resid_mid", x))
        # MLP
        if name == "gptneox":
            self.post(mlp.dense_h_to_4h, lambda out: self.put(P + "mlp.hook_pre", out))
            self.pre(mlp.dense_4h_to_h, lambda x: self.put(P + "mlp.hook_post", x))
        elif name == "phi3":
            def gate_up(out):
                gate, up = out.chunk(2, dim=-1)
                self.put(P + "mlp.hook_pre", gate)
                self.put(P + "mlp.hook_pre_linear", up)
            self.post(mlp.gate_up_proj, gate_up)
            self.pre(mlp.down_proj, lambda x: self.put(P + "mlp.hook_post", x))
        else:
            self.post(mlp.gate_proj, lambda out: self.put(P + "mlp.hook_pre", out))
            self.post(mlp.up_proj, lambda out: self.put(P + "mlp.hook_pre_linear", out))
            self.pre(mlp.down_proj, lambda x: self.put(P + "mlp.hook_post", x))
        if "ln2_post" in p:
            self.post(p["ln2_post"], lambda out: self.put(P + "hook_mlp_out", out))
        else:
            self.post(mlp, lambda out: self.put(P + "hook_mlp_out", out))

    def remove(self):
        for h in self.handles:
            h.remove()
        self.module.eager_attention_forward = self.orig_eager


def layer_window(model, L):
    """The sliding window of layer L as HF applies it (None: full causal attention)."""
    c = model.config
    types = getattr(c, "layer_types", None)
    if types is not None:
        return c.sliding_window if types[L] == "sliding_attention" else None
    return getattr(c, "sliding_window", None)  # Phi-3: every layer (one mask for all)


def rope_of_layer(name, model, L):
    """(rotary_dim, base, linear factor) of layer L, read from the config."""
    c, dh = model.config, head_dim(model)
    rot = int(dh * getattr(c, "partial_rotary_factor", 1.0))
    if name == "gemma3" and c.layer_types[L] == "sliding_attention":
        return rot, float(c.rope_local_base_freq), 1.0
    scaling = getattr(c, "rope_scaling", None) or {}
    factor = float(scaling.get("factor", 1.0)) if scaling.get("rope_type") == "linear" else 1.0
    return rot, float(c.rope_theta), factor


def plain_rotary(x, rot, base_, factor):
    """x [b, t, h, d]: rotate-half rotary over the first rot dims, positions 0.. divided by factor."""
    t = x.shape[1]
    x64 = x.to(torch.float64)
    inv = 1.0 / (base_ ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot)) / factor
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)[None, :, None, :]
    xr, xp = x64[..., :rot], x64[..., rot:]
    half = rot // 2
    rotated = torch.cat([-xr[..., half:], xr[..., :half]], dim=-1)
    return torch.cat([xr * ang.cos() + rotated * ang.sin(), xp], dim=-1).to(torch.float32)


def close(a, b, atol, what):
    err = float((a - b).abs().max())
    assert a.shape == b.shape and err <= atol, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}, err {err}"
    return err


@torch.no_grad()
def run_set(name, model, ids):
    """One forward with every hook; returns {hook: tensor} (already checked)."""
    c = model.config
    capture = Capture(name, model)
    try:
        out = model(input_ids=ids, output_attentions=True, use_cache=False)
    finally:
        capture.remove()
    cap, calls = capture.cap, capture.attn_calls
    b, t = ids.shape
    nh, nkv = capture.nh, capture.nkv
    rep = nh // nkv
    logits = out.logits
    plain_logits = model(input_ids=ids, use_cache=False).logits
    assert torch.equal(logits, plain_logits), "hooks changed the logits"

    res = {"input_ids": ids.clone(), "logits": logits.detach().clone()}
    for L in range(c.num_hidden_layers):
        P = f"blocks.{L}."
        call = calls[L]
        rq, rk, v = call["q"], call["k"], call["v"]  # [b, h, t, d]
        assert rq.shape == (b, nh, t, capture.dh) and rk.shape == (b, nkv, t, capture.dh), (rq.shape, rk.shape)
        cap[P + "attn.hook_rot_q"] = rq.transpose(1, 2).clone()
        cap[P + "attn.hook_rot_k"] = rk.transpose(1, 2).clone()
        close(v.transpose(1, 2), cap[P + "attn.hook_v"], 0.0, "v")
        pattern = out.attentions[L]
        assert torch.equal(pattern, call["weights"])
        cap[P + "attn.hook_pattern"] = pattern.clone()

        # rotary as described (rotate-half on the first rotary_dim dims)
        rot, base_, factor = rope_of_layer(name, model, L)
        for n in ("q", "k"):
            src = cap.get(P + f"attn.hook_{n}_normed", cap[P + f"attn.hook_{n}"])
            close(plain_rotary(src, rot, base_, factor), cap[P + f"attn.hook_rot_{n}"], 1e-5, f"L{L} rot_{n}")

        # scores: q . k * scaling, softcap, -inf where masked
        scaling = call["kwargs"]["scaling"]
        softcap = call["kwargs"].get("softcap")
        k_rep = rk.repeat_interleave(rep, dim=1)
        scores = torch.matmul(rq, k_rep.transpose(2, 3)) * scaling
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        qi = torch.arange(t)[:, None]
        ki = torch.arange(t)[None, :]
        allowed = ki <= qi
        window = layer_window(model, L)
        if window is not None:
            allowed &= ki > qi - window
        mask = call["mask"]
        assert mask is not None and mask.shape == (b, 1, t, t), None if mask is None else mask.shape
        hf_allowed = mask == 0
        assert torch.equal(hf_allowed, allowed.expand_as(hf_allowed)), f"L{L} mask differs from the rule"
        assert bool((mask[~hf_allowed] <= torch.finfo(mask.dtype).min / 2).all())
        scores = scores.masked_fill(~allowed, float("-inf"))
        cap[P + "attn.hook_attn_scores"] = scores
        close(torch.softmax(scores, dim=-1), pattern, 1e-5, f"L{L} softmax(scores) vs pattern")
        z = torch.matmul(pattern, v.repeat_interleave(rep, dim=1)).transpose(1, 2)
        close(z, cap[P + "attn.hook_z"], 1e-5, f"L{L} z vs pattern @ v")

        pre, post = cap[P + "hook_resid_pre"], cap[P + "hook_resid_post"]
        attn_out, mlp_out = cap[P + "hook_attn_out"], cap[P + "hook_mlp_out"]
        close(pre + attn_out + mlp_out, post, 1e-5, f"L{L} resid_post")
        if P + "hook_resid_mid" in cap:
            close(pre + attn_out, cap[P + "hook_resid_mid"], 1e-5, f"L{L} resid_mid")
        if L + 1 < c.num_hidden_layers:
            assert torch.equal(post, cap[f"blocks.{L + 1}.hook_resid_pre"])

    final = cap.pop("_final_norm_out")
    head = model.embed_out if name == "gptneox" else model.lm_head
    recomputed = head(final)
    cap_final = getattr(c, "final_logit_softcapping", None)
    if cap_final is not None:
        recomputed = torch.tanh(recomputed / cap_final) * cap_final
    close(recomputed, logits, 1e-5, "lm_head(final norm) vs logits")
    res.update(cap)
    return res


def inputs():
    torch.manual_seed(1)
    plain = torch.randint(3, VOCAB, (3, 16))
    torch.manual_seed(2)
    seq = torch.randint(3, VOCAB, (2, 8))
    repeated = torch.cat([torch.ones(2, 1, dtype=torch.long), seq, seq], dim=1)
    return {"plain": plain, "repeated": repeated}


def attention_info(name, model):
    c = model.config
    layers = []
    for L in range(c.num_hidden_layers):
        rot, base_, factor = rope_of_layer(name, model, L)
        attn = layer_parts(name, base(model).layers[L])["attn"]
        layers.append(
            {"sliding_window": layer_window(model, L), "rotary_dim": rot, "rope_base": base_,
             "rope_linear_factor": factor, "scaling": float(attn.scaling)}
        )
    return {
        "head_dim": head_dim(model),
        "attn_logit_softcapping": getattr(c, "attn_logit_softcapping", None),
        "final_logit_softcapping": getattr(c, "final_logit_softcapping", None),
        "sliding_layers": [L for L, x in enumerate(layers) if x["sliding_window"] is not None],
        "layers": layers,
    }


NOTES = {
    "gptneox": [
        "query_key_value output is viewed [b, t, heads, 3*d_head] and chunked: per head [q k v].",
        "Rotary on the first rotary_ndims = int(16 * 0.25) = 4 dims of each head, rotate-half within "
        "those 4 (pairs (0,2), (1,3)), inv_freq = 10000^(-[0,2]/4); the other 12 dims pass through.",
        "scaling = head_size ** -0.5 (1/4); parallel residual: x + attn(ln1(x)) + mlp(ln2(x)), no resid_mid.",
        "The saved config holds rotary_pct and partial_rotary_factor (0.25), rotary_emb_base and rope_theta (10000).",
    ],
    "gemma": [
        "Embedding times sqrt(64) = 8 (a float32 tensor) before layer 0; RMSNorm output * (1 + weight).",
        "GemmaMLP reads config.hidden_act (hidden_activation is not read by the 4.57 modeling code); both "
        "are gelu_pytorch_tanh here. Multi-query: 1 KV head shared by 4 query heads. scaling = head_dim ** -0.5.",
    ],
    "gemma2": [
        "Default layer_types in 4.57: layer i is sliding iff (i + 1) % 2 == 1, so layer 0 sliding, layer 1 full.",
        "Sliding window (masking_utils.sliding_window_overlay): key k visible from query q iff q - 4 < k <= q "
        "(the query and 3 before it).",
        "Attention softcap is applied to scaled scores before the mask: tanh(s / 5) * 5, s = q.k * 32 ** -0.5; "
        "final logits tanh(l / 3) * 3.",
        "Post-attention and post-feedforward RMSNorms sit on the branch outputs (attn_out/mlp_out are after them).",
    ],
    "gemma3": [
        "Embedding scaled by Gemma3TextScaledWordEmbedding (embed_scale sqrt(64) = 8); q_norm / k_norm are "
        "Gemma RMSNorms (1 + weight) over head_dim, applied before rotary.",
        "rope_scaling (linear x4) applies only to the global (full_attention) layers: rotary_emb uses "
        "rope_theta 1e6 with the scaling; rotary_emb_local is built from a copy of the config with "
        "rope_theta = rope_local_base_freq (1e4) and rope_scaling {'rope_type': 'default'}.",
        "Sliding window as Gemma2: q - 4 < k <= q, on the layers whose layer_types entry is sliding_attention.",
        "scaling = query_pre_attn_scalar ** -0.5 = 24 ** -0.5 (here equal to head_dim ** -0.5).",
    ],
    "qwen3": [
        "q_norm / k_norm are RMSNorms over head_dim applied per head before rotary; all layers full attention "
        "(use_sliding_window False, config.sliding_window None).",
    ],
    "olmo2": [
        "No pre-norms: attention and MLP read the residual directly; q_norm / k_norm are RMSNorms over the "
        "whole flat projection (heads*head_dim = 64 for q, 32 for k) before the reshape and rotary.",
        "post_attention_layernorm / post_feedforward_layernorm normalise the branch outputs (ln1_post, ln2_post).",
    ],
    "phi3": [
        "qkv_proj output is [all q | all k | all v]; gate_up_proj output is [gate | up], act(gate) * up.",
        "partial_rotary_factor 0.5: rotary on the first 8 of 16 dims (rotate-half within them).",
        "sliding_window applies to every layer (Phi3Model builds one create_sliding_window_causal_mask): key k "
        "visible from query q iff q - 6 < k <= q; the sliding_window kwarg passed to eager attention is unused.",
    ],
}
COMMON_NOTES = [
    "Eager attention: softmax in float32 then cast to the query dtype (float32 here, so no effect).",
    "hook_attn_scores is recomputed from the captured rot_q / rot_k; every other hook is a captured HF "
    "tensor (norm scales computed in float64 from the norm's captured input).",
    "hooks lists names without the set prefix; every name is stored for both sets.",
]


def main(out_root):
    sets = inputs()
    for name in ARCHS:
        model = make_model(name)
        randomise(name, model)
        results = {s: run_set(name, model, ids) for s, ids in sets.items()}
        hooks = sorted(results["plain"])
        assert hooks == sorted(results["repeated"])
        max_abs_logit = max(float(r["logits"].abs().max()) for r in results.values())
        assert max_abs_logit < 50, max_abs_logit

        extra = {}
        for key, overrides in FEATURE_OFF.get(name, {}).items():
            other = make_model(name, **overrides)
            other.load_state_dict(model.state_dict())
            with torch.no_grad():
                diffs = [
                    float((other(input_ids=ids, use_cache=False).logits - results[s]["logits"]).abs().max())
                    for s, ids in sets.items()
                ]
            extra[key] = max(diffs)

        out_dir = os.path.join(out_root, f"{name}-tiny")
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        gen = os.path.join(out_dir, "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
        os.chmod(os.path.join(out_dir, "model.safetensors"), 0o644)
        with open(os.path.join(out_dir, "config.json")) as f:
            saved = json.load(f)

        # The saved checkpoint reloads to the same logits.
        cfg_cls, model_cls, _ = ARCHS[name]
        reloaded = model_cls.from_pretrained(out_dir, attn_implementation="eager", dtype=torch.float32).eval()
        with torch.no_grad():
            for s, ids in sets.items():
                assert torch.equal(reloaded(input_ids=ids, use_cache=False).logits, results[s]["logits"]), s

        tensors = {}
        for s, r in results.items():
            for k, v in r.items():
                v = v.contiguous()
                tensors[f"{s}.{k}"] = v if k == "input_ids" else v.to(torch.float32)
        save_file(tensors, os.path.join(out_dir, "reference.safetensors"), metadata={"format": "pt"})
        os.chmod(os.path.join(out_dir, "reference.safetensors"), 0o644)

        info = attention_info(name, model)
        notes = NOTES[name] + COMMON_NOTES
        if name == "gemma3":
            rot_g, rot_l = base(model).rotary_emb, base(model).rotary_emb_local
            assert rot_g.rope_type == "linear" and rot_l.rope_type == "default", (rot_g.rope_type, rot_l.rope_type)
            assert "sliding_window_pattern" not in saved and saved["layer_types"] == model.config.layer_types
            notes.append(
                f"The saved config holds layer_types {saved['layer_types']} (what 4.57 reads) and also the "
                f"private '_sliding_window_pattern': {saved.get('_sliding_window_pattern')} (the unused "
                "default of the BC sliding_window_pattern kwarg, inconsistent with layer_types); there is no "
                "sliding_window_pattern key. rope_scaling is saved as given."
            )
        ref = {
            "model": f"{name}-tiny",
            "architecture": type(model).__name__,
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "config": saved,
            "hooks": hooks,
            "max_abs_logit": max_abs_logit,
            "attention": info,
            **extra,
            "notes": notes,
        }
        with open(os.path.join(out_dir, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        sizes = {fn: os.path.getsize(os.path.join(out_dir, fn)) for fn in sorted(os.listdir(out_dir))}
        print(f"{name}-tiny: max|logit| {max_abs_logit:.4f} {extra} sliding layers {info['sliding_layers']}")
        print(f"  files {sizes} total {sum(sizes.values())}")
        print(f"  hooks ({len(hooks)}): {sorted({h.split('.', 2)[-1] if h.startswith('blocks.') else h for h in hooks})}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
