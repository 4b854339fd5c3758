"""`Upscaler`: a converted or fine-tuned generator as a plain array-in, array-out function.

    from jaxsr.infer.upscaler import Upscaler
    up = Upscaler("models/x4plus")             # any jaxsr generator directory
    sr = up.upscale(image)                     # HxW or HxWxC, uint8/uint16/float in [0, 1]

The instance holds only immutable things (device params, jitted functions), so one Upscaler can
serve several threads. Output dtype follows the input: uint8 -> uint8, uint16 -> uint16, float ->
float32 in [0, 1]. Gray images stay gray (the network sees the gray value in all three channels,
and BT.601 luma of its output comes back, as Real-ESRGAN does).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxsr import checkpoint

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}
LUMA_BT601 = np.array([0.299, 0.587, 0.114], np.float32)


def to_float(image: np.ndarray) -> np.ndarray:
  """uint8/uint16/float image -> float32 in [0, 1] (floats are assumed to be in [0, 1] already)."""
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 255.0
  if image.dtype == np.uint16:
    return image.astype(np.float32) / 65535.0
  if np.issubdtype(image.dtype, np.floating):
    return image.astype(np.float32)
  raise TypeError(f"unsupported pixel type {image.dtype}; expected uint8, uint16 or float")


def from_float(image: np.ndarray, dtype) -> np.ndarray:
  image = np.clip(image, 0.0, 1.0)
  if dtype == np.uint8:
    return np.round(image * 255.0).astype(np.uint8)
  if dtype == np.uint16:
    return np.round(image * 65535.0).astype(np.uint16)
  return image.astype(np.float32)


def resize_lanczos(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Float HxWxC Lanczos resize, channel by channel (PIL's 32-bit float mode keeps precision)."""
  channels = [np.asarray(Image.fromarray(image[..., c]).resize((width, height), Image.LANCZOS))
              for c in range(image.shape[-1])]
  return np.stack(channels, axis=-1)


class Upscaler:
  """Super-resolves images with a jaxsr generator directory."""

  def __init__(self, model_dir, *, dtype: str = "fp32"):
    if dtype not in DTYPES:
      raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    variables, metadata = checkpoint.load(model_dir, expect_kind="generator")
    self.metadata = metadata
    self.scale: int = int(metadata.arch["scale"])
    module = checkpoint.build_model(metadata, DTYPES[dtype])
    self.input_multiple: int = module.input_multiple
    self._variables = jax.device_put(variables)
    self._apply = jax.jit(lambda v, x: module.apply(v, x).astype(jnp.float32))

  def network(self, batch: jax.Array) -> jax.Array:
    """The raw network on an NHWC float batch (no padding, no clipping); jitted per shape."""
    return self._apply(self._variables, batch)

  def upscale_rgb(self, rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float32 [0, 1] -> (scale*H)x(scale*W)x3 float32, unclipped. Whole image, one call."""
    h, w = rgb.shape[:2]
    m = self.input_multiple
    # Scale 2/1 networks pixel-unshuffle: reflect-pad to a multiple, crop the output back.
    pad_h, pad_w = -h % m, -w % m
    if pad_h or pad_w:
      rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    out = np.asarray(self.network(jnp.asarray(rgb[None])))[0]
    return out[: h * self.scale, : w * self.scale]

  def upscale(self, image: np.ndarray, outscale: float | None = None) -> np.ndarray:
    """Super-resolves an HxW (gray), HxWx1, HxWx3 or HxWx4 (alpha upscaled separately) image.

    `outscale` (default: the network's own scale) resizes the network output with Lanczos, so a
    x4 network can produce x2; the network's scale is never applied silently in its place.
    """
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
      raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    if min(image.shape[:2]) < 1:
      raise ValueError(f"empty image of shape {image.shape}")
    outscale = self.scale if outscale is None else float(outscale)
    if outscale <= 0:
      raise ValueError(f"outscale must be positive, got {outscale}")
    pixels = to_float(image)
    gray = pixels.ndim == 2 or pixels.shape[2] == 1
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    alpha = pixels[..., 3:] if pixels.shape[2] == 4 else None
    rgb = np.repeat(pixels, 3, axis=2) if gray else pixels[..., :3]

    out = np.clip(self.upscale_rgb(rgb), 0.0, 1.0)
    if alpha is not None:
      # Alpha is a mask, not an image: a smooth resize avoids inventing texture in it.
      out = np.concatenate([out, resize_lanczos(alpha, *out.shape[:2])], axis=2)
    h, w = image.shape[:2]
    target = (int(round(h * outscale)), int(round(w * outscale)))
    if target != out.shape[:2]:
      out = resize_lanczos(out, *target)
    if gray:
      out = out[..., :3] @ LUMA_BT601
      out = out if image.ndim == 2 else out[..., None]
    return from_float(out, image.dtype)
