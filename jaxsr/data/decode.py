"""Training's sample conventions for decoded images (files are decoded by `jaxsr.io`).

`jaxsr.io.read_samples` / `decode_samples` give `[H, W, C]` uint8 or uint16 with the file's own
channels; these helpers bring such arrays to what training and evaluation compute on.
"""

from __future__ import annotations

import numpy as np


def bit_depth(image: np.ndarray) -> int:
  """8 or 16: the number of bits per sample of a decoded image."""
  if image.dtype == np.uint8:
    return 8
  if image.dtype == np.uint16:
    return 16
  raise TypeError(f"expected a uint8 or uint16 image, got {image.dtype}")


def drop_alpha(image: np.ndarray) -> np.ndarray:
  """Keeps gray or RGB: training data is opaque, as in the original (cv2 IMREAD_COLOR)."""
  channels = image.shape[-1]
  if channels == 2:
    return image[..., :1]
  if channels == 4:
    return image[..., :3]
  return image


def to_float_rgb(image: np.ndarray) -> np.ndarray:
  """`[H, W, C]` uint8/uint16 -> `[H, W, 3]` float32 in [0, 1] (x/255 or x/65535; gray repeated)."""
  scale = np.float32(np.iinfo(image.dtype).max)
  image = drop_alpha(image).astype(np.float32) / scale
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return image
