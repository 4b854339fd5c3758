"""Real-ESRGAN's U-Net discriminator with spectral normalisation, in Flax (NHWC).

Spectral-norm state lives in the variable collection ``"spectral"``: for each normalised conv,
``u`` (out,) and ``v`` (in * kh * kw,) exactly as PyTorch's ``weight_u`` / ``weight_v``, with
``v`` indexed in PyTorch's OIHW flattening order. Usage::

    variables = D.init(rng, x)                         # {"params": ..., "spectral": ...}
    logits, updates = D.apply(variables, x, train=True, mutable=["spectral"])
    variables = {**variables, **updates}               # one power iteration per call
    logits = D.apply(variables, x, train=False)        # stored u, v; no iteration

This is PyTorch's `torch.nn.utils.spectral_norm` (1 power iteration, eps 1e-12): in train mode
every call runs one iteration from the stored ``u`` and stores the new ``u``, ``v``; in eval mode
the stored vectors are used as they are. ``flax.linen.SpectralNorm`` differs (it keeps ``u`` and
``sigma``, and iterates even without updating), hence this small module of our own.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsr.models import conv_gradients

Dtype = Any

SPECTRAL_COLLECTION = "spectral"
LEAKY_SLOPE = 0.2


def _l2_normalize(x: jax.Array, eps: float) -> jax.Array:
  """`torch.nn.functional.normalize` for a vector: x / max(||x||, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def upsample_bilinear_2x(x: jax.Array) -> jax.Array:
  """`F.interpolate(scale_factor=2, mode="bilinear", align_corners=False)` on NHWC.

  With half-pixel centres every output sample sits a quarter pixel from an input sample, so each
  axis is a fixed 0.25/0.75 blend of two neighbours, clamped at the borders as PyTorch clamps.
  """

  def along(x, axis):
    n = x.shape[axis]
    prev = jnp.concatenate([jax.lax.slice_in_dim(x, 0, 1, axis=axis),
                            jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
    nxt = jnp.concatenate([jax.lax.slice_in_dim(x, 1, n, axis=axis),
                           jax.lax.slice_in_dim(x, n - 1, n, axis=axis)], axis=axis)
    even = 0.25 * prev + 0.75 * x
    odd = 0.75 * x + 0.25 * nxt
    stacked = jnp.stack([even, odd], axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = 2 * n
    return stacked.reshape(shape)

  return along(along(x, 1), 2)


class SpectralNormConv(nn.Module):
  """A bias-free conv whose kernel is divided by its spectral norm (PyTorch semantics).

  PyTorch's W is the kernel as an (out, in * kh * kw) matrix in OIHW order; u and v keep that
  order, so they convert as they are. W is never materialised: its products with u and v are
  contractions of the HWIO kernel with v viewed as (in, kh, kw). And the conv's output is divided
  by sigma rather than its kernel (the same value): on XLA's CPU backend the transposed copy and
  the scaled copy of the kernel took about 40 ms of a 1.3 s x4plus GAN step (3 D passes; the
  4x4x256x512 kernel's 2 M entries each time), the output is 64 times smaller there.
  """

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 1
  eps: float = 1e-12
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    k = self.kernel_size
    in_features = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.variance_scaling(1.0 / 3, "fan_in", "uniform"),
                        (k, k, in_features, self.features), jnp.float32)
    w_times = lambda w, v: jnp.einsum("hwio,ihw->o", w, v.reshape(in_features, k, k))  # W v
    w_transposed_times = lambda w, u: jnp.einsum("hwio,o->ihw", w, u).reshape(-1)  # W^T u

    def random_unit(shape):
      return _l2_normalize(jax.random.normal(self.make_rng("params"), shape), self.eps)

    u = self.variable(SPECTRAL_COLLECTION, "u", random_unit, (self.features,))
    v = self.variable(SPECTRAL_COLLECTION, "v", random_unit, (in_features * k * k,))

    u_vec, v_vec = u.value, v.value
    if train and not self.is_initializing():
      # The power iteration runs without gradients in PyTorch (torch.no_grad); sigma below still
      # depends on the weight, so gradients flow through u^T W v with u, v held constant.
      w = jax.lax.stop_gradient(kernel)
      v_vec = _l2_normalize(w_transposed_times(w, u_vec), self.eps)
      u_vec = _l2_normalize(w_times(w, v_vec), self.eps)
      u.value, v.value = u_vec, v_vec
    sigma = jnp.dot(u_vec, w_times(kernel, v_vec))
    y = conv_gradients.conv(x.astype(self.dtype), kernel.astype(self.dtype), self.stride,
                            self.padding)
    return y / sigma.astype(self.dtype)


class UNetDiscriminatorSN(nn.Module):
  """Per-pixel real/fake logits (N, H, W, 1) for an NHWC RGB input; H and W divisible by 8."""

  num_feat: int = 64
  skip_connection: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    if x.shape[1] % 8 or x.shape[2] % 8:
      raise ValueError(f"UNetDiscriminatorSN needs H and W divisible by 8, got {x.shape[1:3]}")
    nf = self.num_feat
    act = functools.partial(nn.leaky_relu, negative_slope=LEAKY_SLOPE)
    sn = functools.partial(SpectralNormConv, dtype=self.dtype)
    plain = functools.partial(conv_gradients.Conv3x3, dtype=self.dtype)

    x0 = act(plain(nf, name="conv0")(x.astype(self.dtype)))
    x1 = act(sn(nf * 2, 4, stride=2, name="conv1")(x0, train))
    x2 = act(sn(nf * 4, 4, stride=2, name="conv2")(x1, train))
    x3 = act(sn(nf * 8, 4, stride=2, name="conv3")(x2, train))

    x4 = act(sn(nf * 4, 3, name="conv4")(upsample_bilinear_2x(x3), train))
    if self.skip_connection:
      x4 = x4 + x2
    x5 = act(sn(nf * 2, 3, name="conv5")(upsample_bilinear_2x(x4), train))
    if self.skip_connection:
      x5 = x5 + x1
    x6 = act(sn(nf, 3, name="conv6")(upsample_bilinear_2x(x5), train))
    if self.skip_connection:
      x6 = x6 + x0

    out = act(sn(nf, 3, name="conv7")(x6, train))
    out = act(sn(nf, 3, name="conv8")(out, train))
    return plain(1, name="conv9")(out)
