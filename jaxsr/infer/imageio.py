"""Image files in and out without losing what their pixels mean: PNG, TIFF, JPEG and DICOM.

    image = read_image("chest.dcm")                 # Image: float32 (H, W, C) in [0, 1] + metadata
    sr = my_upscaler(image.pixels)                  # the caller's network; alpha is its business
    write_image("chest_x4.dcm", image.with_pixels(sr))

An `Image` carries what is needed to write a result back in the input's conventions: its bit
depth, gray vs colour, a separate alpha channel, resolution and ICC profile, and for DICOM the
dataset and the intensity mapping. Reading looks at the file's first bytes, not its name.

* PNG and TIFF: 8 and 16 bits per sample, gray, gray+alpha, RGB, RGBA (palette PNGs are expanded
  to RGB/RGBA); written back at the input's depth. Pillow reads PNG except 16-bit colour, which it
  would silently cut to 8 bits: TensorFlow's libpng decodes those, and 16-bit PNGs are written by
  a small zlib encoder here (Pillow can only write 16-bit gray). TIFF goes through `tifffile`
  (one page; MINISWHITE is read inverted and written as MINISBLACK). Gray stays gray. Pixels are
  read as stored: EXIF orientation is not applied and EXIF is not copied. Resolution (dpi) is
  scaled with the image, so the physical size is unchanged; the ICC profile is kept.
* JPEG: 8-bit gray or RGB, written at quality 95 without chroma subsampling.
* DICOM: MONOCHROME1/MONOCHROME2 (modality rescale applied, MONOCHROME1 inverted, so the network
  always sees MONOCHROME2, "white = dense") and colour (RGB; YBR sources are decoded to RGB and
  written back as RGB). Multi-frame objects (MR/CT series, ultrasound loops, enhanced objects)
  are read by `read_frames` as one `Image` per frame sharing one intensity mapping, and written
  back by `write_frames` as one multi-frame object; `read_image` refuses them. Rescale, window
  and pixel spacing are looked up where enhanced objects keep them too (the frame's functional
  groups, then the shared ones, then the top level). The mapping of modality values to [0, 1]
  is chosen by `dicom_range`:
    "data"   (default) the image's own min..max (over all its frames): full contrast, nothing
             clipped, invertible;
    "bits"   the full range BitsStored allows (Real-ESRGAN's "/65535" convention);
    "window" the header's VOI window (what a viewer shows first; the first frame's); values
             outside it are clipped, so they come back as the window's ends.
  Writing a DICOM inverts the mapping and the rescale into the source's stored representation
  (same BitsAllocated/BitsStored/sign and photometric interpretation), updates Rows/Columns,
  divides PixelSpacing, ImagerPixelSpacing and NominalScannedPixelSpacing by the scale (also in
  the functional groups' Pixel Measures of enhanced objects), marks the
  image DERIVED/SECONDARY with a DerivationDescription and a SourceImageSequence pointing at the
  source, gives it a new SOP Instance UID and puts it in a new series of the same study (see
  `derived_series`; `keep_series=True` keeps the source's), and keeps every other element
  (retired group lengths are left to pydicom). Compressed sources are written uncompressed
  (Explicit VR Little Endian); big-endian sources can be read, and written only as PNG/TIFF.
  Compressed pixel data is decoded by pydicom's plugins: Pillow (JPEG baseline, JPEG 2000), GDCM
  (JPEG Lossless, the usual compression of archived radiographs, and JPEG-LS) and pydicom itself
  (RLE).

Every write goes to a temporary file in the target's folder, which is renamed over the target
only when complete: a failure never leaves a partial file. Files that cannot be decoded raise
`UnreadableImageError` (naming the file and the cause); decodable images of a kind this module
refuses raise its subclass `UnsupportedImageError`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import struct
import uuid
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import numpy as np
import PIL.Image
import pydicom
import pydicom.multival
import pydicom.uid
import pydicom.valuerep

FORMATS = ("png", "tiff", "jpeg", "dicom")
SUFFIXES = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg",
            ".dcm": "dicom", ".dicom": "dicom"}
DICOM_RANGES = ("data", "bits", "window")
# Physical pixel spacings (row spacing \ column spacing, mm) that shrink as the pixels get smaller.
DICOM_SPACINGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")
JPEG_QUALITY = 95
DEFAULT_DESCRIPTION = "Super-resolved by jaxsr (Real-ESRGAN)"
# A derived series is numbered after its source series: this much higher (or this, without one).
SERIES_NUMBER_OFFSET = 1000
SERIES_DESCRIPTION_LENGTH = 64  # LO value representation.


class UnreadableImageError(Exception):
  """A file that cannot be decoded into pixels (broken, truncated, not an image, no decoder)."""

  def __init__(self, path, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = Path(path)
    self.reason = reason


class UnsupportedImageError(UnreadableImageError):
  """An image of a kind this module deliberately does not handle (a palette, a Modality LUT...)."""


@dataclasses.dataclass(frozen=True)
class DicomInfo:
  """What a DICOM image needs to be written back in its source's representation.

  Attributes:
    dataset: the source's dataset without its pixel data.
    low, high: the modality values (after RescaleSlope/Intercept) that became 0 and 1, before
      any MONOCHROME1 inversion. For colour images, the stored values.
    invert: the source is MONOCHROME1; pixels were inverted to MONOCHROME2 and are inverted back.
    intensity_range: how `low` and `high` were chosen (one of DICOM_RANGES).
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
    source_format: one of FORMATS.
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
    if self.source_format not in FORMATS:
      raise ValueError(f"source_format must be one of {FORMATS}, got {self.source_format!r}")
    if self.source_shape is None:
      object.__setattr__(self, "source_shape", tuple(self.pixels.shape[:2]))

  @property
  def mode(self) -> str:
    """"L", "LA", "RGB" or "RGBA", as Pillow names them."""
    return ("L" if self.pixels.shape[2] == 1 else "RGB") + ("A" if self.alpha is not None else "")

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


