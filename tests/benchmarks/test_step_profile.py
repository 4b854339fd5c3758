"""benchmarks/step_profile.py: the trace's per-device sums against NumPy and a real trace."""

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import step_profile  # pylint: disable=wrong-import-position


def test_covered_seconds_is_the_union_of_the_intervals():
  rng = np.random.default_rng(0)
  starts = rng.integers(0, 900, 40)
  intervals = [(float(s), float(s + d)) for s, d in zip(starts, rng.integers(1, 60, 40))]
  grid = np.zeros(1000, bool)  # Unit cells: interval (s, e) covers cells s .. e-1.
  for start, stop in intervals:
    grid[int(start):int(stop)] = True
  assert step_profile.covered_seconds(intervals) == pytest.approx(grid.sum())


def _op(device, name, start_us, dur_us):
  return {"ph": "X", "ts": start_us, "dur": dur_us, "name": name,
          "args": {"device_ordinal": str(device), "hlo_op": name}}


def test_breakdown_sums_kinds_per_step_and_leaves_the_rest_untraced():
  events = [_op(0, "ynn_fusion.1", 0, 400), _op(0, "ynn_fusion.2", 500, 300),
            _op(0, "all-reduce.3", 700, 200),  # Overlaps ynn_fusion.2 by 100 us.
            _op(1, "transpose_copy_fusion.4", 0, 100),
            {"ph": "X", "ts": 0, "dur": 1000, "name": "ThunkExecutor::Execute", "args": {}}]
  result = step_profile.device_breakdown(events, steps=2, wall_s=1e-3)
  zero = result["device_0"]
  assert zero["by_kind_s_per_step"] == pytest.approx({"ynn_fusion": 3.5e-4, "all-reduce": 1e-4})
  assert zero["traced_s_per_step"] == pytest.approx(4e-4)  # 0-400 and 500-900 us over 2 steps.
  assert zero["untraced_s_per_step"] == pytest.approx(6e-4)
  assert zero["ops_per_step"] == 1.5
  assert result["device_1"]["by_kind_s_per_step"] == pytest.approx({"transpose_copy_fusion": 5e-5})


def test_a_real_trace_names_the_ops_of_each_device(tmp_path):
  kernel = np.ones((3, 3, 8, 8), np.float32)
  conv = jax.jit(lambda x: jax.nn.relu(jax.lax.conv_general_dilated(
      x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))))
  x = np.ones((1, 32, 32, 8), np.float32)
  conv(x).block_until_ready()
  jax.profiler.start_trace(str(tmp_path), create_perfetto_trace=True)
  conv(x).block_until_ready()
  jax.profiler.stop_trace()
  result = step_profile.device_breakdown(step_profile.perfetto_events(tmp_path), 1, wall_s=1.0)
  device = result["device_0"]
  assert device["ops_per_step"] >= 1
  assert 0 < device["traced_s_per_step"] < 1.0
  assert sum(device["by_kind_s_per_step"].values()) >= device["traced_s_per_step"] * 0.999
