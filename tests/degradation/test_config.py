"""The defaults are the original recipe's numbers (REFERENCE.md section 3), and lq_size follows."""

import math

import pytest

from jaxsr.degradation import default_config


def test_lq_size_follows_gt_size_and_scale():
  config = default_config()
  assert (config.scale, config.gt_size, config.lq_size) == (4, 256, 64)
  config.scale = 2
  assert config.lq_size == 128
  config.gt_size = 128
  config.scale = 1
  assert config.lq_size == 128


def test_original_numbers():
  c = default_config()
  assert c.use_hflip
  assert (c.usm.kernel_size, c.usm.sigma, c.usm.weight, c.usm.threshold) == (51, 8.0, 0.5, 10.0)
  for kernel, sigma in ((c.kernel1, (0.2, 3.0)), (c.kernel2, (0.2, 1.5))):
    assert tuple(kernel.sizes) == (7, 9, 11, 13, 15, 17, 19, 21)
    assert tuple(kernel.kind_probs) == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert sum(kernel.kind_probs) == pytest.approx(1.0)
    assert tuple(kernel.sigma_range) == sigma
    assert tuple(kernel.betag_range) == (0.5, 4.0) and tuple(kernel.betap_range) == (1.0, 2.0)
    assert kernel.sinc_prob == 0.1
    assert kernel.sinc_omega_range_small == pytest.approx((math.pi / 3, math.pi))
    assert kernel.sinc_omega_range_large == pytest.approx((math.pi / 5, math.pi))
  assert c.final_sinc.prob == 0.8
  assert c.final_sinc.omega_range == pytest.approx((math.pi / 3, math.pi))
  assert tuple(c.stage1.resize_prob) == (0.2, 0.7, 0.1)
  assert tuple(c.stage1.resize_range) == (0.15, 1.5)
  assert tuple(c.stage1.noise_range) == (1.0, 30.0)
  assert tuple(c.stage1.poisson_scale_range) == (0.05, 3.0)
  assert tuple(c.stage2.resize_prob) == (0.3, 0.4, 0.3)
  assert tuple(c.stage2.resize_range) == (0.3, 1.2)
  assert tuple(c.stage2.noise_range) == (1.0, 25.0)
  assert tuple(c.stage2.poisson_scale_range) == (0.05, 2.5)
  assert c.stage2.blur_prob == 0.8
  for stage in (c.stage1, c.stage2):
    assert stage.gaussian_noise_prob == 0.5 and stage.gray_noise_prob == 0.4
    assert tuple(stage.jpeg_range) == (30, 95)
    assert tuple(stage.resize_modes) == ("area", "bilinear", "bicubic")
  assert c.final.resize_then_jpeg_prob == 0.5
