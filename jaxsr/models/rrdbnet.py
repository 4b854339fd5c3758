"""RRDBNet, the ESRGAN / Real-ESRGAN generator, in Flax (NHWC).

Module and parameter names mirror the PyTorch state dict (`body.3.rdb1.conv2.weight` lives at
`params["body_3"]["rdb1"]["conv2"]["kernel"]`), so weight conversion is a rename plus an
OIHW -> HWIO transpose and nothing else.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

LEAKY_SLOPE = 0.2
RESIDUAL_SCALE = 0.2


def _scaled_kaiming_normal(scale: float):
  """Kaiming-normal (fan-in, leaky-relu gain as PyTorch's default a=0) scaled down, as BasicSR does."""
  base = nn.initializers.variance_scaling(2.0, "fan_in", "normal")

  def init(key, shape, dtype=jnp.float32):
    return base(key, shape, dtype) * scale

  return init


def pixel_unshuffle(x: jax.Array, factor: int) -> jax.Array:
  """Space-to-depth with PyTorch's channel order `c * r * r + i * r + j`, in NHWC."""
  b, h, w, c = x.shape
  if h % factor or w % factor:
    raise ValueError(f"pixel_unshuffle needs H and W divisible by {factor}, got {h}x{w}")
  x = x.reshape(b, h // factor, factor, w // factor, factor, c)
  x = x.transpose(0, 1, 3, 5, 2, 4)  # b, h', w', c, i, j
  return x.reshape(b, h // factor, w // factor, c * factor * factor)


def upsample_nearest_2x(x: jax.Array) -> jax.Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ResidualDenseBlock(nn.Module):
  """Five densely connected 3x3 convs; output is `0.2 * conv5(...) + x`."""

  num_feat: int = 64
  num_grow_ch: int = 32
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(
        nn.Conv, kernel_size=(3, 3), padding=1, dtype=self.dtype, param_dtype=jnp.float32,
        kernel_init=_scaled_kaiming_normal(0.1), bias_init=nn.initializers.zeros)
    features = [x]
    for i in range(1, 5):
      y = conv(self.num_grow_ch, name=f"conv{i}")(jnp.concatenate(features, axis=-1))
      features.append(nn.leaky_relu(y, LEAKY_SLOPE))
    x5 = conv(self.num_feat, name="conv5")(jnp.concatenate(features, axis=-1))
    return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
  """Residual-in-residual dense block: three RDBs and a scaled skip."""

  num_feat: int = 64
  num_grow_ch: int = 32
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    out = x
    for i in range(1, 4):
      out = ResidualDenseBlock(self.num_feat, self.num_grow_ch, self.dtype, name=f"rdb{i}")(out)
    return out * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
  """ESRGAN generator. Input NHWC RGB in [0, 1]; output (N, H*s, W*s, 3), not clamped.

  `scale` is the overall upscaling factor. As in Real-ESRGAN, scale 2 and 1 models first
  pixel-unshuffle by 2 and 4, then run the same x4 body, so their input H and W must be
  divisible by 2 and 4 respectively.
  """

  scale: int = 4
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_block: int = 23
  num_grow_ch: int = 32
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.scale not in (1, 2, 4):
      raise ValueError(f"RRDBNet supports scale 1, 2 or 4, got {self.scale}")
    conv = functools.partial(
        nn.Conv, kernel_size=(3, 3), padding=1, dtype=self.dtype, param_dtype=jnp.float32)
    x = x.astype(self.dtype)
    if self.scale < 4:
      x = pixel_unshuffle(x, 4 // self.scale)
    feat = conv(self.num_feat, name="conv_first")(x)
    body = feat
    for i in range(self.num_block):
      body = RRDB(self.num_feat, self.num_grow_ch, self.dtype, name=f"body_{i}")(body)
    feat = feat + conv(self.num_feat, name="conv_body")(body)
    feat = nn.leaky_relu(conv(self.num_feat, name="conv_up1")(upsample_nearest_2x(feat)), LEAKY_SLOPE)
    feat = nn.leaky_relu(conv(self.num_feat, name="conv_up2")(upsample_nearest_2x(feat)), LEAKY_SLOPE)
    feat = nn.leaky_relu(conv(self.num_feat, name="conv_hr")(feat), LEAKY_SLOPE)
    return conv(self.num_out_ch, name="conv_last")(feat)

  @property
  def input_multiple(self) -> int:
    """Input H and W must be multiples of this (pixel-unshuffle factor)."""
    return 4 // self.scale
