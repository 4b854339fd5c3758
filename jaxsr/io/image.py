"""The one in-memory image type (`Image`, with `DicomInfo` for DICOM sources) and the read errors.

An `Image` holds float32 pixels in [0, 1] plus what it takes to write a result back in its
source's conventions (bit depth, gray vs colour, a separate alpha channel, resolution, ICC
profile, and for DICOM the dataset and intensity mapping). Integer samples (what a decoder
produces and what PNG/TIFF/JPEG writers store) convert to and from it here, by x / (2^bits - 1)
and round(x * (2^bits - 1)).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
  import pydicom

# Formats jaxsr writes (and reads); SOURCE_FORMATS are all it reads.
FORMATS = ("png", "tiff", "jpeg", "dicom")
SOURCE_FORMATS = FORMATS + ("bmp", "pnm")
# Rows per block when quantising and encoding: bounds the temporaries of huge outputs.
ROWS_PER_BLOCK = 256


class UnreadableImageError(ValueError):
  """A file that cannot be decoded into pixels (broken, truncated, not an image, no decoder).

  A ValueError, as training's former `CorruptImageError` was; `path` names the file (or the
  name given to bytes), `reason` says why.
  """

  def __init__(self, path, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = Path(path)
    self.reason = reason


class UnsupportedImageError(UnreadableImageError):
  """An image of a kind jaxsr deliberately does not handle (CMYK, a Modality LUT, float TIFF...)."""


class ImageNotFoundError(UnreadableImageError, FileNotFoundError):
  """No such file: both an `UnreadableImageError` (training skips it like any unreadable image)
  and a `FileNotFoundError`."""


# The name `jaxsr.data` used for the same failure; one class, so either `except` clause works.
CorruptImageError = UnreadableImageError


@dataclasses.dataclass(frozen=True)
class DicomInfo:
  """What a DICOM image needs to be written back in its source's representation.

  Attributes:
    dataset: the source's dataset without its pixel data.
    low, high: the modality values (after RescaleSlope/Intercept) that became 0 and 1, before
      any MONOCHROME1 inversion. For colour images, the stored values.
    invert: the source is MONOCHROME1; pixels were inverted to MONOCHROME2 and are inverted back.
    intensity_range: how `low` and `high` were chosen (one of `dicom.DICOM_RANGES`).
    frame: this image's index among the source's frames; None for a single-frame source. All
      frames of a source share one dataset and one mapping (`low`, `high`, `invert`).
  """
  dataset: pydicom.Dataset
  low: float
  high: float
  invert: bool
  intensity_range: str
  frame: int | None = None


@dataclasses.dataclass(frozen=True)
class Image:
  """Pixels in [0, 1] plus what it takes to write them back like their source.

  Attributes:
    pixels: float32 (H, W, 1) gray or (H, W, 3) RGB, in [0, 1]; gray is "white = bright/dense".
    bit_depth: 8 or 16, the sample depth PNG/TIFF output is written at (for DICOM: 16 when
      BitsStored > 8).
    source_format: one of SOURCE_FORMATS.
    alpha: float32 (H, W, 1) in [0, 1] or None; kept apart from `pixels` because a network
      meant for images should not be applied to it.
    source_shape: (H, W) of the source; metadata (dpi, pixel spacing) describes that geometry and
      is rescaled by `pixels.shape / source_shape` when written. Defaults to `pixels.shape`.
    dpi: (x, y) resolution of the source, or None.
    icc_profile: the source's embedded ICC profile, or None.
    dicom: DicomInfo for DICOM sources, else None.
  """
  pixels: np.ndarray
  bit_depth: int
  source_format: str
  alpha: np.ndarray | None = None
  source_shape: tuple[int, int] | None = None
  dpi: tuple[float, float] | None = None
  icc_profile: bytes | None = None
  dicom: DicomInfo | None = None

  def __post_init__(self):
    if (self.pixels.ndim != 3 or self.pixels.shape[2] not in (1, 3)
        or self.pixels.dtype != np.float32):
      raise ValueError(f"pixels must be float32 (H, W, 1|3), got {self.pixels.dtype} "
                       f"{self.pixels.shape}")
    if self.alpha is not None and (self.alpha.shape != self.pixels.shape[:2] + (1,)
                                   or self.alpha.dtype != np.float32):
      raise ValueError(f"alpha must be float32 {self.pixels.shape[:2] + (1,)}, got "
                       f"{self.alpha.dtype} {self.alpha.shape}")
    if self.bit_depth not in (8, 16):
      raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
    if self.source_format not in SOURCE_FORMATS:
      raise ValueError(f"source_format must be one of {SOURCE_FORMATS}, got "
                       f"{self.source_format!r}")
    if self.source_shape is None:
      object.__setattr__(self, "source_shape", tuple(self.pixels.shape[:2]))

  @classmethod
  def from_samples(cls, samples: np.ndarray, **metadata) -> Image:
    """uint8/uint16 samples (H, W, 1..4; 2 and 4 end in alpha) as x / 255 or x / 65535."""
    bit_depth = 8 if samples.dtype == np.uint8 else 16
    values = samples.astype(np.float32) / np.float32(2 ** bit_depth - 1)
    has_alpha = samples.shape[2] in (2, 4)
    return cls(pixels=values[..., :-1] if has_alpha else values,
               alpha=values[..., -1:] if has_alpha else None, bit_depth=bit_depth, **metadata)

  @property
  def mode(self) -> str:
    """"L", "LA", "RGB" or "RGBA", as Pillow names them."""
    return ("L" if self.pixels.shape[2] == 1 else "RGB") + ("A" if self.alpha is not None else "")

  def rgb(self) -> np.ndarray:
    """The pixels as (H, W, 3) float32: gray repeated, alpha left out (networks are RGB)."""
    if self.pixels.shape[2] == 3:
      return self.pixels
    return np.ascontiguousarray(np.repeat(self.pixels, 3, axis=2))

  def with_pixels(self, pixels: np.ndarray, alpha: np.ndarray | None = None) -> Image:
    """The same image's conventions and metadata around new (e.g. upscaled) pixels.

    `pixels` must have this image's channel count (gray stays gray); pass the new alpha if and
    only if this image has one.
    """
    if np.ndim(pixels) != 3 or np.shape(pixels)[2] != self.pixels.shape[2]:
      raise ValueError(f"expected (H, W, {self.pixels.shape[2]}) pixels like the source "
                       f"(mode {self.mode}), got shape {np.shape(pixels)}")
    if (alpha is None) != (self.alpha is None):
      raise ValueError("pass an alpha channel exactly when the source image has one "
                       f"(source mode {self.mode})")
    return dataclasses.replace(
        self, pixels=np.asarray(pixels, np.float32),
        alpha=None if alpha is None else np.asarray(alpha, np.float32))


def quantise(image: Image, bit_depth: int) -> np.ndarray:
  """[0, 1] pixels (and alpha) -> (H, W, C) uint8/uint16 samples, alpha last.

  Works in blocks of ROWS_PER_BLOCK rows, so a huge (possibly memory-mapped) output needs no
  full-size float temporary next to the integer result.
  """
  height, width, channels = image.pixels.shape
  alpha_channels = 0 if image.alpha is None else image.alpha.shape[2]
  samples = np.empty((height, width, channels + alpha_channels),
                     np.uint8 if bit_depth == 8 else np.uint16)
  scale = 2 ** bit_depth - 1
  for top in range(0, height, ROWS_PER_BLOCK):
    rows = slice(top, top + ROWS_PER_BLOCK)
    samples[rows, :, :channels] = _quantise_block(image.pixels[rows], scale)
    if alpha_channels:
      samples[rows, :, channels:] = _quantise_block(image.alpha[rows], scale)
  return samples


def _quantise_block(values: np.ndarray, scale: int) -> np.ndarray:
  block = np.clip(values, 0.0, 1.0)  # A new array; the in-place steps below reuse it.
  block *= scale
  np.rint(block, out=block)
  return block


def scaled_dpi(image: Image) -> tuple[float, float] | None:
  """The source's dpi scaled with the pixels, so the physical size stays the same."""
  if image.dpi is None:
    return None
  height, width = image.pixels.shape[:2]
  return (image.dpi[0] * width / image.source_shape[1],
          image.dpi[1] * height / image.source_shape[0])
