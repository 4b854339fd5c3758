"""One x4plus dense block, direct and by Winograd: which is faster on this CPU, and why.

  taskset -c 0 python benchmarks/winograd_probe.py [--size 96] [--repeats 10]
      [--out benchmarks/results/winograd_probe_cpu.json]

At the upscale benchmark's 64-pixel tiles, jaxsr's and PyTorch's direct convolutions both ran
at 82-84 % of the cores' FMA peak (`upscale_cpu_zen3_*core.json`), so only fewer multiply-adds
could take jaxsr past issue 12's 1.2x. Winograd F(m x m, 3 x 3) (`jaxsr.models.winograd`) does
2.25x fewer for m = 2 and 4x fewer for m = 4, and pays with transforms of every input and output
block: elementwise work, from plain jax.numpy ops that XLA fuses as it will.

This times one Residual Dense Block (five convs, 64 features, growth 32; x4plus runs 69) at the
upscale benchmark's window size on one CPU device: the direct block
(`jaxsr.models.rrdbnet.ResidualDenseBlock`'s stacked form, what training and GPUs run) against
the same block by F(2x2) and by F(4x4) (`winograd.dense_convs`, what `for_inference` runs on a
CPU). For each form: the best of `--repeats` runs, the minor page faults per run, the largest
difference from the direct block, and (from a jax.profiler trace, which slows everything
somewhat) the split between the matrix products (XLA's YNNPACK fusions) and all other ops,
which gives the speed-up the form would have if its transforms cost nothing. Run it under
`taskset -c 0` so the one device keeps one core to itself.

Page faults matter on a VM: XLA allocates a call's temporaries in one buffer, glibc maps a
buffer over 32 MB afresh on every call, and first touching its pages cost about 2.5 us per 4 KiB
page here. F(4x4)'s transforms push the block's buffer over that line (about 8,200 faults per
call), and runs that fault took 55-90 ms against 38-43 ms for those that did not.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import report  # pylint: disable=wrong-import-position  # benchmarks/report.py
import step_profile  # pylint: disable=wrong-import-position  # benchmarks/step_profile.py
from jaxsr.models import rrdbnet, winograd  # pylint: disable=wrong-import-position


def dense_block(x: jax.Array, params: dict, m: int) -> jax.Array:
  """A Residual Dense Block (`params` as ResidualDenseBlock holds them) by Winograd F(m x m)."""
  convs = [(params[f"conv{i + 1}"]["kernel"], params[f"conv{i + 1}"]["bias"]) for i in range(5)]
  x5 = winograd.dense_convs(x, convs, rrdbnet.LEAKY_SLOPE, m)
  return x5 * rrdbnet.RESIDUAL_SCALE + x


def multiply_adds_per_pixel(params: dict, m: int | None) -> float:
  """Multiply-adds of the five convs' channel products per input pixel (m=None: direct)."""
  per_pixel = 9 if m is None else (m + 2) ** 2 / m ** 2
  return per_pixel * sum(int(np.prod(params[f"conv{i + 1}"]["kernel"].shape[2:]))
                         for i in range(5))


def _best_seconds_and_faults(fn, repeats: int) -> tuple[float, float]:
  """(best seconds, mean minor page faults) per run."""
  jax.block_until_ready(fn())
  best, faults = float("inf"), 0
  for _ in range(repeats):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - start)
    faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
  return best, faults / repeats


def _traced_split(fn, runs: int = 5) -> dict:
  """Seconds per run in XLA's YNNPACK fusions (the convolutions and matrix products) and in all
  other ops, from a jax.profiler trace summed by `step_profile.device_breakdown`."""
  jax.block_until_ready(fn())
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    for _ in range(runs):
      jax.block_until_ready(fn())
    jax.profiler.stop_trace()
    events = step_profile.perfetto_events(Path(trace_dir))
  [device] = step_profile.device_breakdown(events, runs, wall_s=0.0).values()  # One device.
  by_kind = device["by_kind_s_per_step"]
  products = by_kind.get("ynn_fusion", 0.0)
  return {"products_s": products, "other_ops_s": sum(by_kind.values()) - products}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--size", type=int, default=96,
                      help="LR window side (the upscale benchmark's: tile 64 + 2 x pad 16)")
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--out", type=Path, default=Path("benchmarks/results/winograd_probe_cpu.json"))
  args = parser.parse_args()

  block = rrdbnet.ResidualDenseBlock(num_feat=64, num_grow_ch=32)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((1, args.size, args.size, 64)), jnp.float32)
  params = jax.jit(block.init)(jax.random.key(0), x)["params"]
  forms = {"direct": jax.jit(lambda p, x: block.apply({"params": p}, x))}
  forms |= {f"winograd_f{m}": jax.jit(lambda p, x, m=m: dense_block(x, p, m)) for m in (2, 4)}
  reference = np.asarray(forms["direct"](params, x))
  result = {"config": {"size": args.size, "repeats": args.repeats, "devices": jax.device_count()},
            "host": report.host_info(), "forms": {}}
  for name, fn in forms.items():
    run = lambda fn=fn: fn(params, x)
    m = None if name == "direct" else int(name[-1])
    best, faults = _best_seconds_and_faults(run, args.repeats)
    result["forms"][name] = {
        "best_s": best, "minor_page_faults_per_run": faults,
        "max_abs_diff_from_direct": float(np.abs(np.asarray(run()) - reference).max()),
        "multiply_adds_per_pixel": multiply_adds_per_pixel(params, m),
        "traced": _traced_split(run)}
  direct = result["forms"]["direct"]
  for form in result["forms"].values():
    form["speedup_over_direct"] = direct["best_s"] / form["best_s"]
    # The ceiling: the traced block if the transforms and copies cost nothing.
    form["speedup_if_only_products_cost"] = sum(direct["traced"].values()) / form["traced"]["products_s"]
  report.write_result(result, args.out)


if __name__ == "__main__":
  main()
