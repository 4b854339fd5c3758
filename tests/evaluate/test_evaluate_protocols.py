"""Protocols: GT and LR against the same steps written out with PIL / SciPy / NumPy in the test."""

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from jaxsr.evaluate import protocols


def _random_image(height, width, seed=0):
  rng = np.random.default_rng(seed)
  # Smooth-ish content (a ramp plus noise) so resampling is not all ringing.
  ramp = np.linspace(0.2, 0.8, width)[None, :, None]
  return np.clip(ramp + 0.15 * rng.standard_normal((height, width, 3)), 0, 1).astype(np.float32)


def _pil_float_resize(image, size_wh, resample):
  """Reference: each channel as a PIL 'F' image, resized."""
  return np.stack([np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize(
      size_wh, resample)) for c in range(image.shape[-1])], axis=-1)


def _scipy_blur(image, sigma, kernel_size):
  """Reference Gaussian blur: scipy's 'mirror' is OpenCV's reflect-101; radius = size // 2."""
  radius = kernel_size // 2
  return np.stack([ndimage.gaussian_filter(image[..., c].astype(np.float64), sigma, mode="mirror",
                                           truncate=radius / sigma)
                   for c in range(image.shape[-1])], axis=-1)


def test_named_protocols_match_the_paper():
  retina = protocols.get_protocol("retina-x2")
  chest = protocols.get_protocol("chest-x4")
  assert (retina.scale, tuple(retina.gt_size)) == (2, (512, 512))
  assert (chest.scale, tuple(chest.gt_size)) == (4, (1024, 1024))
  assert retina.metrics.vessel and not chest.metrics.vessel
  assert chest.metrics.texture and not retina.metrics.texture
  assert retina.metrics.crop_border == 2 and chest.metrics.crop_border == 4
  assert retina.bicubic_a == -0.5


def test_overrides_are_checked_and_crop_border_is_independent_of_scale():
  config = protocols.get_protocol("custom", scale=3, gt_size=(48, 60), blur_sigma=0.5)
  assert config.metrics.crop_border == 3
  config.metrics.crop_border = 0
  assert config.scale == 3  # Changing the crop must not rewrite the scale.
  with pytest.raises(KeyError):
    protocols.get_protocol("retina-x2", blur_sigmaa=1.0)
  with pytest.raises(ValueError):
    protocols.get_protocol("custom", blur_kernel_size=6)
  with pytest.raises(ValueError):
    protocols.get_protocol("custom", scale=4, gt_size=(30, 32))
  with pytest.raises(ValueError):
    protocols.get_protocol("nih")


def test_retina_pair_matches_pil_lanczos_bicubic_and_gaussian_steps():
  source = _random_image(70, 90)
  config = protocols.get_protocol("retina-x2", quantize_8bit=False)
  gt, lr = protocols.make_pair(source, config)

  expected_gt = _pil_float_resize(source, (512, 512), Image.Resampling.LANCZOS)
  expected_lr = _scipy_blur(_pil_float_resize(expected_gt, (256, 256), Image.Resampling.BICUBIC),
                            sigma=1.0, kernel_size=7)
  assert gt.shape == (512, 512, 3) and lr.shape == (256, 256, 3)
  np.testing.assert_allclose(gt, expected_gt, atol=1e-6)
  np.testing.assert_allclose(lr, expected_lr, atol=1e-5)


