"""Per-image degradation ops against NumPy/SciPy/PIL/PyTorch references written here."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from jaxsr.degradation import ops

RNG = np.random.default_rng(1234)


def smooth_image(height, width, seed=0, noise=0.0):
  """A natural-looking RGB test image in [0, 1]: blurred random fields with sharp edges."""
  rng = np.random.default_rng(seed)
  img = ndimage.gaussian_filter(rng.random((height, width, 3)), (4, 4, 0))
  img = (img - img.min()) / (img.max() - img.min())
  img[height // 3:height // 2, width // 4:width // 2] = [0.9, 0.2, 0.1]  # a hard-edged patch
  img = img + noise * rng.standard_normal(img.shape)
  return np.clip(img, 0, 1).astype(np.float32)


def correlate_mirror(img, kernel):
  """Per-channel correlation with reflect-101 ('mirror' in SciPy) borders."""
  return np.stack([ndimage.correlate(img[..., c].astype(np.float64), kernel, mode="mirror")
                   for c in range(img.shape[-1])], axis=-1)


# ---------------------------------------------------------------------------------------------
# filter2d and USM.


@pytest.mark.parametrize("shape,ksize", [((64, 48, 3), 21), ((23, 37, 3), 7), ((40, 40, 1), 51)])
def test_filter2d_matches_scipy_correlate(shape, ksize):
  img = RNG.random(shape).astype(np.float32)
  kernel = RNG.random((ksize, ksize)).astype(np.float32)  # asymmetric: catches a flip
  kernel /= kernel.sum()
  out = ops.filter2d(img, kernel).numpy()
  assert out.shape == shape
  np.testing.assert_allclose(out, correlate_mirror(img, kernel), atol=2e-6)


def test_filter2d_rejects_even_kernels():
  with pytest.raises(ValueError, match="odd"):
    ops.filter2d(np.zeros((30, 30, 3), np.float32), np.ones((4, 4), np.float32))


def test_gaussian_kernel1d_is_cv2_formula():
  taps = ops.gaussian_kernel1d(51, 8.0).numpy()
  x = np.arange(51) - 25
  expected = np.exp(-x**2 / (2 * 64.0))
  np.testing.assert_allclose(taps, expected / expected.sum(), rtol=1e-5)


def reference_usm(img, weight=0.5, threshold=10, radius=25, sigma=8.0):
  x = np.arange(-radius, radius + 1)
  g = np.exp(-x**2 / (2 * sigma**2))
  g /= g.sum()
  kernel = np.outer(g, g)
  residual = img - correlate_mirror(img, kernel)
  mask = (np.abs(residual) * 255 > threshold).astype(np.float64)
  soft = correlate_mirror(mask, kernel)
  sharp = np.clip(img + weight * residual, 0, 1)
  return soft * sharp + (1 - soft) * img, mask


def test_usm_sharpen_matches_formula():
  img = smooth_image(96, 80)
  expected, mask = reference_usm(img.astype(np.float64))
  assert 0.05 < mask.mean() < 0.95  # the threshold matters on this image
  out = ops.usm_sharpen(img).numpy()
  np.testing.assert_allclose(out, expected, atol=1e-5)
  assert not np.allclose(out, img, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Resize: PyTorch's F.interpolate is the reference.

def torch_interpolate(img, **kwargs):
  import torch
  F = torch.nn.functional
  t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
  if kwargs["mode"] != "area":
    kwargs["align_corners"] = False
  return F.interpolate(t, **kwargs)[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("mode", ops.RESIZE_MODES)
@pytest.mark.parametrize("size", [(37, 53), (20, 31), (71, 90), (9, 5), (50, 40)])
def test_resize_to_size_matches_pytorch(mode, size):
  img = RNG.random((37, 53, 3)).astype(np.float32)
  out = ops.resize(img, size, mode).numpy()
  expected = torch_interpolate(img, size=size, mode=mode)
  assert out.shape == expected.shape == (*size, 3)
  np.testing.assert_allclose(out, expected, atol=5e-6)


@pytest.mark.parametrize("mode", ops.RESIZE_MODES)
@pytest.mark.parametrize("factor", [0.15, 0.37, 1.0, 1.3, 1.5])
def test_resize_by_scale_factor_matches_pytorch(mode, factor):
  img = RNG.random((61, 47, 3)).astype(np.float32)
  size = (ops.output_size(61, factor), ops.output_size(47, factor))
  out = ops.resize(img, size, mode, scale_factor=factor).numpy()
  expected = torch_interpolate(img, scale_factor=factor, mode=mode)
  assert out.shape == expected.shape
  np.testing.assert_allclose(out, expected, atol=5e-6)


@pytest.mark.parametrize("mode", ops.RESIZE_MODES)
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_resize_output_shapes(mode, scale):
  img = RNG.random((400, 400, 3)).astype(np.float32)
  down = ops.resize(img, (400 // scale, 400 // scale), mode)
  assert down.shape == (400 // scale, 400 // scale, 3)
  up = ops.resize(down, (400, 400), mode)
  assert up.shape == (400, 400, 3)


def test_resize_keeps_constants_and_rejects_unknown_modes():
  img = np.full((30, 20, 3), 0.25, np.float32)
  for mode in ops.RESIZE_MODES:
    np.testing.assert_allclose(ops.resize(img, (13, 47), mode).numpy(), 0.25, atol=1e-6)
  with pytest.raises(ValueError, match="unknown resize mode"):
    ops.resize(img, (10, 10), "lanczos")


# ---------------------------------------------------------------------------------------------
# Noise.


def test_gaussian_noise_colour_statistics():
  img = np.full((256, 256, 3), 0.5, np.float32)
  sigma = 20 / 255
  noise = ops.add_gaussian_noise(img, np.array([1, 2]), sigma, False).numpy() - img
  assert abs(noise.mean()) < 4 * sigma / np.sqrt(noise.size)
  assert noise.std() == pytest.approx(sigma, rel=0.01)
  # Independent per channel.
  correlation = np.corrcoef(noise.reshape(-1, 3).T)
  assert np.all(np.abs(correlation[np.triu_indices(3, 1)]) < 0.02)


def test_gaussian_noise_gray_is_one_field_for_all_channels():
  img = np.full((256, 256, 3), 0.5, np.float32)
  sigma = 5 / 255
  noise = ops.add_gaussian_noise(img, np.array([3, 4]), sigma, True).numpy() - img
  np.testing.assert_array_equal(noise[..., 0], noise[..., 1])
  np.testing.assert_array_equal(noise[..., 0], noise[..., 2])
  assert noise.std() == pytest.approx(sigma, rel=0.01)


def test_noise_depends_on_the_seed_only():
  img = np.full((32, 32, 3), 0.5, np.float32)
  a = ops.add_gaussian_noise(img, np.array([5, 6]), 0.1, False).numpy()
  b = ops.add_gaussian_noise(img, np.array([5, 6]), 0.1, False).numpy()
  c = ops.add_gaussian_noise(img, np.array([5, 7]), 0.1, False).numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def poisson_test_image(num_levels, flat_rgb):
  """A 300x300 image: a ramp of `num_levels` gray levels on top, a large flat colour below."""
  img = np.empty((300, 300, 3), np.float32)
  img[:] = np.asarray(flat_rgb, np.float32) / 255
  ramp = (np.arange(300 * 20) % num_levels).reshape(20, 300) / 255
  img[:20] = ramp[..., None]
  return img


def test_count_8bit_levels_matches_numpy_unique():
  img = RNG.random((50, 40, 3)).astype(np.float32) * 0.3
  expected = len(np.unique(np.clip(np.round(img * 255), 0, 255)))
  assert int(ops.count_8bit_levels(img)) == expected


@pytest.mark.parametrize("num_levels,vals", [(129, 256), (128, 128), (60, 64)])
def test_poisson_noise_variance_follows_the_level_count(num_levels, vals):
  # The flat colour's channel values are among the ramp's levels: the image has num_levels.
  flat = (100, 40, 10) if num_levels > 100 else (30, 20, 10)
  img = poisson_test_image(num_levels, flat)
  levels = len(np.unique(np.round(img * 255)))
  expected_vals = 2 ** np.ceil(np.log2(levels))
  assert expected_vals == vals
  scale = 2.0
  noise = ops.poisson_noise(img, np.array([9, 9]), scale, False).numpy()[20:]
  for channel, value in enumerate(flat):
    # Var[Poisson(q * vals) / vals] * scale^2 = q / vals * scale^2, q = value / 255.
    expected_var = value / 255 / vals * scale**2
    assert noise[..., channel].var() == pytest.approx(expected_var, rel=0.03)
    assert abs(noise[..., channel].mean()) < 4 * np.sqrt(expected_var / noise[..., 0].size)


def test_poisson_gray_noise_uses_luma():
  flat = (200, 100, 50)
  img = poisson_test_image(150, flat)
  luma = np.round((0.2989 * 200 + 0.587 * 100 + 0.114 * 50)) / 255
  scale = 1.5
  noise = ops.poisson_noise(img, np.array([2, 8]), scale, True).numpy()[20:]
  np.testing.assert_array_equal(noise[..., 0], noise[..., 2])
  # The gray image has the ramp's 150 levels plus the flat luma: vals = 256.
  assert noise[..., 0].var() == pytest.approx(luma / 256 * scale**2, rel=0.03)


# ---------------------------------------------------------------------------------------------
# Quantisation and JPEG.


def test_quantize_8bit_is_numpy_rounding():
  img = (RNG.random((40, 40, 3)) * 1.2 - 0.1).astype(np.float32)
  expected = np.round(np.clip(img, 0, 1) * 255) / 255
  np.testing.assert_allclose(ops.quantize_8bit(img).numpy(), expected, atol=1e-7)


@pytest.mark.parametrize("quality", [30, 47, 75, 95])
def test_jpeg_equals_pil_at_the_same_quality(quality):
  img = smooth_image(96, 80, seed=quality, noise=0.05)
  pixels = np.round(img * 255).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
  expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).astype(int)
  out = ops.jpeg(img, quality).numpy()
  levels = np.round(out * 255)
  np.testing.assert_allclose(out * 255, levels, atol=1e-3)  # decoded values are 8-bit levels
  diff = np.abs(levels.astype(int) - expected)
  # Both use libjpeg(-turbo) with 4:2:0 and the accurate integer IDCT; measured: identical.
  # Builds of libjpeg may differ in rounding, hence the tolerance of 1 level on 1% of pixels.
  assert diff.max() <= 1
  assert (diff == 0).mean() >= 0.99
  # And it really compresses: lower quality, more error.
  assert np.abs(levels - pixels).mean() > 0.5


def test_jpeg_quality_orders_the_error():
  img = smooth_image(64, 64, noise=0.05)
  errors = [np.abs(ops.jpeg(img, q).numpy() - img).mean() for q in (30, 60, 95)]
  assert errors[0] > errors[1] > errors[2]


def _clipped_gaussian_mean(x: float, sigma: float) -> float:
  """E[clip(x + sigma Z, 0, 1)] by numerical integration against SciPy's normal density."""
  from scipy import integrate, stats

  value, _ = integrate.quad(lambda z: np.clip(x + sigma * z, 0.0, 1.0) * stats.norm.pdf(z),
                            -12, 12, points=[-x / sigma, (1 - x) / sigma], limit=200)
  return value