def read_image(path, *, dicom_range: str = "data") -> Image:
  """Reads a PNG, TIFF, JPEG or DICOM file (recognised by content) as an `Image`.

  Raises:
    FileNotFoundError: no such file.
    UnreadableImageError: the file cannot be decoded (UnsupportedImageError: it is an image of a
      kind this module refuses).
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
  if dicom_range not in DICOM_RANGES:
    raise ValueError(f"dicom_range must be one of {DICOM_RANGES}, got {dicom_range!r}")
  path = Path(path)
  kind = _sniff_format(path)
  if kind == "dicom":
    return _read_dicom(path, dicom_range)
  if kind == "tiff":
    return [_read_tiff(path)]
  return [_read_pil(path, kind)]


def write_image(path, image: Image, *, file_format: str | None = None,
                description: str = DEFAULT_DESCRIPTION, series_description: str | None = None,
                keep_series: bool = False) -> None:
  """Writes `image` atomically as `file_format` (one of FORMATS; default: from the suffix).

  PNG and TIFF are written at `image.bit_depth`; JPEG is 8-bit and has no alpha; DICOM needs a
  DICOM source (`image.dicom`), records `description` as its DerivationDescription and goes in
  a new series described by `series_description` (default: `description`), or with
  `keep_series` in the source's series (see `derived_series`).
  """
  path = Path(path)
  file_format = file_format or SUFFIXES.get(path.suffix.lower())
  if file_format not in FORMATS:
    raise ValueError(f"cannot tell the output format of {path.name}; use one of "
                     f"{sorted(SUFFIXES)} or pass file_format= one of {FORMATS}")
  # Everything that can be checked or prepared happens before the temporary file exists.
  if file_format == "dicom":
    dataset = derived_dataset(image, description, series_description=series_description,
                              keep_series=keep_series)
    _write_atomically(path, lambda f: pydicom.dcmwrite(f, dataset, enforce_file_format=True))
    return
  if file_format == "tiff":
    _import_tifffile()  # A missing tifffile fails here, not inside the temporary file.
    _write_atomically(path, lambda f: _write_tiff(f, [image]))
    return
  samples = _quantise(image, 8 if file_format == "jpeg" else image.bit_depth)
  dpi = _scaled_dpi(image)
  if file_format == "png":
    _write_atomically(path, lambda f: _write_png(f, samples, dpi, image.icc_profile))
  else:
    if image.alpha is not None:
      raise ValueError(f"JPEG has no alpha channel; write {path.name} as PNG or TIFF")
    pil_image = PIL.Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)
    options = {"dpi": dpi} if dpi else {}
    if image.icc_profile:
      options["icc_profile"] = image.icc_profile
    _write_atomically(path, lambda f: pil_image.save(
        f, format="JPEG", quality=JPEG_QUALITY, subsampling=0, **options))


def write_frames(path, frames: Iterable[Image], count: int, *, file_format: str | None = None,
                 description: str = DEFAULT_DESCRIPTION, series_description: str | None = None,
                 keep_series: bool = False) -> None:
  """Writes the `count` frames of one source (see `read_frames`) as one file, atomically.

  One frame is written by `write_image`. Several become one multi-frame DICOM (from a DICOM
  source) or a multi-page TIFF. `frames` may be a generator: each frame is converted to its
  stored samples as it arrives, so only those, never all float frames, are held at once.
  `description`, `series_description` and `keep_series` are as for `write_image`.
  """
  path = Path(path)
  file_format = file_format or SUFFIXES.get(path.suffix.lower())
  frames = iter(frames)
  if count == 1:
    write_image(path, next(frames), file_format=file_format, description=description,
                series_description=series_description, keep_series=keep_series)
    return
  if file_format not in ("dicom", "tiff"):
    raise ValueError(f"{count} frames can be written as a multi-frame DICOM or a multi-page TIFF, "
                     f"not as {file_format or path.name}")
  if file_format == "tiff":
    def write_pages(f):
      written = _write_tiff(f, frames)
      if written != count:
        raise ValueError(f"expected {count} frames, got {written}")

    _write_atomically(path, write_pages)
    return
  stored, first = None, None
  for index, image in enumerate(frames):
    if index >= count:
      raise ValueError(f"expected {count} frames, got more")
    if image.dicom is None or image.dicom.frame is None:
      raise ValueError(f"image {index} is not a frame of a multi-frame DICOM source")
    if image.dicom.frame != index:
      raise ValueError(f"frame {image.dicom.frame} came where frame {index} belongs")
    if first is not None and (image.dicom.dataset is not first.dicom.dataset
                              or image.pixels.shape != first.pixels.shape):
      raise ValueError(f"frame {index} does not belong with frame 0 (another source or size)")
    values = _stored_values(image.pixels, image.dicom)
    if stored is None:
      first, stored = image, np.empty((count,) + values.shape, values.dtype)
    stored[index] = values
  if first is None or index + 1 != count:
    raise ValueError(f"expected {count} frames, got {0 if first is None else index + 1}")
  dataset = _derived_header(first, description, series_description, keep_series)
  _set_pixel_data(dataset, stored)
  _write_atomically(path, lambda f: pydicom.dcmwrite(f, dataset, enforce_file_format=True))


def _write_tiff(f: BinaryIO, images: Iterable[Image]) -> int:
  """Writes one TIFF page per image, each at its bit depth; returns the number of pages."""
  tifffile = _import_tifffile()
  written = 0
  with tifffile.TiffWriter(f) as tiff:
    for image in images:
      samples = _quantise(image, image.bit_depth)
      dpi = _scaled_dpi(image)
      # Gray is written as (H, W): a trailing axis of 1 would read as a third dimension.
      tiff.write(samples[..., 0] if samples.shape[2] == 1 else samples,
                 photometric="minisblack" if image.pixels.shape[2] == 1 else "rgb",
                 compression="zlib", iccprofile=image.icc_profile,
                 extrasamples=["unassalpha"] if image.alpha is not None else None,
                 **({"resolution": dpi, "resolutionunit": "INCH"} if dpi else {}))
      written += 1
  return written


# ----------------------------------------------------------------------------------------------
# Recognising and decoding files.


def _sniff_format(path: Path) -> str:
  with open(path, "rb") as f:
    head = f.read(132)
  if not head:
    raise UnreadableImageError(path, "the file is empty")
  # First: the 128-byte preamble of a DICOM file may itself hold a TIFF header (dual-format).
  if head[128:132] == b"DICM":
    return "dicom"
  if head.startswith(b"\x89PNG\r\n\x1a\n"):
    return "png"
  if head.startswith(b"\xff\xd8\xff"):
    return "jpeg"
  if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
    return "tiff"
  # Some old DICOM files are a bare dataset, without preamble and "DICM".
  if path.suffix.lower() in (".dcm", ".dicom"):
    return "dicom"
  raise UnreadableImageError(path, "not a PNG, TIFF, JPEG or DICOM file")


@contextlib.contextmanager
def _decoding(path: Path, what: str):
  """Turns whatever a decoding library raises into an UnreadableImageError naming the file."""
  try:
    yield
  except UnreadableImageError:
    raise
  except Exception as e:  # Decoders raise anything from OSError to KeyError on bad input.
    # One line (pydicom lists the decoders it would need on the lines after the first).
    cause = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    cause = cause if len(cause) <= 500 else cause[:497] + "..."
    raise UnreadableImageError(path, f"cannot decode {what}: {cause or type(e).__name__}") from e


def _from_samples(samples: np.ndarray, bit_depth: int, **metadata) -> Image:
  """Integer samples (H, W, 1..4; 2 and 4 end in alpha) -> Image with [0, 1] floats."""
  values = samples.astype(np.float32) / np.float32(2 ** bit_depth - 1)
  has_alpha = samples.shape[2] in (2, 4)
  return Image(pixels=values[..., :-1] if has_alpha else values,
               alpha=values[..., -1:] if has_alpha else None, bit_depth=bit_depth, **metadata)


def _read_pil(path: Path, kind: str) -> Image:
  """PNG and JPEG through Pillow (except 16-bit colour PNG, which Pillow truncates)."""
  with _decoding(path, kind.upper()), PIL.Image.open(path) as pil_image:
    if getattr(pil_image, "n_frames", 1) > 1:
      raise UnsupportedImageError(path, f"animated {kind.upper()} "
                                  f"({pil_image.n_frames} frames) is not supported")
    metadata = dict(source_format=kind, dpi=_pil_dpi(pil_image),
                    icc_profile=pil_image.info.get("icc_profile") or None)
    if kind == "png" and _png_is_16bit_colour(path):
      samples, bit_depth = _decode_png16(path), 16
    else:
      pil_image.load()
      samples, bit_depth = _pil_samples(path, pil_image)
  return _from_samples(samples, bit_depth, **metadata)


def _pil_samples(path: Path, pil_image: PIL.Image.Image) -> tuple[np.ndarray, int]:
  """(H, W, C) uint8/uint16 samples of a decoded Pillow image, and their bit depth."""
  mode = pil_image.mode
  if mode in ("P", "PA"):  # Palette: expand to the colours it stands for.
    has_alpha = mode == "PA" or "transparency" in pil_image.info
    pil_image, mode = pil_image.convert("RGBA" if has_alpha else "RGB"), None
  elif mode in ("L", "RGB") and "transparency" in pil_image.info:  # A tRNS colour key.
    pil_image, mode = pil_image.convert(mode + "A"), None
  elif mode == "1":
    pil_image, mode = pil_image.convert("L"), None
  mode = pil_image.mode
  if mode in ("L", "LA", "RGB", "RGBA"):
    samples = np.asarray(pil_image)
    return samples.reshape(samples.shape[:2] + (-1,)), 8
  if mode.startswith("I;16") or mode == "I":  # 16-bit gray (older Pillows open it as "I").
    samples = np.asarray(pil_image)
    if samples.min() < 0 or samples.max() > 65535:
      raise UnsupportedImageError(path, f"{mode} samples outside 0..65535 are not supported")
    return samples.astype(np.uint16)[..., None], 16
  raise UnsupportedImageError(path, f"pixel mode {mode} is not supported (8/16-bit gray, RGB, "
                              "RGBA and palette images are)")


def _pil_dpi(pil_image: PIL.Image.Image) -> tuple[float, float] | None:
  dpi = pil_image.info.get("dpi")
  if not dpi or not all(float(d) > 0 for d in dpi):
    return None
  return float(dpi[0]), float(dpi[1])


def _png_is_16bit_colour(path: Path) -> bool:
  # IHDR is the first chunk: 8-byte signature, length, "IHDR", width, height, depth, colour type.
  with open(path, "rb") as f:
    header = f.read(26)
  bit_depth, colour_type = header[24], header[25]
  return bit_depth == 16 and colour_type in (2, 4, 6)  # RGB, gray+alpha, RGBA.


def _decode_png16(path: Path) -> np.ndarray:
  # TensorFlow is a dependency already (tf.data) and decodes all 16 bits; imported here so that
  # reading any other file never pays its start-up time.
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.io.decode_png(path.read_bytes(), channels=0, dtype=tf.uint16).numpy()


def _import_tifffile():
  try:
    import tifffile  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("TIFF files need the tifffile package: pip install tifffile") from e
  return tifffile


def _read_tiff(path: Path) -> Image:
  tifffile = _import_tifffile()
  with _decoding(path, "TIFF"), tifffile.TiffFile(path) as tiff:
    if len(tiff.pages) > 1:
      raise UnsupportedImageError(path, f"multi-page TIFF ({len(tiff.pages)} pages) is not "
                                  "supported; save one page per file")
    page = tiff.pages[0]
    photometric = page.photometric.name
    if photometric not in ("MINISBLACK", "MINISWHITE", "RGB"):
      raise UnsupportedImageError(path, f"TIFF photometric {photometric} is not supported")
    if page.dtype not in (np.uint8, np.uint16):
      raise UnsupportedImageError(path, f"TIFF samples of type {page.dtype} are not supported "
                                  "(8- and 16-bit unsigned integers are)")
    extras = [e.name for e in page.extrasamples]
    if len(extras) > 1 or extras == ["ASSOCALPHA"]:
      raise UnsupportedImageError(path, f"TIFF extra samples {extras} are not supported "
                                  "(one unassociated alpha channel is)")
    samples = page.asarray()
    # Order the axes as (Y, X, S) whatever the planar configuration.
    axes = page.axes if "S" in page.axes else page.axes + "S"
    samples = np.moveaxis(samples.reshape(samples.shape + (1,) * ("S" not in page.axes)),
                          [axes.index("Y"), axes.index("X"), axes.index("S")], [0, 1, 2])
    per_inch = {"INCH": 1.0, "CENTIMETER": 2.54}.get(tifffile.RESUNIT(page.resolutionunit).name)
    dpi = tuple(float(r) * per_inch for r in page.resolution) if per_inch else None
    icc = page.tags.get("InterColorProfile")
    metadata = dict(source_format="tiff", dpi=dpi if dpi and all(dpi) else None,
                    icc_profile=bytes(icc.value) if icc else None)
  bit_depth = 8 if samples.dtype == np.uint8 else 16
  if photometric == "MINISWHITE":  # Stored dark-is-high; the network sees white = high.
    samples = samples.copy()
    samples[..., 0] = (2 ** bit_depth - 1) - samples[..., 0]
  return _from_samples(samples, bit_depth, **metadata)


# ----------------------------------------------------------------------------------------------
# DICOM.


def _read_dicom(path: Path, intensity_range: str) -> list[Image]:
  """A DICOM file's frames (one for a single-frame object), sharing one intensity mapping."""
  with _decoding(path, "DICOM"):
    dataset = pydicom.dcmread(path, force=True)
    if "PixelData" not in dataset:
      raise UnreadableImageError(path, "the DICOM object has no pixel data")
    frames = int(dataset.get("NumberOfFrames") or 1)
    photometric = str(dataset.PhotometricInterpretation)
    monochrome = photometric in ("MONOCHROME1", "MONOCHROME2")
    if not monochrome and photometric not in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT",
                                              "YBR_RCT"):
      raise UnsupportedImageError(path, f"PhotometricInterpretation {photometric} is not "
                                  "supported")
    if int(dataset.BitsAllocated) > 16:
      # float32 pixels hold 24 bits exactly; keep a margin and the round trip stays exact.
      raise UnsupportedImageError(path, f"BitsAllocated {dataset.BitsAllocated} > 16 is not "
                                  "supported")
    if "ModalityLUTSequence" in dataset:
      raise UnsupportedImageError(path, "a Modality LUT Sequence is not supported (only a "
                                  "linear RescaleSlope/RescaleIntercept)")
    stored = dataset.pixel_array  # Masked to BitsStored and sign-extended; YBR comes as RGB.
    stored = stored.reshape((frames,) + stored.shape[-3 + monochrome:])  # (frames, H, W[, 3])
  del dataset.PixelData  # Written anew; no need to keep the (maybe compressed) original.
  bits_stored = int(dataset.BitsStored)
  common = dict(bit_depth=8 if bits_stored <= 8 else 16, source_format="dicom")
  frame_index = (lambda i: i) if frames > 1 else (lambda i: None)

  if not monochrome:
    low, high = _stored_range(dataset)  # Colour: stored values are the values.
    return [Image(pixels=((stored[i] - np.float32(low)) / np.float32(high - low)).astype(
                      np.float32),
                  dicom=DicomInfo(dataset=dataset, low=low, high=high, invert=False,
                                  intensity_range="bits", frame=frame_index(i)), **common)
            for i in range(frames)]

  rescales = [_rescale(dataset, i) for i in range(frames)]  # Enhanced objects: per frame.
  values = np.empty(stored.shape, np.float64)
  for i, (slope, intercept) in enumerate(rescales):
    values[i] = stored[i] * slope + intercept
  low, high = _modality_range(path, dataset, values, rescales, intensity_range)
  invert = photometric == "MONOCHROME1"
  images = []
  for i in range(frames):
    pixels = np.clip((values[i] - low) / (high - low), 0.0, 1.0)
    if invert:
      pixels = 1.0 - pixels
    info = DicomInfo(dataset=dataset, low=low, high=high, invert=invert,
                     intensity_range=intensity_range, frame=frame_index(i))
    images.append(Image(pixels=pixels.astype(np.float32)[..., None], dicom=info, **common))
  return images