def test_chest_pair_is_quantised_to_8_bit_levels():
  source = _random_image(1024, 1024, seed=1)[..., :1]  # Gray input, already at GT size.
  config = protocols.get_protocol("chest-x4", blur_sigma=1.5, blur_kernel_size=9)
  gt, lr = protocols.make_pair(source, config)
  assert gt.shape == (1024, 1024, 3) and lr.shape == (256, 256, 3)
  # GT is not resized (already 1024x1024): only rounded to 8 bits, gray repeated.
  np.testing.assert_array_equal(gt, np.repeat(np.round(source * 255) / 255, 3, axis=-1))
  unrounded = _scipy_blur(_pil_float_resize(gt, (256, 256), Image.Resampling.BICUBIC), 1.5, 9)
  np.testing.assert_allclose(lr * 255, np.round(np.clip(unrounded, 0, 1) * 255), atol=1.0 + 1e-6)
  # Away from .5 rounding ties the two must agree exactly.
  assert np.mean(lr * 255 != np.round(np.clip(unrounded, 0, 1) * 255)) < 1e-3
  np.testing.assert_array_equal(lr * 255, np.round(lr * 255))


def test_custom_protocol_mod_crops_and_blur_zero_is_plain_bicubic():
  source = _random_image(37, 50, seed=2)
  config = protocols.get_protocol("custom", scale=4, blur_sigma=0.0, quantize_8bit=False)
  gt, lr = protocols.make_pair(source, config)
  np.testing.assert_array_equal(gt, source[:36, :48])
  np.testing.assert_allclose(lr, _pil_float_resize(source[:36, :48], (12, 9),
                                                   Image.Resampling.BICUBIC), atol=1e-6)


def test_gaussian_blur_matches_scipy_reflect101():
  image = _random_image(20, 24, seed=3)
  for sigma, size in [(1.0, 7), (2.0, 5), (0.6, 3)]:
    np.testing.assert_allclose(protocols.gaussian_blur(image, sigma, size),
                               _scipy_blur(image, sigma, size), atol=1e-6)


def _keys_cubic(x, a=-0.5):
  x = np.abs(x)
  return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                  np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))


def test_bicubic_baseline_is_keys_cubic_with_a_minus_half():
  """Interior pixels of PIL's bicubic x2 equal Keys' kernel with a = -0.5 (not PyTorch's -0.75)."""
  rng = np.random.default_rng(4)
  lr = rng.random((12, 12, 3)).astype(np.float32)
  sr = protocols.bicubic_upscale(lr, 2)
  assert sr.shape == (24, 24, 3)
  # Output pixel i samples input coordinate (i + 0.5) / 2 - 0.5 (pixel centres aligned).
  def weights(n_out):
    matrix = np.zeros((n_out, n_out // 2))
    for i in range(n_out):
      centre = (i + 0.5) / 2 - 0.5
      for j in range(n_out // 2):
        matrix[i, j] = _keys_cubic(centre - j)
    return matrix
  w = weights(24)
  expected = np.einsum("ij,jkc,lk->ilc", w, lr.astype(np.float64), w)
  interior = slice(4, 20)  # Far from the borders, where PIL renormalises truncated kernels.
  np.testing.assert_allclose(sr[interior, interior], expected[interior, interior], atol=1e-5)
  # The same pixels with a = -0.75 are measurably different: the test can tell the two apart.
  w75 = np.vectorize(lambda x: _keys_cubic(x, -0.75))(
      np.subtract.outer((np.arange(24) + 0.5) / 2 - 0.5, np.arange(12)))
  other = np.einsum("ij,jkc,lk->ilc", w75, lr.astype(np.float64), w75)
  assert np.abs(other[interior, interior] - sr[interior, interior]).max() > 1e-2


def test_protocol_summary_is_plain_json_data():
  summary = protocols.protocol_summary(protocols.get_protocol("retina-x2"))
  assert summary["gt_size"] == [512, 512]
  assert summary["metrics"]["vessel_sigmas"] == [1.0, 2.0, 3.0, 4.0]
  assert summary["blur_sigma"] == 1.0 and summary["metrics"]["color_space"] == "rgb"
  text = protocols.describe(protocols.get_protocol("chest-x4"))
  assert "x4" in text and "sigma 1.0" in text and "1024x1024" in text
  assert "texture-area" in text
  assert "texture-area" not in protocols.describe(protocols.get_protocol("retina-x2"))
