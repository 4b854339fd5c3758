"""Image files by content: read any format jaxsr knows, write PNG, TIFF, JPEG and DICOM atomically.

    image = read_image("chest.dcm")                 # Image: float32 (H, W, C) in [0, 1] + metadata
    sr = my_upscaler(image.pixels)                  # the caller's network; alpha is its business
    write_image("chest_x4.dcm", image.with_pixels(sr))

    samples = read_samples("scan.ppm.gz")           # training: uint8/uint16 (H, W, C)

Reading looks at the file's first bytes, not its name (`formats.sniff`); gzip-compressed files
are decompressed first. Raster formats go through the one decoder (`raster`), DICOM through the
one DICOM reader (`dicom`), so every command sees the same pixels:

  * `read_frames` / `read_image`: `Image`s (float32 in [0, 1] = samples / (2^bits - 1) for
    rasters, the documented DICOM intensity mapping for DICOM), for upscaling and evaluation.
  * `read_samples` / `decode_samples` (from a path / from bytes, e.g. a TFDS record): the
    integer samples training keeps, uint8 or uint16 with the file's channels; DICOM as uint16,
    round(x * 65535) of the same mapping.

Writing (`write_image`, `write_frames`): PNG and TIFF at the image's bit depth (16-bit PNGs by the
streaming writer in `png`), JPEG at quality 95 without chroma subsampling (8-bit, no alpha),
DICOM as a derived image of its DICOM source (`dicom.derived_dataset`). Resolution is scaled with
the image, the ICC profile kept; EXIF is not copied. Every write goes through `atomic_write`.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Iterable

import numpy as np
import PIL.Image
import pydicom

from jaxsr.io import dicom
from jaxsr.io import formats
from jaxsr.io import png
from jaxsr.io import raster
from jaxsr.io import tiff
from jaxsr.io.atomic import atomic_write
from jaxsr.io.image import FORMATS
from jaxsr.io.image import Image
from jaxsr.io.image import ImageNotFoundError
from jaxsr.io.image import UnreadableImageError
from jaxsr.io.image import UnsupportedImageError
from jaxsr.io.image import quantise
from jaxsr.io.image import scaled_dpi

JPEG_QUALITY = 95


def read_image(path, *, dicom_range: str = "data") -> Image:
  """Reads a PNG, TIFF, JPEG, BMP, PNM or DICOM file (recognised by content) as an `Image`.

  Raises:
    ImageNotFoundError: no such file (a FileNotFoundError and an UnreadableImageError).
    UnreadableImageError: the file cannot be decoded (UnsupportedImageError: it is an image of a
      kind jaxsr refuses, e.g. a multi-frame DICOM: use `read_frames`).
  """
  frames = read_frames(path, dicom_range=dicom_range)
  if len(frames) > 1:
    raise UnsupportedImageError(path, f"multi-frame DICOM ({len(frames)} frames): read it with "
                                "read_frames (python -m jaxsr.upscale processes every frame)")
  return frames[0]


def read_frames(path, *, dicom_range: str = "data") -> list[Image]:
  """Reads a file as a list of frames: one `Image`, or one per frame of a multi-frame DICOM.

  The frames of a multi-frame DICOM share their dataset and intensity mapping, so they are
  written back together with `write_frames`. Raises like `read_image`.
  """
  if dicom_range not in dicom.DICOM_RANGES:
    raise ValueError(f"dicom_range must be one of {dicom.DICOM_RANGES}, got {dicom_range!r}")
  path = Path(path)
  with _opened(path) as f:
    head = f.read(formats.HEAD_BYTES)
    if head and head[:2] != formats.GZIP_MAGIC and formats.sniff(head, path.name) == "dicom":
      f.seek(0)
      return dicom.read_frames(f, path, dicom_range)  # pydicom reads the file itself.
    data = head + f.read()
  return decode_frames(data, path, dicom_range=dicom_range)


def decode_frames(data: bytes, name, *, dicom_range: str = "data") -> list[Image]:
  """`read_frames` of a file's bytes; `name` (a path or a description) is used in errors."""
  data, kind = _unpacked(data, name)
  if kind == "dicom":
    return dicom.read_frames(io.BytesIO(data), name, dicom_range)
  return [raster.decode(data, kind, name).to_image()]


def read_samples(path) -> np.ndarray:
  """A file's integer samples, as training reads it: (H, W, C) uint8 or uint16.

  Raster files keep their channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) and depth; DICOM gives
  uint16 round(x * 65535) of its "data" intensity mapping (gray or RGB). Raises
  UnreadableImageError (ImageNotFoundError for a missing file) naming the file.
  """
  path = Path(path)
  with _opened(path) as f:
    data = f.read()
  return decode_samples(data, path)


def decode_samples(data: bytes, name="<bytes>") -> np.ndarray:
  """`read_samples` of a file's bytes (e.g. an encoded image of a TFDS record)."""
  data, kind = _unpacked(data, name)
  if kind != "dicom":
    return raster.decode(data, kind, name).samples
  frames = dicom.read_frames(io.BytesIO(data), name, "data")
  if len(frames) > 1:
    raise UnsupportedImageError(name, f"multi-frame DICOM ({len(frames)} frames) is not "
                                "supported here; save one frame per file")
  return np.round(frames[0].pixels * 65535.0).astype(np.uint16)


