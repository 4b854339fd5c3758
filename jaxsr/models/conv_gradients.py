"""Convolutions whose gradients are computed as matrix products, for training on CPUs.

Kernel gradient. Autodiff's kernel gradient of a convolution is itself a convolution, with the
batch and channel roles swapped, that XLA's CPU backend runs at a fraction of the forward's
rate: in an x4plus GAN step (batch 2, GT 64, one CPU device per core, 2-core Zen 3) the
discriminator's kernel gradients took 150 ms of a 1.4 s step, 13.4 ms for its last conv's
(64 -> 1 channels, 5 MFLOP) alone. Written out, tap (ky, kx) of the kernel gradient is one
matrix product,
  dK[ky, kx] = X[ky, kx]^T G,
where G is the output gradient as a (pixels x out) matrix and X[ky, kx] the input pixels that
tap meets (a strided slice of the padded input, pixels x in). Those products run at matmul
speed (one core of that Zen 3: 64->1 at 64x64 2.8 ms instead of 13.4, 256->128 at 32x32 10.5
instead of 15.1, the stride-2 4x4 convs 4-5 instead of 5-6).

Input gradient. Autodiff convolves the output gradient with the kernel flipped in space and
transposed, a copy of the kernel made in every step (the weights change every step) at a few
GB/s, then, for strided convs, runs a base-dilated convolution outside XLA's fast path. Where
the kernel is at least as large as the input (the discriminator's deep convs: 4x4x256x512 on
16x16x256 maps) the transpose of the columns product is cheaper:
  dX = col2im(G K^T),
one (pixels x out) @ (out x taps*in) product against the kernel as it is stored, and each tap's
columns added into the input at its offset (a padded, interleaved sum XLA fuses into one loop).
On that Zen 3 core: 4.3 ms instead of 12.5 for the 4x4x256x512 stride-2 conv, 7.4 instead of
9.8 for 3x3x512x256 on 16x16; autodiff stays where the input is larger than the kernel (64x64
maps: 5.1 ms against 6.7 for col2im).

Other backends keep autodiff (GPU libraries have their own gradient algorithms).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _conv(x, kernel, stride: int, padding: int):
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride), padding=((padding, padding), (padding, padding)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _tap_window(dy: int, dx: int, stride: int, out_h: int, out_w: int):
  """The (rows, columns) slices of the padded input that kernel tap (dy, dx) meets."""
  return (slice(dy, dy + stride * (out_h - 1) + 1, stride),
          slice(dx, dx + stride * (out_w - 1) + 1, stride))


def kernel_gradient(x: jax.Array, out_grad: jax.Array, kernel_shape, stride: int,
                    padding: int) -> jax.Array:
  """The gradient of `_conv(x, kernel, stride, padding)`'s kernel for output gradient
  `out_grad`: one (in x pixels) @ (pixels x out) product per tap, accumulated in float32."""
  kh, kw, cin, cout = kernel_shape
  _, out_h, out_w, _ = out_grad.shape
  padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  grads = out_grad.reshape(-1, cout)
  taps = []
  for dy in range(kh):
    for dx in range(kw):
      rows, cols = _tap_window(dy, dx, stride, out_h, out_w)
      taps.append(jax.lax.dot_general(padded[:, rows, cols].reshape(-1, cin), grads,
                                      (((0,), (0,)), ((), ())),
                                      preferred_element_type=jnp.float32))
  return jnp.stack(taps).reshape(kh, kw, cin, cout)


def input_gradient(out_grad: jax.Array, kernel: jax.Array, input_shape, stride: int,
                   padding: int) -> jax.Array:
  """The gradient of `_conv(x, kernel, stride, padding)`'s input `x` for output gradient
  `out_grad`: col2im of out_grad @ kernel^T, accumulated in float32."""
  kh, kw, cin, cout = kernel.shape
  n, out_h, out_w, _ = out_grad.shape
  _, height, width, _ = input_shape
  columns = jax.lax.dot_general(out_grad.reshape(-1, cout), kernel.reshape(-1, cout),
                                (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
  columns = columns.reshape(n, out_h, out_w, kh, kw, cin)
  padded_h, padded_w = height + 2 * padding, width + 2 * padding
  total = None
  for dy in range(kh):
    for dx in range(kw):
      # Tap (dy, dx)'s columns land on rows dy, dy + stride, ... of the padded input: an
      # interior pad of stride - 1 spreads them out, the edge pads put them at their offset.
      rows, cols = _tap_window(dy, dx, stride, out_h, out_w)
      placed = jax.lax.pad(columns[:, :, :, dy, dx], jnp.zeros((), columns.dtype),
                           ((0, 0, 0), (dy, padded_h - rows.stop, stride - 1),
                            (dx, padded_w - cols.stop, stride - 1), (0, 0, 0)))
      total = placed if total is None else total + placed
  return total[:, padding:padding + height, padding:padding + width]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_matmul_gradients(x, kernel, stride, padding):
  return _conv(x, kernel, stride, padding)


def _forward(x, kernel, stride, padding):
  return _conv(x, kernel, stride, padding), (x, kernel)


def _backward(stride, padding, residuals, out_grad):
  x, kernel = residuals
  if kernel.size >= x.size:  # See the module docstring.
    x_grad = input_gradient(out_grad, kernel, x.shape, stride, padding)
  else:
    x_grad = jax.vjp(lambda x: _conv(x, kernel, stride, padding), x)[1](out_grad)[0]
  kernel_grad = kernel_gradient(x, out_grad, kernel.shape, stride, padding)
  return x_grad.astype(x.dtype), kernel_grad.astype(kernel.dtype)


_conv_matmul_gradients.defvjp(_forward, _backward)


def conv(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 1) -> jax.Array:
  """NHWC x HWIO convolution with symmetric `padding`. Where JAX's default backend is the CPU it
  is differentiated by `kernel_gradient` and, where the kernel has at least as many entries as
  the input, `input_gradient` (autodiff's values up to float32 summation order); elsewhere by
  autodiff."""
  if jax.default_backend() == "cpu":
    return _conv_matmul_gradients(x, kernel, stride, padding)
  return _conv(x, kernel, stride, padding)


class Conv3x3(nn.Module):
  """nn.Conv(features, (3, 3), padding=1): the same parameters, initialisers and forward (the
  compute dtype's, parameters float32), differentiated by `conv`."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    return conv(x.astype(self.dtype), kernel.astype(self.dtype)) + bias.astype(self.dtype)
