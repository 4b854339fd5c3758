"""Random blur kernels of Real-ESRGAN: six Gaussian-like families and the circular sinc.

All kernels live on a fixed PAD_TO x PAD_TO (21x21) grid: a kernel of odd size k is the formula
evaluated on the central k x k window, zero outside (the original's `np.pad` to 21), normalised
to sum 1. Keeping one grid makes the kernel's shape static, so a per-sample kernel of random size
needs no dynamic shapes inside tf.data.

Grid convention (BasicSR's `mesh_grid`): the offset vector of tap (row, col) from the centre is
(x, y) = (col - c, row - c), i.e. x runs along columns. With S = R diag(sx^2, sy^2) R^T and R the
rotation by theta,

  gaussian     exp(-0.5 q)            q = (x, y) S^-1 (x, y)^T
  generalized  exp(-0.5 q^beta)
  plateau      1 / (1 + q^beta)
  sinc         omega J1(omega r) / (2 pi r), centre omega^2 / (4 pi)

`mixed_kernel` and `sinc_kernel` build a kernel from explicit parameters; `sample_blur_kernel`
and `sample_final_sinc` draw the parameters as the original does and return them alongside.
"""

from __future__ import annotations

import math

import ml_collections
import tensorflow as tf

from jaxsr.degradation import config as config_lib
from jaxsr.degradation import sampling

PAD_TO = 21

_GAUSSIAN, _GENERALIZED, _PLATEAU = 0, 1, 2


