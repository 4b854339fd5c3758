"""benchmarks/roofline.py: XLA's FLOP count against the count by hand, and the record's arithmetic."""

import shutil
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import roofline  # pylint: disable=wrong-import-position


def test_xla_flops_of_a_convolution_counts_two_per_multiply_add_inside_the_image():
  batch, size, cin, cout = 2, 24, 16, 8
  kernel = np.zeros((3, 3, cin, cout), np.float32)

  def conv(x):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  flops = roofline.xla_flops(conv, jax.ShapeDtypeStruct((batch, size, size, cin), jnp.float32))
  # Multiply-adds with a pixel inside the image: along each axis a 3-tap kernel over `size` pixels
  # with zero padding of 1 has 3 * size - 2 such taps.
  by_hand = 2 * batch * (3 * size - 2) ** 2 * cin * cout
  assert flops == pytest.approx(by_hand, rel=0.01)


def test_shape_structs_drop_values_and_keep_shapes():
  structs = roofline.shape_structs({"a": np.zeros((2, 3), np.float32), "b": jnp.ones(4, jnp.int32)})
  assert structs["a"].shape == (2, 3) and structs["a"].dtype == np.float32
  assert structs["b"].shape == (4,) and structs["b"].dtype == np.int32


def test_summary_rates_fractions_and_ceiling():
  record = roofline.summary(
      flops=6e9, seconds={"jaxsr": 2.0, "pytorch": 3.0},
      matmul={"jaxsr": 4e9, "pytorch": 3e9}, device_kind="NVIDIA H100 80GB HBM3")
  assert record["achieved_gflop_per_s"] == {"jaxsr": 3.0, "pytorch": 2.0}
  assert record["fraction_of_best_matmul_rate"] == {"jaxsr": 0.75, "pytorch": 0.5}
  assert record["ratio_ceiling"] == 2.0  # 4 GFLOP/s over PyTorch's 2.
  assert record["fraction_of_published_bf16_peak"]["jaxsr"] == pytest.approx(3e9 / 989e12, abs=1e-3)
  assert "published_bf16_peak_tflop_per_s" not in roofline.summary(
      6e9, {"jaxsr": 2.0, "pytorch": 3.0}, {"jaxsr": 4e9, "pytorch": 3e9}, "cpu")


def test_matmul_rates_are_positive_and_finite():
  for rate in (roofline.jax_matmul_flops_per_s(size=128, repeats=1),
               roofline.torch_matmul_flops_per_s(size=128, repeats=1)):
    assert np.isfinite(rate) and rate > 0


def test_summary_against_the_fma_peak():
  record = roofline.summary(6e9, {"jaxsr": 2.0, "pytorch": 3.0}, {"jaxsr": 4e9, "pytorch": 5e9},
                            "cpu", fma_peak=8e9)
  assert record["fma_peak_gflop_per_s"] == 8.0
  assert record["fraction_of_fma_peak"] == {"jaxsr": 0.375, "pytorch": 0.25}
  assert record["ratio_ceiling_fma_peak"] == 4.0  # 8 GFLOP/s over PyTorch's 2.
  assert "fma_peak_gflop_per_s" not in roofline.summary(
      6e9, {"jaxsr": 2.0, "pytorch": 3.0}, {"jaxsr": 4e9, "pytorch": 5e9}, "cpu")


@pytest.mark.skipif(not any(shutil.which(c) for c in ("cc", "gcc", "clang")),
                    reason="no C compiler to build benchmarks/fma_peak.c")
def test_fma_peak_bounds_a_matmul_on_the_same_cores():
  # A matmul is FMAs plus loads, so oneDNN's on every thread cannot beat the FMA peak of every core;
  # and it reaches a good part of it (so the peak is not overcounted, e.g. by a folded loop).
  import torch  # pylint: disable=import-outside-toplevel

  peak = roofline.cpu_fma_peak_flops_per_s(threads=torch.get_num_threads(),
                                           iterations=20_000_000)
  matmul = roofline.torch_matmul_flops_per_s(size=1024, repeats=3)
  assert matmul <= 1.1 * peak
  assert matmul >= 0.1 * peak


def test_xla_flops_refuses_a_loop_whose_body_the_cost_model_counts_once():
  def repeated(x):
    return jax.lax.fori_loop(0, 23, lambda _, y: y @ y, x)

  with pytest.raises(ValueError, match="loop"):
    roofline.xla_flops(repeated, jax.ShapeDtypeStruct((8, 8), jnp.float32))