class _opened:
  """`open(path, "rb")`, with OSErrors as UnreadableImageError (ImageNotFoundError if missing)."""

  def __init__(self, path: Path):
    self._path = path

  def __enter__(self):
    try:
      self._file = open(self._path, "rb")
    except FileNotFoundError as e:
      raise ImageNotFoundError(self._path, "no such file") from e
    except OSError as e:
      raise UnreadableImageError(self._path, f"cannot read the file: {e}") from e
    return self._file

  def __exit__(self, *exc):
    self._file.close()


def _unpacked(data: bytes, name) -> tuple[bytes, str]:
  """The (gunzipped) bytes and their format; UnreadableImageError if it is none jaxsr reads."""
  if data[:2] == formats.GZIP_MAGIC:
    try:
      data = gzip.decompress(data)
    except Exception as e:  # pylint: disable=broad-except  (OSError, EOFError, zlib.error)
      raise UnreadableImageError(name, f"cannot decompress the gzip file: {e}") from e
  if not data:
    raise UnreadableImageError(name, "the file is empty")
  stem = str(name)
  if stem.lower().endswith(formats.GZIP_SUFFIX):
    stem = stem[:-len(formats.GZIP_SUFFIX)]
  kind = formats.sniff(data[:formats.HEAD_BYTES], stem)
  if kind is None:
    raise UnreadableImageError(name, f"not {formats.KNOWN}")
  return data, kind


# ----------------------------------------------------------------------------------------------
# Writing.


def write_image(path, image: Image, *, file_format: str | None = None,
                description: str = dicom.DEFAULT_DESCRIPTION,
                series_description: str | None = None, series_key: str = "",
                keep_series: bool = False) -> None:
  """Writes `image` atomically as `file_format` (one of FORMATS; default: from the suffix).

  PNG and TIFF are written at `image.bit_depth`; JPEG is 8-bit and has no alpha; DICOM needs a
  DICOM source (`image.dicom`), records `description` as its DerivationDescription and goes in
  a new series described by `series_description` (default: `description`) and identified by it,
  the source series and `series_key` (e.g. the model's weights digest), or with `keep_series` in
  the source's series (see `dicom.derived_series`).
  """
  path = Path(path)
  file_format = file_format or formats.SUFFIXES.get(path.suffix.lower())
  if file_format not in FORMATS:
    raise ValueError(f"cannot tell the output format of {path.name}; use one of "
                     f"{sorted(formats.SUFFIXES)} or pass file_format= one of {FORMATS}")
  # Everything that can be checked or prepared happens before the temporary file exists.
  if file_format == "dicom":
    dataset = dicom.derived_dataset(image, description, series_description=series_description,
                                    series_key=series_key, keep_series=keep_series)
    atomic_write(path, lambda f: pydicom.dcmwrite(f, dataset, enforce_file_format=True))
    return
  if file_format == "tiff":
    raster.import_tifffile()  # A missing tifffile fails here, not inside the temporary file.
    atomic_write(path, lambda f: tiff.write_tiff(f, [image]))
    return
  samples = quantise(image, 8 if file_format == "jpeg" else image.bit_depth)
  dpi = scaled_dpi(image)
  if file_format == "png":
    atomic_write(path, lambda f: png.write_png(f, samples, dpi, image.icc_profile))
    return
  if image.alpha is not None:
    raise ValueError(f"JPEG has no alpha channel; write {path.name} as PNG or TIFF")
  pil_image = PIL.Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)
  options = {"dpi": dpi} if dpi else {}
  if image.icc_profile:
    options["icc_profile"] = image.icc_profile
  atomic_write(path, lambda f: pil_image.save(f, format="JPEG", quality=JPEG_QUALITY,
                                              subsampling=0, **options))


def write_frames(path, frames: Iterable[Image], count: int, *, file_format: str | None = None,
                 description: str = dicom.DEFAULT_DESCRIPTION,
                 series_description: str | None = None, series_key: str = "",
                 keep_series: bool = False) -> None:
  """Writes the `count` frames of one source (see `read_frames`) as one file, atomically.

  One frame is written by `write_image`. Several become one multi-frame DICOM (from a DICOM
  source) or a multi-page TIFF. `frames` may be a generator: each frame is converted to its
  stored samples as it arrives, so only those, never all float frames, are held at once.
  `description`, `series_description`, `series_key` and `keep_series` are as for `write_image`.
  """
  path = Path(path)
  file_format = file_format or formats.SUFFIXES.get(path.suffix.lower())
  frames = iter(frames)
  if count == 1:
    write_image(path, next(frames), file_format=file_format, description=description,
                series_description=series_description, series_key=series_key,
                keep_series=keep_series)
    return
  if file_format not in ("dicom", "tiff"):
    raise ValueError(f"{count} frames can be written as a multi-frame DICOM or a multi-page TIFF, "
                     f"not as {file_format or path.name}")
  if file_format == "tiff":
    def write_pages(f):
      written = tiff.write_tiff(f, frames)
      if written != count:
        raise ValueError(f"expected {count} frames, got {written}")

    atomic_write(path, write_pages)
    return
  dataset = dicom.derived_frames_dataset(frames, count, description,
                                         series_description=series_description,
                                         series_key=series_key, keep_series=keep_series)
  atomic_write(path, lambda f: pydicom.dcmwrite(f, dataset, enforce_file_format=True))
