"""How close a measured network time comes to what the machine can compute at all.

A benchmark ratio alone cannot say whether a target is reachable. This module measures, in the
benchmark's own run, the machine's large-matmul rate as each framework reaches it (its practical
FLOP/s ceiling: a convolution is a matmul with extra data movement, so no network runs faster),
counts the network's FLOPs with XLA's cost model, and turns the two into achieved FLOP/s and
fractions of that ceiling for both frameworks. `ratio_ceiling` is the jaxsr / PyTorch speed ratio
jaxsr would reach if it ran at the best matmul rate measured, against PyTorch as measured: a
target above it cannot be met without computing fewer FLOPs.

Where a framework's convolutions beat its own matmul (PyTorch's oneDNN on an AMD Zen 5 does), the
matmul bounds nothing. On CPUs the benchmarks then also record the arithmetic peak itself
(`cpu_fma_peak_flops_per_s`: independent FMA chains in registers on every core, `fma_peak.c`
compiled with the machine's C compiler), the fraction of it each framework reaches, and
`ratio_ceiling_fma_peak`, the ratio jaxsr would reach at that peak: a hard bound.

On GPUs the chip's published dense bf16 peak is added where the device is listed in
`PUBLISHED_BF16_PEAK` (issue 12's target is a fraction of that peak).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

# Matmul sides large enough to run at full rate, small enough to take milliseconds: CPU, and
# accelerators (where a 2048 matmul takes microseconds and launch overhead would count).
MATMUL_SIZE = {"cpu": 2048, "accelerator": 8192}


def _matmul_size(platform: str) -> int:
  return MATMUL_SIZE["cpu" if platform == "cpu" else "accelerator"]


# Dense (no sparsity) bf16 tensor-core peak from NVIDIA's data sheets, in FLOP/s, by a substring
# of `jax.Device.device_kind`. SXM parts; PCIe / NVL variants run lower clocks.
PUBLISHED_BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def _best_seconds(run, repeats: int) -> float:
  run()  # Compile / warm up.
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - start)
  return best


def jax_matmul_flops_per_s(dtype: str = "fp32", size: int | None = None, repeats: int = 5) -> float:
  """FLOP/s of one size x size matmul per device, all local devices at once (as a sharded batch,
  the way jaxsr spreads its work), best of `repeats`."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from jax.sharding import Mesh, NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel

  devices = jax.local_devices()
  size = size or _matmul_size(devices[0].platform)
  jdtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[dtype]
  sharding = NamedSharding(Mesh(np.array(devices), ("d",)), PartitionSpec("d"))
  rng = np.random.default_rng(0)
  a, b = (jax.device_put(rng.random((len(devices), size, size), np.float32).astype(jdtype), sharding)
          for _ in range(2))
  matmul = jax.jit(lambda x, y: jnp.einsum("bij,bjk->bik", x, y,
                                           preferred_element_type=jnp.float32))
  seconds = _best_seconds(lambda: matmul(a, b).block_until_ready(), repeats)
  return 2.0 * size ** 3 * len(devices) / seconds


def torch_matmul_flops_per_s(device: str = "cpu", dtype=None, size: int | None = None,
                             repeats: int = 5) -> float:
  """FLOP/s of a size x size matmul in PyTorch on `device` (all its threads), best of `repeats`."""
  import torch  # pylint: disable=import-outside-toplevel

  dtype = dtype or torch.float32
  size = size or _matmul_size(device)
  a, b = (torch.rand(size, size, device=device).to(dtype) for _ in range(2))

  def run():
    torch.matmul(a, b)
    if device == "cuda":
      torch.cuda.synchronize()

  return 2.0 * size ** 3 / _best_seconds(run, repeats)


FMA_PEAK_SOURCE = Path(__file__).with_name("fma_peak.c")


