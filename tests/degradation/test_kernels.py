"""Blur kernels against NumPy/SciPy closed forms, and their sampling distributions."""

import math

import numpy as np
import pytest
import scipy.special
import tensorflow as tf

from jaxsr.degradation import config as config_lib
from jaxsr.degradation import kernels

PAD_TO = 21
ISOTROPIC = {"iso", "generalized_iso", "plateau_iso"}


def reference_mixed_kernel(kind, size, sigma_x, sigma_y, theta, beta):
  """The original's formulas: size x size grid, inverse covariance, then zero padding to 21."""
  if kind in ISOTROPIC:
    sigma_y, theta = sigma_x, 0.0
  rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  covariance = rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T
  axis = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
  xx, yy = np.meshgrid(axis, axis)
  offsets = np.stack([xx, yy], axis=-1)
  q = np.einsum("...i,ij,...j->...", offsets, np.linalg.inv(covariance), offsets)
  if kind in ("iso", "aniso"):
    values = np.exp(-0.5 * q)
  elif kind.startswith("generalized"):
    values = np.exp(-0.5 * q**beta)
  else:
    values = 1.0 / (1.0 + q**beta)
  values /= values.sum()
  pad = (PAD_TO - size) // 2
  return np.pad(values, pad)


def reference_sinc_kernel(size, omega):
  centre = (size - 1) / 2
  rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
  r = np.hypot(rows - centre, cols - centre)
  with np.errstate(invalid="ignore", divide="ignore"):
    values = omega * scipy.special.j1(omega * r) / (2 * np.pi * r)
  values[size // 2, size // 2] = omega**2 / (4 * np.pi)
  values /= values.sum()
  pad = (PAD_TO - size) // 2
  return np.pad(values, pad)


@pytest.mark.parametrize("kind", config_lib.KERNEL_KINDS)
@pytest.mark.parametrize("size,sigma_x,sigma_y,theta,beta", [
    (21, 2.7, 0.6, 0.9, 0.7),
    (9, 1.3, 2.2, -2.5, 1.8),
    (15, 0.4, 1.1, 3.0, 3.5),
])
def test_mixed_kernel_matches_closed_form(kind, size, sigma_x, sigma_y, theta, beta):
  kernel = kernels.mixed_kernel(kind, size, sigma_x, sigma_y, theta, beta).numpy()
  expected = reference_mixed_kernel(kind, size, sigma_x, sigma_y, theta, beta)
  assert kernel.shape == (PAD_TO, PAD_TO)
  assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
  np.testing.assert_allclose(kernel, expected, atol=2e-6 * expected.max(), rtol=1e-4)


@pytest.mark.parametrize("size,omega", [(7, math.pi / 3), (13, 2.0), (21, math.pi / 5),
                                        (21, math.pi)])
def test_sinc_kernel_matches_bessel_formula(size, omega):
  kernel = kernels.sinc_kernel(size, omega).numpy()
  expected = reference_sinc_kernel(size, omega)
  assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
  np.testing.assert_allclose(kernel, expected, atol=1e-6)


def kernel_covariance(kernel):
  """Covariance of the (non-negative) kernel seen as a distribution over (x=col, y=row)."""
  centre = PAD_TO // 2
  rows, cols = np.mgrid[0:PAD_TO, 0:PAD_TO] - centre
  weights = kernel / kernel.sum()
  x, y = cols.ravel(), rows.ravel()
  w = weights.ravel()
  mean = np.array([w @ x, w @ y])
  d = np.stack([x - mean[0], y - mean[1]])
  return (d * w) @ d.T, mean


@pytest.mark.parametrize("theta", [0.0, math.pi / 6, -1.2])
def test_anisotropic_gaussian_has_the_rotated_covariance(theta):
  sigma_x, sigma_y = 2.5, 1.0
  kernel = kernels.mixed_kernel("aniso", 21, sigma_x, sigma_y, theta).numpy()
  covariance, mean = kernel_covariance(kernel)
  rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  expected = rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T
  np.testing.assert_allclose(mean, 0.0, atol=1e-6)
  # Truncation at +-10 pixels (4 sigma) shrinks the variance by well under 1%.
  np.testing.assert_allclose(covariance, expected, atol=0.03 * sigma_x**2)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)
  major = eigenvectors[:, np.argmax(eigenvalues)]
  angle = math.atan2(major[1], major[0])
  # An axis has no sign: compare angles modulo pi.
  assert abs((angle - theta + math.pi / 2) % math.pi - math.pi / 2) < 0.01


def test_isotropic_kinds_ignore_sigma_y_and_theta():
  kernel = kernels.mixed_kernel("iso", 21, 1.5, 0.3, 1.0).numpy()
  covariance, _ = kernel_covariance(kernel)
  np.testing.assert_allclose(covariance, np.diag([1.5**2, 1.5**2]), atol=1e-3)


def test_unknown_kind_is_rejected():
  with pytest.raises(ValueError, match="unknown kernel kind"):
    kernels.mixed_kernel("box", 7, 1.0)


def draw_many(sample_fn, section, count):
  """Draws `count` kernels (and their parameters) for seeds (i, 7), in one traced loop."""

  @tf.function
  def draw(seeds):
    def one(seed):
      kernel, params = sample_fn(seed, section)
      return kernel, params
    example = sample_fn(tf.constant([0, 0], tf.int64), section)
    signature = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), example)
    return tf.map_fn(one, seeds, fn_output_signature=signature)

  seeds = tf.stack([tf.range(count, dtype=tf.int64), tf.fill([count], tf.constant(7, tf.int64))],
                   axis=1)
  kernel, params = draw(seeds)
  return kernel.numpy(), {k: v.numpy() for k, v in params.items()}