def _offsets(pad_to: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Column (x) and row (y) offsets from the centre of a pad_to x pad_to grid."""
  axis = tf.range(pad_to, dtype=tf.float32) - (pad_to - 1) / 2
  x, y = tf.meshgrid(axis, axis, indexing="xy")  # x[row, col] = col offset
  return x, y


def _support(size, pad_to: int) -> tf.Tensor:
  """True on the central size x size window of the grid."""
  x, y = _offsets(pad_to)
  half = tf.cast(tf.convert_to_tensor(size) // 2, tf.float32)
  return (tf.abs(x) <= half) & (tf.abs(y) <= half)


def _normalised_on_support(values: tf.Tensor, size, pad_to: int) -> tf.Tensor:
  values = tf.where(_support(size, pad_to), values, tf.zeros_like(values))
  return values / tf.reduce_sum(values)


def _kind_index(kind) -> tf.Tensor:
  if isinstance(kind, str):
    if kind not in config_lib.KERNEL_KINDS:
      raise ValueError(f"unknown kernel kind {kind!r}; expected one of {config_lib.KERNEL_KINDS}")
    kind = config_lib.KERNEL_KINDS.index(kind)
  return tf.cast(kind, tf.int32)


def mixed_kernel(kind, size, sigma_x, sigma_y=None, theta=0.0, beta=1.0,
                 pad_to: int = PAD_TO) -> tf.Tensor:
  """One of the six Gaussian-like kernels, [pad_to, pad_to] float32 summing to 1.

  Args:
    kind: a name from `config.KERNEL_KINDS` or its index (an int32 tensor works in graphs).
    size: odd kernel size <= pad_to.
    sigma_x, sigma_y: standard deviations along the kernel's own axes before rotation.
    theta: rotation in radians (counter-clockwise from the x axis).
    beta: shape of the generalized and plateau families (ignored by the Gaussian).
    pad_to: grid size.

  The isotropic kinds (even indices) use sigma_x for both axes and no rotation, whatever
  sigma_y and theta say, as the original's `isotropic=True` branch does.
  """
  kind = _kind_index(kind)
  sigma_x = tf.cast(sigma_x, tf.float32)
  sigma_y = sigma_x if sigma_y is None else tf.cast(sigma_y, tf.float32)
  theta = tf.cast(theta, tf.float32)
  beta = tf.cast(beta, tf.float32)
  isotropic = tf.equal(kind % 2, 0)
  sigma_y = tf.where(isotropic, sigma_x, sigma_y)
  theta = tf.where(isotropic, 0.0, theta)

  # q = v^T R diag(1/sx^2, 1/sy^2) R^T v: project the offset on the rotated axes.
  x, y = _offsets(pad_to)
  cos, sin = tf.cos(theta), tf.sin(theta)
  along = cos * x + sin * y
  across = -sin * x + cos * y
  q = (along / sigma_x) ** 2 + (across / sigma_y) ** 2

  family = kind // 2
  q_beta = tf.pow(q, beta)
  values = tf.switch_case(family, {
      _GAUSSIAN: lambda: tf.exp(-0.5 * q),
      _GENERALIZED: lambda: tf.exp(-0.5 * q_beta),
      _PLATEAU: lambda: 1.0 / (1.0 + q_beta),
  })
  return _normalised_on_support(values, size, pad_to)


def sinc_kernel(size, omega, pad_to: int = PAD_TO) -> tf.Tensor:
  """The circular low-pass (2-D sinc) kernel with cutoff omega, [pad_to, pad_to], sum 1."""
  omega = tf.cast(omega, tf.float32)
  x, y = _offsets(pad_to)
  r = tf.sqrt(x**2 + y**2)
  safe_r = tf.where(r > 0, r, 1.0)  # the centre takes its limit value below
  values = omega * tf.math.special.bessel_j1(omega * safe_r) / (2 * math.pi * safe_r)
  values = tf.where(r > 0, values, omega**2 / (4 * math.pi))
  return _normalised_on_support(values, size, pad_to)


def delta_kernel(pad_to: int = PAD_TO) -> tf.Tensor:
  """The identity kernel: 1 at the centre of the grid."""
  centre = pad_to // 2
  return tf.scatter_nd([[centre, centre]], [1.0], [pad_to, pad_to])


def _draw_beta(seed, beta_range, split_at_one: bool) -> tf.Tensor:
  lo, hi = beta_range
  if not split_at_one:
    return sampling.uniform(seed, lo, hi)
  below_seed, low_seed, high_seed = sampling.split(seed, 3)
  return tf.where(sampling.bernoulli(below_seed, 0.5),
                  sampling.uniform(low_seed, lo, 1.0),
                  sampling.uniform(high_seed, 1.0, hi))


def _draw_size(seed, sizes) -> tf.Tensor:
  return tf.gather(tf.constant(sizes, tf.int32), sampling.randint(seed, 0, len(sizes) - 1))


def sample_blur_kernel(seed: tf.Tensor, config: ml_collections.ConfigDict,
                       pad_to: int = PAD_TO) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
  """Draws kernel1 or kernel2 of the original (a `config.kernel1`-like section).

  Returns the [pad_to, pad_to] kernel and its parameters: `is_sinc`, `kind` (index into
  config.kinds; meaningless when is_sinc), `size`, `sigma_x`, `sigma_y`, `theta`, `beta`, `omega`.
  Isotropic kinds report sigma_y = sigma_x and theta = 0.
  """
  if tuple(config.kinds) != config_lib.KERNEL_KINDS:
    raise ValueError(f"kinds must be listed in the order {config_lib.KERNEL_KINDS}")
  seeds = sampling.split(seed, 9)
  size = _draw_size(seeds[0], config.sizes)
  is_sinc = sampling.bernoulli(seeds[1], config.sinc_prob)
  omega = tf.where(size < config.sinc_small_size_below,
                   sampling.uniform(seeds[2], *config.sinc_omega_range_small),
                   sampling.uniform(seeds[3], *config.sinc_omega_range_large))

  kind = sampling.choice(seeds[4], config.kind_probs)
  isotropic = tf.equal(kind % 2, 0)
  sigma_x = sampling.uniform(seeds[5], *config.sigma_range)
  sigma_y = tf.where(isotropic, sigma_x, sampling.uniform(seeds[6], *config.sigma_range))
  theta = tf.where(isotropic, 0.0, sampling.uniform(seeds[7], *config.rotation_range))
  beta_g_seed, beta_p_seed = sampling.split(seeds[8], 2)
  family = kind // 2
  beta = tf.gather(tf.stack([
      tf.constant(1.0),
      _draw_beta(beta_g_seed, config.betag_range, config.beta_split_at_one),
      _draw_beta(beta_p_seed, config.betap_range, config.beta_split_at_one),
  ]), family)

  kernel = tf.cond(is_sinc,
                   lambda: sinc_kernel(size, omega, pad_to),
                   lambda: mixed_kernel(kind, size, sigma_x, sigma_y, theta, beta, pad_to))
  params = dict(is_sinc=is_sinc, kind=kind, size=size, sigma_x=sigma_x, sigma_y=sigma_y,
                theta=theta, beta=beta, omega=omega)
  return kernel, params


def sample_final_sinc(seed: tf.Tensor, config: ml_collections.ConfigDict,
                      pad_to: int = PAD_TO) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
  """Draws the last filter (a `config.final_sinc`-like section): a sinc, else the identity.

  The size is drawn from `config.sizes` as in the original (its `circular_lowpass_kernel(omega,
  kernel_size, pad_to=21)`). Returns the kernel and `is_sinc`, `size`, `omega`.
  """
  apply_seed, size_seed, omega_seed = sampling.split(seed, 3)
  is_sinc = sampling.bernoulli(apply_seed, config.prob)
  size = _draw_size(size_seed, config.sizes)
  omega = sampling.uniform(omega_seed, *config.omega_range)
  kernel = tf.cond(is_sinc, lambda: sinc_kernel(size, omega, pad_to),
                   lambda: delta_kernel(pad_to))
  return kernel, dict(is_sinc=is_sinc, size=size, omega=omega)