def _frame_value(dataset: pydicom.Dataset, frame: int | None, group: str, keyword: str):
  """`keyword` for one frame: from its functional group `group`, the shared one, or the top level.

  Enhanced (multi-frame) objects keep rescale, window and spacing in functional group
  sequences (PS3.3 C.7.6.16); classic objects keep them at the top level.
  """
  items = []
  per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
  if per_frame and (frame or 0) < len(per_frame):
    items.append(per_frame[frame or 0])
  shared = dataset.get("SharedFunctionalGroupsSequence")
  if shared:
    items.append(shared[0])
  for item in items:
    sequence = item.get(group)
    if sequence and keyword in sequence[0]:
      return sequence[0][keyword].value
  return dataset.get(keyword)


def _rescale(dataset: pydicom.Dataset, frame: int | None = None) -> tuple[float, float]:
  slope = _frame_value(dataset, frame, "PixelValueTransformationSequence", "RescaleSlope")
  intercept = _frame_value(dataset, frame, "PixelValueTransformationSequence",
                           "RescaleIntercept")
  return (1.0 if slope in (None, "") else float(slope),
          0.0 if intercept in (None, "") else float(intercept))


def _stored_range(dataset: pydicom.Dataset) -> tuple[int, int]:
  bits = int(dataset.BitsStored)
  if int(dataset.get("PixelRepresentation", 0)) == 1:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
  return 0, 2 ** bits - 1


