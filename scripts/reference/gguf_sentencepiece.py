"""Writes `tests/fixtures/gguf/tokenizer-spm.gguf`, a GGUF file whose tokenizer is a tiny
sentencepiece BPE model (`tokenizer.ggml.model = "llama"`, as Llama 1/2, Mistral and Gemma
files carry), and `tokenizer-spm.expected.json`, the ids and decoded text that sentencepiece
itself gives for a list of texts: the reference circuitry's GGUF sentencepiece tokenizer must
equal.

The model is trained here with the `sentencepiece` package (BPE, byte fallback, identity
normalisation and a dummy prefix, as Llama's tokenizer.model; one thread, so deterministic) on
a small built-in corpus; its vocabulary is written as llama.cpp's `convert_hf_to_gguf.py`
(`_create_vocab_sentencepiece`) writes one: every piece with its score and token type (normal,
unknown, control, user-defined, unused, byte), the unknown, bos and eos ids,
`tokenizer.ggml.add_space_prefix` from the model's normaliser, and `add_bos_token`.

Run with a virtual environment holding sentencepiece and gguf:

    /root/.cache/hf-ref-venv-457/bin/python scripts/reference/gguf_sentencepiece.py tests/fixtures
"""

import io
import json
import os
import sys

import gguf
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "When Mary and John went to the store, John gave a drink to Mary.",
    "Induction heads copy the token that followed an earlier copy of the current token.",
    "Residual streams carry information between attention heads and multilayer perceptrons.",
    "In 2024, researchers patched activations at every layer and position.",
    "the the the and and of of to to in in is is it it",
    "Sparse autoencoders find features; transcoders replace MLPs.",
] * 20

TEXTS = [
    "The quick brown fox",
    " leading space",
    "two  spaces and a tab\there",
    "line one\nline two",
    "naïve café – déjà vu",
    "emoji 🦊 and 漢字",
    "<user> is a user-defined token",
    "a <user> is user-defined, <user>",
    "numbers 1234567 and punctuation!?",
    "",
]

TOKEN_TYPES = {
    "normal": gguf.TokenType.NORMAL,
    "unknown": gguf.TokenType.UNKNOWN,
    "control": gguf.TokenType.CONTROL,
    "user_defined": gguf.TokenType.USER_DEFINED,
    "unused": gguf.TokenType.UNUSED,
    "byte": gguf.TokenType.BYTE,
}


def train():
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_writer=model,
        model_type="bpe",
        vocab_size=400,
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        split_digits=True,
        user_defined_symbols=["<user>"],
        character_coverage=1.0,
        num_threads=1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
    )
    return model.getvalue()


def piece_type(p):
    t = model_pb2.ModelProto.SentencePiece
    return {
        t.NORMAL: "normal",
        t.UNKNOWN: "unknown",
        t.CONTROL: "control",
        t.USER_DEFINED: "user_defined",
        t.UNUSED: "unused",
        t.BYTE: "byte",
    }[p.type]


def main():
    out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures", "gguf")
    blob = train()
    proto = model_pb2.ModelProto()
    proto.ParseFromString(blob)
    sp = spm.SentencePieceProcessor(model_proto=blob)

    path = os.path.join(out, "tokenizer-spm.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(proto.pieces))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list([p.piece for p in proto.pieces])
    w.add_token_scores([p.score for p in proto.pieces])
    w.add_token_types([TOKEN_TYPES[piece_type(p)] for p in proto.pieces])
    w.add_unk_token_id(sp.unk_id())
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_add_space_prefix(proto.normalizer_spec.add_dummy_prefix)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    cases = []
    for text in TEXTS:
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
    with open(os.path.join(out, "tokenizer-spm.expected.json"), "w") as fh:
        fh.write('{"file": "tokenizer-spm.gguf", "bos": %d, "cases": [\n' % sp.bos_id())
        fh.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        fh.write("\n]}\n")
    print(path, os.path.getsize(path), "bytes;", len(proto.pieces), "pieces")


if __name__ == "__main__":
    main()
