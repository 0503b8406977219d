"""PyTorch reference for `cargo bench -p circuitry-models --bench forward`: SmolLM2-135M-Instruct
(the same GGUF, dequantized to float32 by Hugging Face transformers) forward throughput on the
CPU with a fixed number of threads, on the same pseudo-random tokens as the Rust benchmark.

Run: python bench_torch_forward.py PATH.gguf [--threads 2] [--batch 8] [--seq 64] [--iters 5]
(needs torch and transformers, e.g. the venv made by ../../shared/reference/setup.sh)."""
import argparse, os, statistics, time

import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("gguf")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=64)
p.add_argument("--iters", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(a.threads)
d, f = os.path.dirname(os.path.abspath(a.gguf)), os.path.basename(a.gguf)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
vocab = model.config.vocab_size
rows = [[(b * 7919 + i * 104729) % vocab for i in range(a.seq)] for b in range(a.batch)]
ids = torch.tensor(rows)
n_params = sum(p.numel() for p in model.parameters())
with torch.inference_mode():
    model(ids)  # warm-up
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        model(ids).logits.sum().item()
        times.append(time.perf_counter() - t)
median = statistics.median(times)
flops = 2 * n_params * a.batch * a.seq
print(f"torch {torch.__version__} ({a.threads} threads, {model.config._attn_implementation} attention) "
      f"forward median {median * 1e3:7.1f} ms  {a.batch * a.seq / median:8.0f} tokens/s  {flops / median / 1e9:6.1f} GFLOP/s")
