"""Intensity lock: make a super-resolved image keep its input's intensities at coarse scales.

A GAN-trained generator may shift intensities it should only sharpen: the pretrained x4plus makes
the chest radiograph RG1 4.9 levels of 255 brighter, the demo's fine-tuned one about 1 level,
most of it in the lung fields. On a radiograph that is a clinical risk; the input already says what
the intensities are at its own resolution, so the output can be held to them.

The lock is a low-frequency back-projection (after Irani and Peleg's iterative back-projection,
one step, low-passed):

    d   = G_sigma * (LR - boxdown_s(SR))      # at the input's resolution
    SR' = clip(SR + linear_up_s(d), 0, 1)

`boxdown_s` averages each s x s block of the output (s = the network's scale), G_sigma is a
Gaussian of `sigma` input pixels (borders reflected) and `linear_up_s` interpolates linearly
between input pixel centres (edges held). So SR' has the input's local means wherever they are
smooth at the scale of sigma, and SR's own detail everywhere: frequencies well above 1/sigma are
left untouched, which also keeps the correction blind to the exact blur of the acquisition
(sigma 2 input pixels, the value the README suggests, averages over about 10 input pixels). The
output is no longer the official network's output, so the lock is off by default.

Memory: the correction lives at the input's size (and one input-rows x output-columns array);
the output is read and written in strips of rows, so a memmapped 12K x 12K output is never
copied whole.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

STRIP_PIXELS = 1 << 20  # Output pixels per strip: about 4 MiB of float32.


def _linear_weights(size: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(low index, high index, weight of high) of each of `size * scale` output samples between
  input pixel centres: output pixel y sits at input coordinate (y + 0.5) / scale - 0.5."""
  position = (np.arange(size * scale, dtype=np.float64) + 0.5) / scale - 0.5
  position = np.clip(position, 0.0, size - 1)
  low = np.floor(position).astype(np.int64)
  high = np.minimum(low + 1, size - 1)
  return low, high, (position - low).astype(np.float32)


def block_means(sr: np.ndarray, scale: int) -> np.ndarray:
  """The mean of each scale x scale block of an (s*H, s*W, C) image: (H, W, C) float64, read in
  strips of rows."""
  height, width, channels = sr.shape[0] // scale, sr.shape[1] // scale, sr.shape[2]
  out = np.empty((height, width, channels), np.float64)
  rows = max(1, STRIP_PIXELS // max(1, sr.shape[1] * scale))
  for top in range(0, height, rows):
    bottom = min(top + rows, height)
    strip = np.asarray(sr[top * scale:bottom * scale], np.float64)
    out[top:bottom] = strip.reshape(bottom - top, scale, width, scale, channels).mean(axis=(1, 3))
  return out


def lock_intensity(sr: np.ndarray, lr: np.ndarray, scale: int, sigma: float = 2.0) -> np.ndarray:
  """Applies the intensity lock (see the module's docstring) to `sr` in place and returns it.

  Args:
    sr: (scale*H, scale*W, C) float output in [0, 1] (may be a memmap); changed in place.
    lr: (H, W, C) float input in [0, 1] that `sr` was computed from.
    scale: the network's integer scale.
    sigma: the Gaussian's standard deviation in input pixels (> 0).
  """
  if not (isinstance(scale, (int, np.integer)) and scale >= 1):
    raise ValueError(f"scale must be a positive integer, got {scale!r}")
  if not (np.isfinite(sigma) and sigma > 0):
    raise ValueError(f"the intensity lock's sigma must be > 0 (input pixels), got {sigma!r}")
  height, width, channels = lr.shape
  if sr.shape != (height * scale, width * scale, channels):
    raise ValueError(f"output {sr.shape} is not x{scale} of input {lr.shape}")
  difference = np.asarray(lr, np.float64) - block_means(sr, scale)
  difference = ndimage.gaussian_filter(difference, (sigma, sigma, 0), mode="reflect")
  # Columns first, on the whole (input rows x output columns) array; rows strip by strip below.
  low, high, weight = _linear_weights(width, scale)
  columns = (difference[:, low] * (1 - weight)[None, :, None]
             + difference[:, high] * weight[None, :, None]).astype(np.float32)
  low, high, weight = _linear_weights(height, scale)
  rows = max(1, STRIP_PIXELS // max(1, sr.shape[1]))
  for top in range(0, sr.shape[0], rows):
    bottom = min(top + rows, sr.shape[0])
    w = weight[top:bottom, None, None]
    correction = columns[low[top:bottom]] * (1 - w) + columns[high[top:bottom]] * w
    sr[top:bottom] = np.clip(np.asarray(sr[top:bottom], np.float32) + correction, 0.0, 1.0)
  return sr
