"""Convolutions whose kernel gradient is one matrix product, for training on CPUs.

Autodiff's kernel gradient of a convolution is itself a convolution, with the batch and
channel roles swapped, that XLA's CPU backend runs at a fraction of the forward's rate: in an
x4plus GAN step (batch 2, GT 64, one CPU device per core, 2-core Zen 3) the discriminator's
kernel gradients took 150 ms of a 1.4 s step, 13.4 ms for its last conv's (64 -> 1 channels,
5 MFLOP) alone. Written out, the kernel gradient of a stride-1 conv is one matrix product,
  dK = (G^T P)^T,
G the output gradient as a (pixels x out) matrix and P the input's patches (pixels x taps*in,
im2col), which runs at matmul speed. One core of that Zen 3 (autodiff -> matmul): 64 -> 1 at
64x64 13.4 -> 1.6 ms, 64 -> 64 at 64x64 7.6 -> 4.7, 256 -> 128 at 32x32 15.1 -> 8.7, RRDBNet's
conv_last (64 -> 3 at 64x64) 13.7 -> 1.4. Where the patches grow past PATCH_LIMIT entries the
product lost (128 -> 64 at 64x64: 28 ms against 15), and on the stride-2 convs it gained
little; there, and on other backends (GPU libraries have their own algorithms), autodiff stays.
Per-tap products (one matmul per kernel tap, no patches) ran as fast or faster on every conv but
took twice as long to compile, which the test suite's many small train steps felt (minutes).
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


# Patches (pixels x taps*in) of at most this many entries take the matmul (see above).
PATCH_LIMIT = 4 * 2**20


def uses_matmul(x_shape, kernel_shape, stride: int) -> bool:
  """Whether `conv`'s kernel gradient is the matmul on a CPU for these shapes."""
  n, h, w, _ = x_shape
  kh, kw, cin, _ = kernel_shape
  return stride == 1 and n * h * w * kh * kw * cin <= PATCH_LIMIT


def image_patches(x: jax.Array, kh: int, kw: int, padding: int) -> jax.Array:
  """im2col of NHWC `x` for a stride-1 kh x kw conv with symmetric `padding`: (N, H', W',
  kh * kw * C), the taps in HWIO order (the channels of tap (dy, dx) at (dy * kw + dx) * C)."""
  _, height, width, _ = x.shape
  out_h, out_w = height + 2 * padding - kh + 1, width + 2 * padding - kw + 1
  padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  return jnp.concatenate([padded[:, dy:dy + out_h, dx:dx + out_w]
                          for dy in range(kh) for dx in range(kw)], axis=-1)


def kernel_gradient(x: jax.Array, out_grad: jax.Array, kernel_shape, padding: int) -> jax.Array:
  """The gradient of a stride-1 `_conv(x, kernel, 1, padding)`'s kernel for output gradient
  `out_grad`: (out x pixels) @ (pixels x taps*in), accumulated in float32."""
  kh, kw, cin, cout = kernel_shape
  patches = image_patches(x, kh, kw, padding)
  product = jax.lax.dot_general(out_grad.reshape(-1, cout), patches.reshape(-1, kh * kw * cin),
                                (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  return product.reshape(cout, kh, kw, cin).transpose(1, 2, 3, 0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_matmul_kernel_gradient(x, kernel, stride, padding):
  return _conv(x, kernel, stride, padding)


def _forward(x, kernel, stride, padding):
  return _conv(x, kernel, stride, padding), (x, kernel)


def _backward(stride, padding, residuals, out_grad):
  x, kernel = residuals
  x_grad = jax.vjp(lambda x: _conv(x, kernel, stride, padding), x)[1](out_grad)[0]
  kernel_grad = kernel_gradient(x, out_grad, kernel.shape, padding)
  return x_grad, kernel_grad.astype(kernel.dtype)


_conv_matmul_kernel_gradient.defvjp(_forward, _backward)


def conv(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 1) -> jax.Array:
  """NHWC x HWIO convolution with symmetric `padding`. Where JAX's default backend is the CPU
  and `uses_matmul`, its kernel gradient is `kernel_gradient`'s (autodiff's value up to float32
  summation order); otherwise plain autodiff."""
  if jax.default_backend() == "cpu" and uses_matmul(x.shape, kernel.shape, stride):
    return _conv_matmul_kernel_gradient(x, kernel, stride, padding)
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
