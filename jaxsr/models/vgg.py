"""torchvision's VGG19 `features` as a frozen feature extractor for the perceptual loss (NHWC).

Taps are taken *before* the ReLU (BasicSR's `conv1_2`, ..., `conv5_4` layer names), and the
network stops at the deepest requested tap. Parameters are named after the layers
(`params["conv3_4"]["kernel"]`), matching torchvision's `features.{index}` weights one to one.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any

# (block, convs per block) of VGG19; a 2x2 max-pool follows each block.
VGG19_BLOCKS = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
# torchvision `features` index of every conv layer, in order.
VGG19_CONV_INDEX = {}
_index = 0
for _block, _n in VGG19_BLOCKS:
  for _i in range(1, _n + 1):
    VGG19_CONV_INDEX[f"conv{_block}_{_i}"] = _index
    _index += 2  # conv, relu
  _index += 1  # pool
del _index, _block, _n, _i

PERCEPTUAL_LAYERS = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
  """Returns {layer name: pre-activation feature map} for RGB input in [0, 1]."""

  layers: Sequence[str] = PERCEPTUAL_LAYERS
  use_input_norm: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    unknown = set(self.layers) - set(VGG19_CONV_INDEX)
    if unknown:
      raise ValueError(f"unknown VGG19 layers {sorted(unknown)}; known: {list(VGG19_CONV_INDEX)}")
    deepest = max(VGG19_CONV_INDEX[name] for name in self.layers)
    x = x.astype(jnp.float32)
    if self.use_input_norm:
      x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    x = x.astype(self.dtype)
    taps = {}
    for block, n in VGG19_BLOCKS:
      for i in range(1, n + 1):
        name = f"conv{block}_{i}"
        x = nn.Conv(64 * 2 ** min(block - 1, 3), (3, 3), padding=1, dtype=self.dtype,
                    param_dtype=jnp.float32, name=name)(x)
        if name in self.layers:
          taps[name] = x
        if VGG19_CONV_INDEX[name] == deepest:
          return taps
        x = nn.relu(x)
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return taps
