"""Where each device's train step spends its time, from jax.profiler's trace.

    python benchmarks/step_profile.py [--steps 3] [--out benchmarks/results/step_profile_cpu.json]

Builds the same step as `benchmarks/train_step.py` (x4plus G + D + VGG19, batch 2, GT 64, one
CPU device per core; same options), runs it until warm, then traces `--steps` steps. For each
device it sums the traced time of each kind of XLA op (the HLO instruction's name without its
number: `ynn_fusion` are YNNPACK's convolutions and dots, `transpose_copy_fusion` layout copies,
`all-reduce` the gradient mean with its waits for the other devices, ...), and reports the part
of the step that no traced op covers. On XLA's CPU backend that part is mostly work the trace
does not name: dots that XLA emits itself (the dense blocks' kernel gradients) and Eigen
convolutions run as thread-pool tasks, plus the executor's dispatch between ops. Prints JSON and
writes it to --out; it explains a train-step ratio, the ratio itself is `train_step.py`'s.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import report  # pylint: disable=wrong-import-position  # benchmarks/report.py
import train_step  # pylint: disable=wrong-import-position  # benchmarks/train_step.py


def op_kind(hlo_op: str) -> str:
  """`transpose_copy_fusion.87` -> `transpose_copy_fusion`."""
  return re.sub(r"\.\d+$", "", hlo_op)


def covered_seconds(intervals: list[tuple[float, float]]) -> float:
  """Length of the union of (start, end) intervals."""
  total, end = 0.0, float("-inf")
  for start, stop in sorted(intervals):
    if stop <= end:
      continue
    total += stop - max(start, end)
    end = stop
  return total


def device_breakdown(trace_events: list[dict], steps: int, wall_s: float) -> dict:
  """Per device: seconds per step by op kind, covered by any op, and left untraced."""
  ops = collections.defaultdict(list)  # device -> [(kind, start_s, end_s)]
  for event in trace_events:
    args = event.get("args", {})
    if event.get("ph") == "X" and "hlo_op" in args and "device_ordinal" in args:
      start = event["ts"] * 1e-6
      ops[args["device_ordinal"]].append((op_kind(args["hlo_op"]), start, start + event["dur"] * 1e-6))
  result = {}
  for device, events in sorted(ops.items()):
    by_kind = collections.Counter()
    for kind, start, stop in events:
      by_kind[kind] += (stop - start) / steps
    covered = covered_seconds([(start, stop) for _, start, stop in events]) / steps
    result[f"device_{device}"] = {
        "ops_per_step": len(events) / steps,
        "traced_s_per_step": covered,
        "untraced_s_per_step": wall_s - covered,
        "by_kind_s_per_step": dict(by_kind.most_common())}
  return result


def perfetto_events(trace_dir: Path) -> list[dict]:
  [path] = sorted(trace_dir.glob("plugins/profile/*/perfetto_trace.json.gz"))
  with gzip.open(path) as f:
    data = json.load(f)
  return data["traceEvents"] if isinstance(data, dict) else data


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  train_step.add_step_arguments(parser)
  parser.add_argument("--warmup", type=int, default=3, help="untraced steps after the first")
  parser.add_argument("--steps", type=int, default=3, help="traced steps")
  parser.add_argument("--out", type=Path, default=Path("benchmarks/results/step_profile_cpu.json"))
  args = parser.parse_args()
  from jaxsr.train import sharding  # pylint: disable=import-outside-toplevel

  sharding.use_cpu_cores(args.batch)  # Before JAX starts, as `python -m jaxsr.train` does.
  import jax  # pylint: disable=import-outside-toplevel

  info, step = train_step.jax_stepper(args, count_flops=False)
  for _ in range(args.warmup):
    step()
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    walls = [train_step.timed(step) for _ in range(args.steps)]
    jax.profiler.stop_trace()
    events = perfetto_events(Path(trace_dir))
  wall = sum(walls) / len(walls)
  result = {"config": vars(args) | {"out": str(args.out)}, "host": report.host_info(),
            "jax": info, "step_s_traced": walls,
            "devices": device_breakdown(events, args.steps, wall)}
  report.write_result(result, args.out)


if __name__ == "__main__":
  main()
