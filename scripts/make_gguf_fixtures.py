"""Writes the small GGUF fixtures that circuitry-models' GGUF tests read, with the values an
independent implementation (the Python `gguf` package and Hugging Face transformers) derives from
them. Output goes to tests/fixtures/gguf/ (all files together stay well under 200 KB):

- `quants.gguf`: one small tensor per GGML data type circuitry dequantizes (F32, F16, BF16, Q8_0,
  Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), a 3-D tensor (to check the order of
  dimensions), one tensor of a type circuitry does not support (IQ2_XXS), metadata of every value
  type (nested and string arrays included), and a non-default `general.alignment` (64).
  Legacy types are quantized from seeded random data with `gguf.quants.quantize`; the `gguf`
  package cannot quantize K-quants, so their blocks are seeded random bytes with finite scales.
- `quants.expected.safetensors`: for each tensor name above, the f32 values that
  `gguf.quants.dequantize` produces, in row-major (numpy) shape.
- `tokenizer-<pre>.gguf` (`<pre>` = `llama-bpe`, `qwen2`, `smollm`): a tiny byte-level BPE
  vocabulary (the 256 byte symbols plus a few merges, control tokens, a user-defined token, a
  control token outside the byte alphabet, a token that must be re-spelled in the byte alphabet)
  with `tokenizer.ggml.pre` set to `<pre>`, and a Llama configuration so that transformers loads it.
  `tokenizer-smollm-space-prefix.gguf` also sets `tokenizer.ggml.add_space_prefix`, which
  transformers (like llama.cpp) ignores for byte-level vocabularies.
- `tokenizer.expected.json`: for each of those files and a list of texts, the token ids (and the
  decoded text) that `AutoTokenizer.from_pretrained(dir, gguf_file=...)` gives.
- `llama-bias.gguf`: a tiny random Llama (2 layers, grouped-query attention, biases on q/k/v as
  Qwen2-style files converted as `llama` have, a separate `output.weight`) in F32, with the query
  and key rows (and biases) permuted exactly as llama.cpp's `convert_hf_to_gguf.py` does.
- `llama-bias.expected.safetensors`: the same tensors under Hugging Face names, unpermuted (checked
  here to be what transformers' `LlamaTensorProcessor` recovers from the file).

Run with the reference virtual environment (numpy, gguf, safetensors, transformers):

    /root/.cache/circuitry-reference-venv/bin/python scripts/make_gguf_fixtures.py

The output is deterministic (fixed seeds); rerunning rewrites identical files.
"""

import json
import os
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")

# Types that `gguf.quants.quantize` can produce from floats.
QUANTIZABLE = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
# K-quants: (type, byte offsets of the f16 super-block scales inside a block).
K_QUANTS = [
    (T.Q2_K, [80, 82]),  # scales[16], qs[64], d, dmin
    (T.Q3_K, [108]),  # hmask[32], qs[64], scales[12], d
    (T.Q4_K, [0, 2]),  # d, dmin, scales[12], qs[128]
    (T.Q5_K, [0, 2]),  # d, dmin, scales[12], qh[32], qs[128]
    (T.Q6_K, [208]),  # ql[128], qh[64], scales[16], d
]