@pytest.fixture(scope="module")
def kernel1_draws():
  return draw_many(kernels.sample_blur_kernel, config_lib.default_config().kernel1, 3000)


def test_sampled_kernels_equal_the_formula_of_their_parameters(kernel1_draws):
  drawn, params = kernel1_draws
  for i in range(0, len(drawn), 15):  # 200 of them
    size = int(params["size"][i])
    if params["is_sinc"][i]:
      expected = reference_sinc_kernel(size, float(params["omega"][i]))
    else:
      kind = config_lib.KERNEL_KINDS[params["kind"][i]]
      expected = reference_mixed_kernel(kind, size, float(params["sigma_x"][i]),
                                        float(params["sigma_y"][i]), float(params["theta"][i]),
                                        float(params["beta"][i]))
    np.testing.assert_allclose(drawn[i], expected, atol=2e-6 * np.abs(expected).max(), rtol=1e-4)


def test_sampled_kernel_shapes_sizes_and_sums(kernel1_draws):
  drawn, params = kernel1_draws
  assert drawn.shape == (3000, PAD_TO, PAD_TO)
  np.testing.assert_allclose(drawn.sum(axis=(1, 2)), 1.0, atol=1e-5)
  sizes = params["size"]
  assert set(np.unique(sizes)) == set(range(7, 22, 2))
  # Every size is about equally likely (1/8 each; 4 standard deviations of slack).
  counts = np.bincount(sizes)[7::2]
  assert np.all(np.abs(counts / 3000 - 1 / 8) < 4 * math.sqrt(1 / 8 * 7 / 8 / 3000))
  # Nothing outside the central size x size window.
  centre = PAD_TO // 2
  rows, cols = np.mgrid[0:PAD_TO, 0:PAD_TO] - centre
  outside = np.maximum(np.abs(rows), np.abs(cols))[None] > (sizes // 2)[:, None, None]
  assert np.all(drawn[outside] == 0)


def test_sampled_parameter_distributions(kernel1_draws):
  _, params = kernel1_draws
  cfg = config_lib.default_config().kernel1
  n = len(params["size"])
  sinc = params["is_sinc"]
  assert abs(sinc.mean() - cfg.sinc_prob) < 4 * math.sqrt(0.1 * 0.9 / n)

  kinds = params["kind"][~sinc]
  frequencies = np.bincount(kinds, minlength=6) / len(kinds)
  for freq, prob in zip(frequencies, cfg.kind_probs):
    assert abs(freq - prob) < 4 * math.sqrt(prob * (1 - prob) / len(kinds)) + 1e-9

  mixed = ~sinc
  sx, sy, theta, beta = (params[k][mixed] for k in ("sigma_x", "sigma_y", "theta", "beta"))
  assert sx.min() >= 0.2 and sx.max() <= 3.0 and sy.min() >= 0.2 and sy.max() <= 3.0
  isotropic = kinds % 2 == 0
  np.testing.assert_array_equal(sy[isotropic], sx[isotropic])
  assert np.all(theta[isotropic] == 0)
  assert theta[~isotropic].min() >= -math.pi and theta[~isotropic].max() <= math.pi
  assert np.std(theta[~isotropic]) == pytest.approx(2 * math.pi / math.sqrt(12), rel=0.15)

  family = kinds // 2
  assert np.all(beta[family == 0] == 1.0)
  generalized = beta[family == 1]
  assert generalized.min() >= 0.5 and generalized.max() <= 4.0
  assert abs((generalized < 1).mean() - 0.5) < 0.15
  plateau = beta[family == 2]
  assert plateau.min() >= 1.0 and plateau.max() <= 2.0
  # The original's quirk: U(1, 1) on one side of the split gives beta == 1 half the time.
  assert abs((plateau == 1.0).mean() - 0.5) < 0.15

  omega, size = params["omega"], params["size"]
  small = size < 13
  assert omega[small].min() >= math.pi / 3 and omega[~small].min() >= math.pi / 5
  assert omega.max() <= math.pi
  assert omega[~small].min() < math.pi / 3  # the large kernels do reach the lower cutoffs


def test_final_sinc_draws():
  cfg = config_lib.default_config().final_sinc
  drawn, params = draw_many(kernels.sample_final_sinc, cfg, 400)
  is_sinc = params["is_sinc"]
  assert abs(is_sinc.mean() - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 400)
  delta = np.zeros((PAD_TO, PAD_TO))
  delta[PAD_TO // 2, PAD_TO // 2] = 1
  for kernel, sinc, size, omega in zip(drawn, is_sinc, params["size"], params["omega"]):
    expected = reference_sinc_kernel(int(size), float(omega)) if sinc else delta
    np.testing.assert_allclose(kernel, expected, atol=1e-6)
  assert params["omega"].min() >= math.pi / 3 and params["omega"].max() <= math.pi


def test_same_seed_same_kernel_different_seed_different_kernel():
  cfg = config_lib.default_config().kernel2
  a, _ = kernels.sample_blur_kernel(tf.constant([3, 4]), cfg)
  b, _ = kernels.sample_blur_kernel(tf.constant([3, 4]), cfg)
  c, _ = kernels.sample_blur_kernel(tf.constant([3, 5]), cfg)
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.array_equal(a.numpy(), c.numpy())