def cpu_fma_peak_flops_per_s(threads: int | None = None, iterations: int = 100_000_000,
                             repeats: int = 3) -> float | None:
  """fp32 FLOP/s of `fma_peak.c` on `threads` threads (default: every core this process may
  use), best of `repeats`; None when the machine has no C compiler (cc, gcc or clang).

  Compiled with `-march=native`, so it uses the widest FMA the CPU has, as XLA's and oneDNN's
  kernels do. 100 M iterations take about 0.5 s on a core with two AVX-512 FMA units.
  """
  compiler = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
  if compiler is None:
    return None
  threads = threads or len(os.sched_getaffinity(0))
  with tempfile.TemporaryDirectory() as tmp:
    binary = Path(tmp) / "fma_peak"
    subprocess.run([compiler, "-O2", "-march=native", "-ffp-contract=fast", "-pthread",
                    str(FMA_PEAK_SOURCE), "-o", str(binary)], check=True, capture_output=True)
    return max(float(subprocess.run([str(binary), str(threads), str(iterations)], check=True,
                                    capture_output=True, text=True).stdout)
               for _ in range(repeats))


def xla_flops(fn, *args) -> float:
  """FLOPs of `fn(*args)` by XLA's cost model, from the traced program (shapes only: `args` may
  be arrays or jax.ShapeDtypeStruct). A convolution counts two per multiply-add of an input pixel
  inside the image: taps on the zero padding are left out (1.4 % of a 3x3 conv on 96x96 maps).
  Programs with a loop are refused (ValueError): the cost model counts a loop's body once."""
  import jax  # pylint: disable=import-outside-toplevel

  lowered = jax.jit(fn).lower(*args)
  # XLA's cost model counts a loop's body once, whatever its trip count (a scan over RRDBNet's
  # 23 blocks counted as one block), so a program with a loop has no honest count here.
  if re.search(r"\bstablehlo\.while\b", lowered.as_text()):
    raise ValueError("the program has a loop, whose body XLA's cost model counts once; "
                     "count the FLOPs of an unrolled form")
  cost = lowered.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  if not cost or "flops" not in cost:
    raise RuntimeError("XLA's cost model gave no FLOP count for this program")
  return float(cost["flops"])


def shape_structs(tree):
  """The shapes and dtypes of a pytree of arrays, without their shardings (for `xla_flops`)."""
  import jax  # pylint: disable=import-outside-toplevel

  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), tree)


def summary(flops: float, seconds: dict[str, float], matmul: dict[str, float],
            device_kind: str = "", fma_peak: float | None = None) -> dict:
  """The roofline record: `flops` per run; `seconds` and `matmul` (FLOP/s) keyed "jaxsr" and
  "pytorch"; `fma_peak`: the CPU's arithmetic peak in FLOP/s (`cpu_fma_peak_flops_per_s`), if
  measured."""
  ceiling = max(matmul.values())
  achieved = {name: flops / s for name, s in seconds.items()}
  record = {
      "gflop_per_run": round(flops / 1e9, 2),
      "matmul_gflop_per_s": {name: round(v / 1e9, 1) for name, v in matmul.items()},
      "achieved_gflop_per_s": {name: round(v / 1e9, 1) for name, v in achieved.items()},
      "fraction_of_best_matmul_rate": {name: round(v / ceiling, 3) for name, v in achieved.items()},
      "ratio_ceiling": round(ceiling / achieved["pytorch"], 3),
  }
  if fma_peak:
    record["fma_peak_gflop_per_s"] = round(fma_peak / 1e9, 1)
    record["fraction_of_fma_peak"] = {name: round(v / fma_peak, 3) for name, v in achieved.items()}
    record["ratio_ceiling_fma_peak"] = round(fma_peak / achieved["pytorch"], 3)
  peak = next((v for k, v in PUBLISHED_BF16_PEAK.items() if k in device_kind), None)
  if peak:
    record["published_bf16_peak_tflop_per_s"] = peak / 1e12
    record["fraction_of_published_bf16_peak"] = {
        name: round(v / peak, 3) for name, v in achieved.items()}
  return record