NOISE_SIGMA = 20 / 255


def _flat_image_and_noise(level: float) -> tuple[np.ndarray, np.ndarray]:
  """A flat 256x256x3 image at `level` and a fixed field of N(0, NOISE_SIGMA^2) noise."""
  img = np.full((256, 256, 3), level, np.float32)
  return img, ops.gaussian_noise(np.array(img.shape), np.array([7, 8]), NOISE_SIGMA, False).numpy()


@pytest.mark.parametrize("level", [0.02, 0.5, 0.97])
def test_clipping_noise_shifts_the_mean_as_the_censored_normal_predicts(level):
  # The cause of the training pairs' intensity bias: clip(x + n) darkens bright pixels and
  # brightens dark ones. Measured on a flat image against the censored normal's mean.
  sigma = NOISE_SIGMA
  img, noise = _flat_image_and_noise(level)
  clipped = ops.bound_noise(img, noise, "clip").numpy()
  expected_shift = _clipped_gaussian_mean(level, sigma) - level
  standard_error = sigma / np.sqrt(img.size)
  assert clipped.mean() - level == pytest.approx(expected_shift, abs=5 * standard_error)
  if level != 0.5:
    assert abs(expected_shift) * 255 > 1.0  # More than a level of 255 at these intensities.


@pytest.mark.parametrize("level", [0.02, 0.5, 0.97])
def test_symmetric_noise_bound_keeps_the_mean_and_the_range(level):
  sigma = NOISE_SIGMA
  img, noise = _flat_image_and_noise(level)
  bounded = ops.bound_noise(img, noise, "symmetric").numpy()
  assert bounded.min() >= 0.0 and bounded.max() <= 1.0
  # Symmetric noise clipped to [-m, m] stays symmetric: the mean stays at `level`.
  assert bounded.mean() - level == pytest.approx(0.0, abs=5 * sigma / np.sqrt(img.size))
  # Where the noise fits, it is untouched (NumPy: the same formula written out).
  margin = min(level, 1 - level)
  np.testing.assert_allclose(bounded, level + np.clip(noise, -margin, margin), atol=1e-6)


def test_bound_noise_rejects_unknown_modes():
  with pytest.raises(ValueError, match="noise_clip"):
    ops.bound_noise(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.float32), "wrap")
