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
# carry .gpu along (see there). A benchmark that fails or runs out of its time does not stop the
# others; the script exits 1 at the end, naming them. Where $OUT is set (the device tool's folder
# of files that come back), each result is copied there as soon as it is written, and the log
# goes there too. On the device tool: carry [".gpu"], timeout_s 600,
#   command: PYTHON=python3 bash benchmarks/gpu.sh
#
# Not yet run on a GPU: no accelerator has been lent to this project's sessions so far.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
# What a GPU machine's own Python lacks, packed here by benchmarks/gpu_kit.sh and carried along.
if [ -d .gpu/site ]; then export PYTHONPATH="$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}"; fi
if [ -n "${OUT:-}" ]; then
  exec > >(tee "$OUT/gpu.log") 2>&1
fi
"$PY" -c "import jax; d = jax.devices()[0]; assert d.platform == 'gpu', d; print(d.device_kind)" \
    || exit 1

# The device tool stops a command after 10 minutes: the whole script keeps within GPU_BUDGET_S
# (default 540 s) and runs the benchmarks the issues ask for first.
budget=${GPU_BUDGET_S:-540}
failed=()
bench() {  # SECONDS RESULT_NAME ARGS...: one benchmark under a time limit; a failure is noted.
  local seconds=$1 name=$2 left=$((budget - SECONDS))
  shift 2
  if [ "$left" -lt 30 ]; then failed+=("$name (no time left)"); return; fi
  echo "== $name"
  timeout "$((seconds < left ? seconds : left))" "$PY" "$@" \
      --out "benchmarks/results/$name.json" || failed+=("$name")
  if [ -n "${OUT:-}" ] && [ -f "benchmarks/results/$name.json" ]; then
    cp "benchmarks/results/$name.json" "$OUT/"
  fi
}

# PyTorch's side runs in a process of its own on the same GPU: leave it room beside JAX's pool.
XLA_PYTHON_CLIENT_MEM_FRACTION=0.6 bench 150 train_step_gpu_bf16 benchmarks/train_step.py \
    --batch 10 --gt 256 --blocks 23 --steps 10 --dtype bf16
bench 120 upscale_gpu_bf16 benchmarks/upscale_throughput.py --size 512 --tile 256 \
    --tile-pad 24 --batch 8 --repeats 3 --dtype bf16
# Issue 12's FLOP/s target: the x4plus forward on 512x512 tiles (its `roofline` record has the
# fraction of the chip's published bf16 peak).
bench 120 upscale_gpu_bf16_tile512 benchmarks/upscale_throughput.py --size 1024 --tile 512 \
    --tile-pad 24 --batch 4 --repeats 3 --dtype bf16
XLA_PYTHON_CLIENT_MEM_FRACTION=0.6 bench 150 train_step_gpu_fp32 benchmarks/train_step.py \
    --batch 10 --gt 256 --blocks 23 --steps 10 --dtype fp32
bench 120 upscale_gpu_fp32 benchmarks/upscale_throughput.py --size 512 --tile 256 \
    --tile-pad 24 --batch 8 --repeats 3 --dtype fp32
bench 90 bf16_accuracy_gpu benchmarks/bf16_accuracy.py --size 128
bench 120 upscale_compact_gpu_bf16 benchmarks/upscale_throughput.py --model compact --size 512 \
    --tile 256 --tile-pad 24 --batch 8 --repeats 3 --dtype bf16

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed or out of time: ${failed[*]}" >&2
  exit 1
fi