def write_quants(rng):
    path = os.path.join(OUT, "quants.gguf")
    w = gguf.GGUFWriter(path, "circuitry-test")
    w.add_custom_alignment(64)
    # One key per metadata value type.
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -5)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "naïve 🙂")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 0.1)
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_array("test.array_str", ["a", "", "ü 東京"])
    w.add_array("test.array_nested", [[1, 2], [3]])

    expected = {}
    for qtype in QUANTIZABLE:
        name = f"dequant.{qtype.name.lower()}"
        data = rng.standard_normal((3, 64)).astype(np.float32)
        q = quantize(data, qtype)
        w.add_tensor(name, q, raw_dtype=qtype)
        expected[name] = dequantize(q, qtype).reshape(data.shape).astype(np.float32)
    for qtype, scale_offsets in K_QUANTS:
        name = f"dequant.{qtype.name.lower()}"
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        rows, blocks_per_row = 2, 2
        raw = rng.integers(0, 256, size=(rows * blocks_per_row, type_size), dtype=np.uint8)
        for off in scale_offsets:
            scales = rng.uniform(-0.05, 0.05, size=rows * blocks_per_row).astype(np.float16)
            raw[:, off : off + 2] = scales.view(np.uint8).reshape(-1, 2)
        raw = raw.reshape(rows, blocks_per_row * type_size)
        w.add_tensor(name, raw, raw_dtype=qtype)
        expected[name] = dequantize(raw, qtype).reshape(rows, blocks_per_row * block_size).astype(np.float32)
    # Three dimensions: GGUF lists them innermost first; readers must report (2, 3, 32).
    data = rng.standard_normal((2, 3, 32)).astype(np.float32)
    w.add_tensor("dequant.f32_3d", data)
    expected["dequant.f32_3d"] = data
    # A type circuitry does not dequantize: reading it must fail with a clear error.
    block_size, type_size = gguf.GGML_QUANT_SIZES[T.IQ2_XXS]
    w.add_tensor("unsupported.iq2_xxs", np.zeros((1, type_size), dtype=np.uint8), raw_dtype=T.IQ2_XXS)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(expected, os.path.join(OUT, "quants.expected.safetensors"))

    # Cross-check with the package's own reader: the file parses and dequantizes as expected.
    r = gguf.GGUFReader(path)
    for t in r.tensors:
        if t.name in expected:
            got = dequantize(t.data, t.tensor_type).reshape(expected[t.name].shape)
            assert np.array_equal(got, expected[t.name], equal_nan=True), t.name


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tiny_vocab():
    """(tokens, token types, merges) of a tiny byte-level BPE vocabulary."""
    spell = bytes_to_unicode()
    byte_level = lambda s: "".join(spell[b] for b in s.encode("utf-8"))  # noqa: E731
    tokens = [
        ("<|endoftext|>", 3),
        ("<|im_start|>", 3),
        ("<|im_end|>", 3),
        ("<think>", 4),
        ("</think>", 4),
        ("<bad token>", 3),  # control, but a space is outside the byte alphabet: not special
    ]
    tokens += [(spell[b], 1) for b in range(256)]
    merges = []

    def merge(a, b):
        merges.append(f"{a} {b}")
        tokens.append((a + b, 1))

    g = byte_level(" ")
    merge(g, "t")
    merge("h", "e")
    merge(g + "t", "he")
    merge("t", "he")
    merge("i", "n")
    merge(g, "a")
    merge("1", "2")
    merge("12", "3")
    merge("'", "s")
    merge("\u010a", "\u010a")  # "\n\n"
    east = byte_level("東")
    merge(east[0], east[1])
    merge(east[:2], east[2])
    # A token the file spells in plain text although it is not in the byte alphabet; transformers
    # re-spells it (and llama.cpp never produces it from text).
    tokens.append(("京", 1))
    return [t for t, _ in tokens], [k for _, k in tokens], merges


TEXTS = [
    "the theater in a 12345 tea",
    "  the  the\n\nthe\t\tend",
    "<|im_start|>user\nHi<|im_end|>",
    "<think>東京 12 123 1234</think>",
    "<bad token> and <|endoftext|>",
    "It's HIS'S book's",
    "naïve café — 🙂",
]


