"""SRVGGNetCompact, Real-ESRGAN's compact generator, in Flax (NHWC).

A plain stack of 3x3 convolutions at the input resolution (each but the last followed by an
activation), a pixel shuffle to the output size, and the nearest-neighbour-upsampled input added
on top, so the network only predicts a residual. realesr-general-x4v3 (32 convs), its -wdn twin
and realesr-animevideov3 (16 convs) use it; at 64 features it costs about 1/20 to 1/40 of
RRDBNet's FLOPs per pixel.

Names mirror the PyTorch state dict: PyTorch keeps every layer in one `body` ModuleList
(conv, activation, conv, activation, ..., conv), so `body.0.weight` is the first conv,
`body.1.weight` the first PReLU's slopes, and `body.{2 * num_conv + 2}` the last conv. Here the
same layers are the modules `body_0`, `body_1`, ... Only PReLU activations have parameters.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

ACTIVATIONS = ("prelu", "relu", "leakyrelu")
LEAKY_SLOPE = 0.1  # The original's LeakyReLU(negative_slope=0.1).
PRELU_INIT = 0.25  # PyTorch's PReLU default.


def pixel_shuffle(x: jax.Array, factor: int) -> jax.Array:
  """Depth-to-space with PyTorch's channel order: input channel `c * r * r + i * r + j` becomes
  output pixel (h * r + i, w * r + j) of channel c. NHWC."""
  b, h, w, c = x.shape
  if c % (factor * factor):
    raise ValueError(f"pixel_shuffle by {factor} needs channels divisible by {factor ** 2}, got {c}")
  out_c = c // (factor * factor)
  x = x.reshape(b, h, w, out_c, factor, factor)
  x = x.transpose(0, 1, 4, 2, 5, 3)  # b, h, i, w, j, c
  return x.reshape(b, h * factor, w * factor, out_c)


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class PReLU(nn.Module):
  """Per-channel PReLU; its slopes are the PyTorch parameter `weight` (shape (C,))."""

  @nn.compact
  def __call__(self, x):
    slope = self.param("weight", nn.initializers.constant(PRELU_INIT), (x.shape[-1],), jnp.float32)
    return jnp.where(x >= 0, x, x * slope.astype(x.dtype))


class SRVGGNetCompact(nn.Module):
  """Input NHWC in [0, 1]; output (N, H*s, W*s, num_out_ch), not clamped. Any scale >= 1.

  `scale` is the original's `upscale`. The nearest-upsampled input is added to the output, which
  needs num_out_ch == num_in_ch (as in every released model).
  """

  scale: int = 4
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_conv: int = 16
  act_type: str = "prelu"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.act_type not in ACTIVATIONS:
      raise ValueError(f"act_type must be one of {ACTIVATIONS}, got {self.act_type!r}")
    if not 1 <= self.scale <= 8:
      raise ValueError(f"SRVGGNetCompact supports scale 1 to 8, got {self.scale}")
    if self.num_out_ch != self.num_in_ch:
      raise ValueError("SRVGGNetCompact adds its upsampled input to the output, so num_out_ch "
                       f"must equal num_in_ch; got {self.num_out_ch} and {self.num_in_ch}")
    x = x.astype(self.dtype)
    convs = [self.num_feat] * (self.num_conv + 1) + [self.num_out_ch * self.scale ** 2]
    out, index = x, 0
    for i, features in enumerate(convs):
      out = nn.Conv(features, (3, 3), padding=1, dtype=self.dtype, param_dtype=jnp.float32,
                    name=f"body_{index}")(out)
      index += 1
      if i < len(convs) - 1:
        if self.act_type == "prelu":
          out = PReLU(name=f"body_{index}")(out)
        elif self.act_type == "relu":
          out = nn.relu(out)
        else:
          out = nn.leaky_relu(out, LEAKY_SLOPE)
        index += 1  # Parameter-free activations still take a place in PyTorch's body list.
    return pixel_shuffle(out, self.scale) + upsample_nearest(x, self.scale)

  @property
  def input_multiple(self) -> int:
    """Any input size works: there is no pixel-unshuffle in front."""
    return 1

  @property
  def receptive_radius(self) -> int:
    """Input pixels of context each output pixel depends on, on each side: one per 3x3 conv."""
    return self.num_conv + 2
