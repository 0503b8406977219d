#!/usr/bin/env bash
# Forward throughput of SmolLM2-135M-Instruct (batch 8 x 64 tokens) on circuitry's CPU backends
# and on PyTorch (Hugging Face transformers, same threads), measured one after the other in one
# run. The numbers in ARCHITECTURE.md come from this script.
#
#   scripts/bench-forward.sh [PYTHON_WITH_TORCH_AND_TRANSFORMERS]
#
# Env: CIRCUITRY_SMOLLM2_GGUF (model; fetched by scripts/fetch-smollm2.sh), BENCH_THREADS (2),
# BENCH_FEATURES (extra cargo features, e.g. "ndarray" or "tch,ndarray"; tch needs
# LIBTORCH_USE_PYTORCH=1, a torch 2.9.0 python first on PATH and its lib folder on LD_LIBRARY_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-$HOME/.cache/circuitry-reference-venv/bin/python}
gguf=${CIRCUITRY_SMOLLM2_GGUF:-$HOME/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf}
threads=${BENCH_THREADS:-2}
export CIRCUITRY_SMOLLM2_GGUF=$gguf RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
features=()
if [ -n "${BENCH_FEATURES:-}" ]; then features=(--features "$BENCH_FEATURES"); fi
cargo bench -q -p circuitry-models --bench forward "${features[@]}" 2>/dev/null | tee /tmp/circuitry-bench-rust.txt
"$python" scripts/bench_torch_forward.py "$gguf" --threads "$threads" 2>/dev/null | tee /tmp/circuitry-bench-torch.txt
flex=$(awk '/^flex/ {print $4}' /tmp/circuitry-bench-rust.txt)
torch=$(awk '/forward median/ {for (i=1;i<=NF;i++) if ($i=="median") print $(i+1)}' /tmp/circuitry-bench-torch.txt)
awk -v f="$flex" -v t="$torch" 'BEGIN { printf "torch / flex time ratio: %.2fx (flex %.1f ms, torch %.1f ms)\n", t / f, f, t }'
