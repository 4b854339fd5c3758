"""How close a measured network time comes to what the machine can compute at all.

A benchmark ratio alone cannot say whether a target is reachable. This module measures, in the
benchmark's own run, the machine's large-matmul rate as each framework reaches it (its practical
FLOP/s ceiling: a convolution is a matmul with extra data movement, so no network runs faster),
counts the network's FLOPs with XLA's cost model, and turns the two into achieved FLOP/s and
fractions of that ceiling for both frameworks. `ratio_ceiling` is the jaxsr / PyTorch speed ratio
jaxsr would reach if it ran at the best matmul rate measured, against PyTorch as measured: a
target above it cannot be met without computing fewer FLOPs.

On GPUs the chip's published dense bf16 peak is added where the device is listed in
`PUBLISHED_BF16_PEAK` (issue 12's target is a fraction of that peak).
"""

from __future__ import annotations

import time

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


def xla_flops(fn, *args) -> float:
  """FLOPs of `fn(*args)` by XLA's cost model, from the traced program (shapes only: `args` may
  be arrays or jax.ShapeDtypeStruct). A convolution counts two per multiply-add of an input pixel
  inside the image: taps on the zero padding are left out (1.4 % of a 3x3 conv on 96x96 maps)."""
  import jax  # pylint: disable=import-outside-toplevel

  cost = jax.jit(fn).lower(*args).cost_analysis()
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
            device_kind: str = "") -> dict:
  """The roofline record: `flops` per run; `seconds` and `matmul` (FLOP/s) keyed "jaxsr" and
  "pytorch"."""
  ceiling = max(matmul.values())
  achieved = {name: flops / s for name, s in seconds.items()}
  record = {
      "gflop_per_run": round(flops / 1e9, 2),
      "matmul_gflop_per_s": {name: round(v / 1e9, 1) for name, v in matmul.items()},
      "achieved_gflop_per_s": {name: round(v / 1e9, 1) for name, v in achieved.items()},
      "fraction_of_best_matmul_rate": {name: round(v / ceiling, 3) for name, v in achieved.items()},
      "ratio_ceiling": round(ceiling / achieved["pytorch"], 3),
  }
  peak = next((v for k, v in PUBLISHED_BF16_PEAK.items() if k in device_kind), None)
  if peak:
    record["published_bf16_peak_tflop_per_s"] = peak / 1e12
    record["fraction_of_published_bf16_peak"] = {
        name: round(v / peak, 3) for name, v in achieved.items()}
  return record