def write_tokenizers():
    from transformers import AutoTokenizer

    tokens, types, merges = tiny_vocab()
    results = []
    variants = [("llama-bpe", False), ("qwen2", False), ("smollm", False), ("smollm", True)]
    for pre, space_prefix in variants:
        fname = f"tokenizer-{pre}{'-space-prefix' if space_prefix else ''}.gguf"
        path = os.path.join(OUT, fname)
        w = gguf.GGUFWriter(path, "llama")
        w.add_block_count(1)
        w.add_context_length(64)
        w.add_embedding_length(8)
        w.add_feed_forward_length(16)
        w.add_head_count(2)
        w.add_head_count_kv(1)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_vocab_size(len(tokens))
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_pad_token_id(2)
        w.add_add_bos_token(False)
        w.add_add_space_prefix(space_prefix)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        tok = AutoTokenizer.from_pretrained(OUT, gguf_file=fname)
        cases = []
        for text in TEXTS:
            ids = tok(text, add_special_tokens=False).input_ids
            cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids)})
        results.append({"file": fname, "pre": pre, "cases": cases})
    # One case per line, so that a change shows up as a readable diff.
    with open(os.path.join(OUT, "tokenizer.expected.json"), "w") as fh:
        fh.write('{"tokenizers": [\n')
        for i, r in enumerate(results):
            head = json.dumps({"file": r["file"], "pre": r["pre"]}, ensure_ascii=False)[:-1]
            fh.write(head + ', "cases": [\n')
            fh.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in r["cases"]))
            fh.write("\n]}" + ("," if i + 1 < len(results) else "") + "\n")
        fh.write("]}\n")


def llama_cpp_permute(w, n_head):
    """`LlamaModel.permute` of llama.cpp's convert_hf_to_gguf.py (n_head already the kv count for K)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_bias(rng):
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    layers, d, heads, kv_heads, head_dim, ff, vocab = 2, 16, 2, 1, 8, 24, 32
    hf = {}
    rand = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    hf["model.embed_tokens.weight"] = rand(vocab, d)
    for l in range(layers):
        p = f"model.layers.{l}."
        hf[p + "input_layernorm.weight"] = rand(d)
        hf[p + "post_attention_layernorm.weight"] = rand(d)
        for name, rows in [("q_proj", heads * head_dim), ("k_proj", kv_heads * head_dim), ("v_proj", kv_heads * head_dim)]:
            hf[p + f"self_attn.{name}.weight"] = rand(rows, d)
            hf[p + f"self_attn.{name}.bias"] = rand(rows)
        hf[p + "self_attn.o_proj.weight"] = rand(d, heads * head_dim)
        hf[p + "mlp.gate_proj.weight"] = rand(ff, d)
        hf[p + "mlp.up_proj.weight"] = rand(ff, d)
        hf[p + "mlp.down_proj.weight"] = rand(d, ff)
    hf["model.norm.weight"] = rand(d)
    hf["lm_head.weight"] = rand(vocab, d)

    names = {"model.embed_tokens.": "token_embd.", "model.norm.": "output_norm.", "lm_head.": "output."}
    layer_names = {
        "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }
    processor = LlamaTensorProcessor(config={"num_attention_heads": heads, "num_key_value_heads": kv_heads})
    w = gguf.GGUFWriter(os.path.join(OUT, "llama-bias.gguf"), "llama")
    w.add_block_count(layers)
    w.add_context_length(32)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(5000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(vocab)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    for name, t in hf.items():
        gname = next((name.replace(a, b) for a, b in names.items() if name.startswith(a)), None)
        if gname is None:
            l, rest = name[len("model.layers."):].split(".", 1)
            module, kind = rest.rsplit(".", 1)
            gname = f"blk.{l}.{layer_names[module]}.{kind}"
        if ".attn_q." in gname:
            t = llama_cpp_permute(t, heads)
        elif ".attn_k." in gname:
            t = llama_cpp_permute(t, kv_heads)
        # transformers recovers the Hugging Face layout from what the file holds.
        assert np.array_equal(processor.process(t, gname).weights, hf[name]), gname
        w.add_tensor(gname, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(hf, os.path.join(OUT, "llama-bias.expected.safetensors"))


def main():
    os.makedirs(OUT, exist_ok=True)
    write_quants(np.random.default_rng(0))
    write_tokenizers()
    write_llama_bias(np.random.default_rng(1))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    sys.exit(main())
