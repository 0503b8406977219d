"""Validates the shipped experiment files against schemas/experiment.schema.json (what editors
check through each file's `#:schema` line): every experiments/*.toml, the TOML examples of
README.md and crates/circuitry-spec/README.md, and the good spec fixtures. The Rust tests check
that the files load; this checks that the schema accepts what the loader accepts.

    python scripts/check_schema.py        # from the repository root; needs `jsonschema`
"""

import json
import pathlib
import re
import sys
import tomllib

import jsonschema

root = pathlib.Path(__file__).resolve().parent.parent
schema = json.loads((root / "schemas/experiment.schema.json").read_text())
validator = jsonschema.Draft7Validator(schema)

documents = []
for path in sorted((root / "experiments").glob("*.toml")):
    documents.append((str(path.relative_to(root)), path.read_text()))
for readme in ["README.md", "crates/circuitry-spec/README.md"]:
    text = (root / readme).read_text()
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.S)):
        documents.append((f"{readme} toml block {i + 1}", block))
good = root / "crates/circuitry-spec/tests/good"
if good.is_dir():
    for path in sorted(good.glob("*.toml")):
        documents.append((str(path.relative_to(root)), path.read_text()))

failures = 0
for name, text in documents:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        print(f"{name}: not TOML: {e}")
        failures += 1
        continue
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.absolute_path) or "(top)"
        print(f"{name}: {where}: {e.message[:300]}")
    failures += bool(errors)
print(f"{len(documents)} experiment files checked against the schema, {failures} rejected")
sys.exit(1 if failures else 0)
