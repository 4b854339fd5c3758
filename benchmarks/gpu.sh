#!/usr/bin/env bash
# Every GPU benchmark in one go: upscale throughput (fp32 and bf16 against PyTorch fp32 / fp16
# on the same windows; x4plus, and the compact network in bf16), the GAN train step at the
# paper's settings (batch 10, GT 256), fp32 and bf16 against PyTorch fp32 / fp16 autocast, and
# bf16's accuracy against fp32 in 8-bit levels on the real weights. Budget: under 8 minutes on one H100/H200.
# Writes benchmarks/results/*_gpu*.json; copy the ratios into the README's Benchmarks table. Each
# result's `roofline` gives achieved FLOP/s against the matmul rate measured in the same run and
# against the chip's published bf16 peak.
#
#   bash benchmarks/gpu.sh            # PYTHON=... to pick the interpreter
#
# On a GPU machine without this project's packages: `bash benchmarks/gpu_kit.sh` here first, then
# carry .gpu along (see there).
#
# Not yet run on a GPU: no accelerator has been lent to this project's sessions so far.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
# What a GPU machine's own Python lacks, packed here by benchmarks/gpu_kit.sh and carried along.
if [ -d .gpu/site ]; then export PYTHONPATH="$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}"; fi
"$PY" -c "import jax; d = jax.devices()[0]; assert d.platform == 'gpu', d; print(d.device_kind)"
for dtype in fp32 bf16; do
  timeout 150 "$PY" benchmarks/upscale_throughput.py --size 512 --tile 256 --tile-pad 24 \
      --batch 8 --repeats 3 --dtype "$dtype" --out "benchmarks/results/upscale_gpu_${dtype}.json"
  # PyTorch's side runs in a process of its own on the same GPU: leave it room beside JAX's pool.
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.6 timeout 150 "$PY" benchmarks/train_step.py --batch 10 \
      --gt 256 --blocks 23 --steps 10 --dtype "$dtype" \
      --out "benchmarks/results/train_step_gpu_${dtype}.json"
done
# Issue 12's FLOP/s target: the x4plus forward on 512x512 tiles (its `roofline` record has the
# fraction of the chip's published bf16 peak).
timeout 120 "$PY" benchmarks/upscale_throughput.py --size 1024 --tile 512 --tile-pad 24 \
    --batch 4 --repeats 3 --dtype bf16 --out benchmarks/results/upscale_gpu_bf16_tile512.json
timeout 150 "$PY" benchmarks/upscale_throughput.py --model compact --size 512 --tile 256 \
    --tile-pad 24 --batch 8 --repeats 3 --dtype bf16 --out benchmarks/results/upscale_compact_gpu_bf16.json
timeout 90 "$PY" benchmarks/bf16_accuracy.py --size 128 --out benchmarks/results/bf16_accuracy_gpu.json
