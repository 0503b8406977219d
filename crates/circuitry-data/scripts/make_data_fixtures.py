#!/usr/bin/env python3
"""Regenerates the test fixtures of circuitry-data under tests/fixtures/data/.

Run from the repository root with any Python that has `tokenizers` (and `pyarrow` for the
Parquet file), e.g. the reference venv:

    /root/.cache/circuitry-reference-venv/bin/python crates/circuitry-data/scripts/make_data_fixtures.py

It writes
- `ioi-bpe/tokenizer.json`: a small byte-level BPE tokenizer (GPT-2 style, `<|endoftext|>` = id 0)
  trained on sentences built from the IOI templates of Wang et al. 2022 with every default name,
  place and object, so that every default name is a single token with its leading space
  (" Mary"). The script checks that before writing.
- `prompts.jsonl`, `prompts.csv`, `prompts.parquet`: the same five records in three formats
  (columns text, corrupt, io, s, note), used to check that all formats give identical datasets.

The lists below must match `crates/circuitry-data/src/ioi.rs` (a Rust test checks the names are
single tokens under this tokenizer).
"""

import csv
import json
import os
import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "data")

NAMES = [
    "Michael", "Christopher", "Jessica", "Matthew", "Ashley", "Jennifer", "Joshua", "Amanda",
    "Daniel", "David", "James", "Robert", "John", "Joseph", "Andrew", "Ryan", "Brandon", "Jason",
    "Justin", "Sarah", "William", "Jonathan", "Stephanie", "Brian", "Nicole", "Nicholas",
    "Anthony", "Heather", "Eric", "Elizabeth", "Adam", "Megan", "Melissa", "Kevin", "Steven",
    "Thomas", "Timothy", "Christina", "Kyle", "Rachel", "Laura", "Lauren", "Amber", "Brittany",
    "Danielle", "Richard", "Kimberly", "Jeffrey", "Amy", "Crystal", "Michelle", "Tiffany",
    "Jeremy", "Benjamin", "Mark", "Emily", "Aaron", "Charles", "Rebecca", "Jacob", "Stephen",
    "Patrick", "Sean", "Erin", "Jamie", "Kelly", "Samantha", "Nathan", "Sara", "Dustin", "Paul",
    "Angela", "Tyler", "Scott", "Katherine", "Andrea", "Gregory", "Erica", "Mary", "Travis",
    "Lisa", "Kenneth", "Bryan", "Lindsey", "Kristen", "Jose", "Alexander", "Jesse", "Katie",
    "Lindsay", "Shannon", "Vanessa", "Courtney", "Christine", "Alicia", "Cody", "Allison",
    "Bradley", "Samuel",
]
PLACES = ["store", "garden", "restaurant", "school", "hospital", "office", "house", "station"]
OBJECTS = ["ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack"]
BABA_TEMPLATES = [
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to [A]",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to [A]",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to [A]",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to [A]",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to [A]",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to [A]",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to [A]",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to [A]",
]
EXTRA = "When Mary and John went to the store, John gave a drink to Mary. The cat sat on the mat."


def corpus(rng):
    lines = [EXTRA] * 50
    for name in NAMES:
        # every name in several positions and templates, so " Name" becomes one token
        for _ in range(12):
            other = rng.choice([n for n in NAMES if n != name])
            t = rng.choice(BABA_TEMPLATES)
            a, b = (name, other) if rng.random() < 0.5 else (other, name)
            s = t.replace("[A]", a).replace("[B]", b)
            s = s.replace("[PLACE]", rng.choice(PLACES)).replace("[OBJECT]", rng.choice(OBJECTS))
            lines.append(s + ".")
    for t in BABA_TEMPLATES:
        for place in PLACES:
            for obj in OBJECTS:
                a, b = rng.sample(NAMES, 2)
                s = t.replace("[A]", a).replace("[B]", b).replace("[PLACE]", place).replace("[OBJECT]", obj)
                lines.append(s + ".")
    return lines


def make_tokenizer():
    rng = random.Random(0)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        min_frequency=2,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(rng), trainer=trainer)
    bad = [n for n in NAMES if len(tok.encode(" " + n).ids) != 1]
    assert not bad, f"names that are not single tokens: {bad}"
    assert tok.token_to_id("<|endoftext|>") == 0
    path = os.path.join(OUT, "ioi-bpe", "tokenizer.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tok.save(path, pretty=False)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, vocab {tok.get_vocab_size()})")


RECORDS = [
    {"text": "When Mary and John went to the store, John gave a drink to",
     "corrupt": "When Amy and Paul went to the store, Lisa gave a drink to",
     "io": " Mary", "s": " John", "note": "abba"},
    {"text": "Then, Sarah and David went to the garden. Sarah gave a ring to",
     "corrupt": "Then, Kyle and Erin went to the garden. Sean gave a ring to",
     "io": " David", "s": " Sarah", "note": "baba"},
    {"text": "After the lunch, Kevin and Laura went to the school. Laura gave a snack to",
     "corrupt": "After the lunch, Mark and Emily went to the school. Scott gave a snack to",
     "io": " Kevin", "s": " Laura", "note": "comma, inside"},
    {"text": "The cat sat on the mat.",
     "corrupt": "The cat sat on the mat.",
     "io": " cat", "s": " mat", "note": "quote \" and newline\nhere"},
    {"text": "  leading spaces kept",
     "corrupt": "  leading spaces kept",
     "io": " the", "s": " to", "note": ""},
]


def write_tables():
    with open(os.path.join(OUT, "prompts.jsonl"), "w", encoding="utf-8") as f:
        for i, r in enumerate(RECORDS):
            f.write(json.dumps(r) + "\n")
            if i == 1:
                f.write("\n")  # a blank line: skipped, but line numbers still count it
    with open(os.path.join(OUT, "prompts.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(RECORDS[0].keys()))
        w.writeheader()
        w.writerows(RECORDS)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        print("pyarrow missing: prompts.parquet not written")
        return
    table = pa.table({k: pa.array([r[k] for r in RECORDS], type=pa.large_string() if k == "corrupt" else pa.string())
                      for k in RECORDS[0]})
    pq.write_table(table, os.path.join(OUT, "prompts.parquet"), row_group_size=2, compression="snappy")
    print("wrote prompts.jsonl, prompts.csv, prompts.parquet")


if __name__ == "__main__":
    make_tokenizer()
    write_tables()