def _modality_range(path: Path, dataset: pydicom.Dataset, values: np.ndarray,
                    rescales: list[tuple[float, float]],
                    intensity_range: str) -> tuple[float, float]:
  """The modality values shown as black and white (see the module docstring)."""
  if intensity_range == "data":
    low, high = float(values.min()), float(values.max())
    return low, (high if high > low else low + 1.0)  # A constant image maps to 0.
  if intensity_range == "bits":
    ends = [v * slope + intercept for v in _stored_range(dataset)
            for slope, intercept in rescales]
    return float(min(ends)), float(max(ends))
  center = _frame_value(dataset, 0, "FrameVOILUTSequence", "WindowCenter")
  width = _frame_value(dataset, 0, "FrameVOILUTSequence", "WindowWidth")
  if center in (None, "") or width in (None, ""):
    raise UnsupportedImageError(path, "dicom_range='window' needs WindowCenter/WindowWidth, "
                                "which this file lacks; use 'data' or 'bits'")
  center, width = float(_first(center)), float(_first(width))
  function = str(_frame_value(dataset, 0, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR")
  # PS3.3 C.11.2.1.2: both functions are linear between two ends and clip outside them.
  if function == "LINEAR" and width >= 1:
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
  if function == "LINEAR_EXACT" and width > 0:
    return center - width / 2, center + width / 2
  raise UnsupportedImageError(path, f"VOI LUT function {function} with width {width} is not "
                              "supported")


def _first(value):
  return value[0] if isinstance(value, pydicom.multival.MultiValue) else value


def derived_dataset(image: Image, description: str = DEFAULT_DESCRIPTION, *,
                    series_description: str | None = None,
                    keep_series: bool = False) -> pydicom.Dataset:
  """The DICOM dataset of `image` (a DICOM source's pixels, maybe resized) as a derived image.

  `description` becomes the DerivationDescription; the series is as `derived_series` says.
  """
  if image.dicom is not None and image.dicom.frame is not None:
    raise ValueError("a frame of a multi-frame DICOM is written with its other frames: use "
                     "write_frames")
  dataset = _derived_header(image, description, series_description, keep_series)
  _set_pixel_data(dataset, _stored_values(image.pixels, image.dicom))
  return dataset


def _set_pixel_data(dataset: pydicom.Dataset, stored: np.ndarray) -> None:
  dataset.PixelData = stored.tobytes()
  dataset["PixelData"].VR = "OW" if stored.itemsize > 1 else "OB"


def derived_series(source: pydicom.Dataset, series_description: str) -> dict[str, object]:
  """SeriesInstanceUID, SeriesNumber and SeriesDescription of the series derived from `source`'s.

  Derived images belong in a series of their own in the source's study, not in the acquisition
  series (a PACS would otherwise file the x4 image among the originals):
  * SeriesInstanceUID: new, but the same for every image derived from one source series with one
    `series_description` (a hash of the two, as `pydicom.uid.generate_uid` makes from entropy
    sources), so the slices of a CT series written one file at a time, or an interrupted run
    resumed, end up in one derived series. A source without a series UID is hashed by its SOP
    Instance UID instead.
  * SeriesNumber: the source's plus SERIES_NUMBER_OFFSET (1000), or 1000 without one.
  * SeriesDescription: `series_description`, cut to the 64 characters DICOM allows (e.g.
    "jaxsr x4 RealESRGAN_x4plus": name the model and the scale).
  """
  key = source.get("SeriesInstanceUID") or source.get("SOPInstanceUID") or ""
  try:
    number = int(source.get("SeriesNumber")) + SERIES_NUMBER_OFFSET
  except (TypeError, ValueError):
    number = SERIES_NUMBER_OFFSET
  return {
      "SeriesInstanceUID": pydicom.uid.generate_uid(
          entropy_srcs=["jaxsr derived series", str(key), series_description]),
      "SeriesNumber": number,
      "SeriesDescription": series_description[:SERIES_DESCRIPTION_LENGTH],
  }


def _derived_header(image: Image, description: str, series_description: str | None = None,
                    keep_series: bool = False) -> pydicom.Dataset:
  """The dataset of a derived image of `image`'s geometry, without its PixelData."""
  info = image.dicom
  if info is None:
    raise ValueError(f"only images read from DICOM can be written as DICOM (this one is "
                     f"{image.source_format}); write PNG or TIFF instead")
  source = info.dataset
  transfer_syntax = source.file_meta.get("TransferSyntaxUID")
  _, little_endian = getattr(source, "original_encoding", (None, None))
  if (transfer_syntax and not transfer_syntax.is_little_endian) or little_endian is False:
    raise ValueError("writing a DICOM from a big-endian source (a retired transfer syntax) is "
                     "not supported; convert the source to little endian first")
  dataset = copy.deepcopy(source)
  height, width = image.pixels.shape[:2]
  scale_y, scale_x = height / image.source_shape[0], width / image.source_shape[1]

  if not str(source.PhotometricInterpretation).startswith("MONOCHROME"):
    dataset.PhotometricInterpretation = "RGB"  # Pixel data is written uncompressed RGB.
    dataset.PlanarConfiguration = 0
  dataset.Rows, dataset.Columns = height, width
  if transfer_syntax is None or transfer_syntax.is_compressed:
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
  # Elements that describe the old pixel data or its encoding, not the new image.
  for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "ExtendedOffsetTable",
                  "ExtendedOffsetTableLengths"):
    if keyword in dataset:
      del dataset[keyword]

  # The top level (classic objects) and the Pixel Measures of every functional group (enhanced).
  places = [dataset]
  for groups in (dataset.get("SharedFunctionalGroupsSequence") or [],
                 dataset.get("PerFrameFunctionalGroupsSequence") or []):
    for group in groups:
      places.extend(group.get("PixelMeasuresSequence") or [])
  for place in places:
    for keyword in DICOM_SPACINGS:
      spacing = place.get(keyword)
      if spacing is not None and len(spacing) == 2:
        place[keyword].value = [
            pydicom.valuerep.DSfloat(float(spacing[0]) / scale_y, auto_format=True),
            pydicom.valuerep.DSfloat(float(spacing[1]) / scale_x, auto_format=True)]

  # Provenance: a new instance, derived from (and pointing at) the source.
  image_type = list(dataset.get("ImageType") or [])
  image_type += [""] * (2 - len(image_type))
  dataset.ImageType = ["DERIVED", "SECONDARY"] + image_type[2:]
  previous = dataset.get("DerivationDescription")
  dataset.DerivationDescription = f"{previous}; {description}" if previous else description
  if "SOPClassUID" in source and "SOPInstanceUID" in source:
    reference = pydicom.Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    dataset.SourceImageSequence = [reference]
  dataset.SOPInstanceUID = pydicom.uid.generate_uid()
  dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
  if not keep_series:
    series = derived_series(source, description if series_description is None
                            else series_description)
    for keyword, value in series.items():
      setattr(dataset, keyword, value)
  if "SOPClassUID" in dataset:
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
  return dataset


def _stored_values(pixels: np.ndarray, info: DicomInfo, rows_per_block: int = 256) -> np.ndarray:
  """[0, 1] pixels -> modality values -> stored values in the source's representation.

  Computed in float64 a block of rows at a time, so the temporaries stay small however large
  the upscaled image is.
  """
  source = info.dataset
  signed = int(source.get("PixelRepresentation", 0)) == 1
  dtype = np.dtype(f"<{'i' if signed else 'u'}{int(source.BitsAllocated) // 8}")
  monochrome = str(source.PhotometricInterpretation).startswith("MONOCHROME")
  slope, intercept = _rescale(source, info.frame) if monochrome else (1.0, 0.0)
  stored = np.empty(pixels.shape[:2] if monochrome else pixels.shape, dtype)
  for top in range(0, pixels.shape[0], rows_per_block):
    x = np.clip(pixels[top:top + rows_per_block].astype(np.float64), 0.0, 1.0)
    if monochrome:
      x = 1.0 - x[..., 0] if info.invert else x[..., 0]
    values = (info.low + x * (info.high - info.low) - intercept) / slope
    stored[top:top + rows_per_block] = np.clip(np.rint(values), *_stored_range(source))
  return stored


# ----------------------------------------------------------------------------------------------
# Encoding.


# Rows per block when quantising and PNG-encoding: bounds the temporaries of huge outputs.
ENCODE_ROWS_PER_BLOCK = 256


def _quantise(image: Image, bit_depth: int) -> np.ndarray:
  """[0, 1] pixels (and alpha) -> (H, W, C) uint8/uint16 samples, alpha last.

  Works in blocks of rows, so a huge (possibly memory-mapped) output needs no full-size float
  temporary next to the integer result.
  """
  height, width, channels = image.pixels.shape
  alpha_channels = 0 if image.alpha is None else image.alpha.shape[2]
  samples = np.empty((height, width, channels + alpha_channels),
                     np.uint8 if bit_depth == 8 else np.uint16)
  scale = 2 ** bit_depth - 1
  for top in range(0, height, ENCODE_ROWS_PER_BLOCK):
    rows = slice(top, top + ENCODE_ROWS_PER_BLOCK)
    samples[rows, :, :channels] = _quantise_block(image.pixels[rows], scale)
    if alpha_channels:
      samples[rows, :, channels:] = _quantise_block(image.alpha[rows], scale)
  return samples


def _quantise_block(values: np.ndarray, scale: int) -> np.ndarray:
  block = np.clip(values, 0.0, 1.0)  # A new array; the in-place steps below reuse it.
  block *= scale
  np.rint(block, out=block)
  return block


def _scaled_dpi(image: Image) -> tuple[float, float] | None:
  """The source's dpi scaled with the pixels, so the physical size stays the same."""
  if image.dpi is None:
    return None
  height, width = image.pixels.shape[:2]
  return (image.dpi[0] * width / image.source_shape[1],
          image.dpi[1] * height / image.source_shape[0])


def _write_png(f: BinaryIO, samples: np.ndarray, dpi, icc_profile: bytes | None) -> None:
  """Writes a PNG of (H, W, C) uint8/uint16 samples (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

  Pillow can write 16 bits for gray only, and makes full-size copies; the format is simple
  enough to write here (PNG spec, ISO/IEC 15948): big-endian samples, each row prefixed by its
  filter type. Rows are filtered and compressed a block at a time and each
  block's compressed bytes go to `f` as their own IDAT chunk (the spec allows any number), so
  nothing full-size is held besides `samples`.
  """
  height, width, channels = samples.shape
  colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
  bit_depth = 8 * samples.itemsize
  big_endian = ">u2" if bit_depth == 16 else "u1"

  def chunk(kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind)
    f.write(data)
    f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

  f.write(b"\x89PNG\r\n\x1a\n")
  chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
  if icc_profile:
    chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))
  if dpi:
    per_metre = [round(d / 0.0254) for d in dpi]
    chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1))
  # Filter 2 ("Up": difference with the row above, mod 256; the first row's "above" is zeros)
  # compresses smooth images well.
  compressor = zlib.compressobj(6)
  above = np.zeros(width * channels * samples.itemsize, np.uint8)
  for top in range(0, height, ENCODE_ROWS_PER_BLOCK):
    rows = samples[top:top + ENCODE_ROWS_PER_BLOCK].astype(big_endian).reshape(
        -1, width * channels).view(np.uint8)
    filtered = rows.copy()
    filtered[0] -= above
    filtered[1:] -= rows[:-1]
    above = rows[-1].copy()
    scanlines = np.concatenate([np.full((len(rows), 1), 2, np.uint8), filtered], axis=1)
    compressed = compressor.compress(scanlines.tobytes())
    if compressed:
      chunk(b"IDAT", compressed)
  chunk(b"IDAT", compressor.flush())
  chunk(b"IEND", b"")


def _write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
  """Calls `write` on a temporary file next to `path`, then renames it over `path`.

  The rename is atomic within a folder, so `path` is either its old self or the complete new
  file; if `write` fails the temporary file is removed.
  """
  temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
  try:
    # "x": create, never reuse; permissions follow the umask like any new file's (a
    # tempfile.mkstemp file would stay private to its owner after the rename).
    with open(temporary, "xb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except BaseException:
    temporary.unlink(missing_ok=True)
    raise
