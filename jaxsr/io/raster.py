"""The one raster decoder: PNG, TIFF, JPEG, BMP and PNM bytes -> uint8/uint16 samples + metadata.

Every command (training's folder and TFDS sources, the TFDS builders, evaluation, upscaling, the
degrade preview) decodes raster images here, so one file gives the same samples everywhere.

The result is (H, W, C) with the file's own channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA),
uint8 for 8-bit (and lower) sources, uint16 for 16-bit ones; samples are as stored, except that
palettes are expanded to RGB/RGBA and a PNG colour key (tRNS) becomes an alpha channel.

* PNG: Pillow, except 16-bit colour, which Pillow would silently cut to 8 bits: TensorFlow's
  libpng decodes those (imported only then). 1/2/4-bit gray is scaled to 8 bits (0/255,
  0/85/170/255...), as libpng and Pillow both do. Animated PNGs are refused.
* TIFF: `tifffile` (one page; gray, gray+alpha, RGB, RGBA, palette; 1, 8 and 16 bits).
  MINISWHITE is inverted so that white = high at every depth. Bilevel pages become 0/255, palette
  pages 8-bit RGB (colour map / 256, as Pillow expands them). Compressions tifffile cannot decode
  without the optional `imagecodecs` package (LZW, JPEG...) are decoded by Pillow where it keeps
  every bit (8-bit pages, 16-bit gray; not MINISWHITE, which Pillow inverts inconsistently).
  Multi-page files, float and 32-bit samples, associated alpha, CMYK/YCbCr/CIELab are refused.
* JPEG and BMP: Pillow (8-bit gray or RGB, BMP also RGBA and palette). CMYK JPEGs are refused:
  converting them without their colour profile would change their colours.
* PNM: binary PGM/PPM (P5/P6) by the parser here, at 8 or 16 bits (maxval > 255); maxvals other
  than 255/65535 (e.g. 1023) are stretched to the container's full range. Plain-text PNM and PBM
  (P1-P4) go through Pillow.
* 32-bit integer ("I") Pillow images are accepted as 16-bit when every value is in 0..65535.

Metadata: resolution (dpi) and the ICC profile, where the file has them. EXIF orientation is not
applied. Errors are `UnreadableImageError` naming the file (`UnsupportedImageError` for kinds
refused on purpose).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io

import numpy as np
import PIL.Image

from jaxsr.io.image import Image
from jaxsr.io.image import UnreadableImageError
from jaxsr.io.image import UnsupportedImageError

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "pnm": "PPM"}


@dataclasses.dataclass(frozen=True)
class Raster:
  """Decoded samples and metadata of one raster image.

  Attributes:
    samples: (H, W, C) uint8 or uint16, C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
    source_format: "png", "tiff", "jpeg", "bmp" or "pnm".
    dpi: (x, y) resolution, or None.
    icc_profile: the embedded ICC profile, or None.
  """
  samples: np.ndarray
  source_format: str
  dpi: tuple[float, float] | None = None
  icc_profile: bytes | None = None

  def to_image(self) -> Image:
    return Image.from_samples(self.samples, source_format=self.source_format, dpi=self.dpi,
                              icc_profile=self.icc_profile)


def decode(data: bytes, kind: str, name) -> Raster:
  """Decodes the bytes of a `kind` file (see `formats.sniff`); `name` is used in errors."""
  with decoding(name, kind.upper()):
    if kind == "tiff":
      raster = _decode_tiff(data, name)
    elif kind == "pnm" and data[:2] in (b"P5", b"P6"):
      raster = Raster(_decode_binary_pnm(data, name), "pnm")
    else:
      raster = _decode_pil(data, kind, name)
  if raster.samples.size == 0:
    raise UnreadableImageError(name, f"the image has no pixels {raster.samples.shape}")
  return raster


@contextlib.contextmanager
def decoding(name, what: str):
  """Turns whatever a decoding library raises into an UnreadableImageError naming the file."""
  try:
    yield
  except UnreadableImageError:
    raise
  except Exception as e:  # Decoders raise anything from OSError to KeyError on bad input.
    # One line (pydicom lists the decoders it would need on the lines after the first).
    cause = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    cause = cause if len(cause) <= 500 else cause[:497] + "..."
    raise UnreadableImageError(name, f"cannot decode {what}: {cause or type(e).__name__}") from e


# ----------------------------------------------------------------------------------------------
# Pillow: PNG, JPEG, BMP, plain-text PNM.


def _decode_pil(data: bytes, kind: str, name) -> Raster:
  with PIL.Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]]) as pil_image:
    if getattr(pil_image, "n_frames", 1) > 1:
      raise UnsupportedImageError(name, f"animated {kind.upper()} "
                                  f"({pil_image.n_frames} frames) is not supported")
    dpi = _pil_dpi(pil_image)
    icc_profile = pil_image.info.get("icc_profile") or None
    if kind == "png" and _png_is_16bit_colour(data):
      samples = _decode_png16(data)
    else:
      pil_image.load()
      samples = _pil_samples(pil_image, name)
  return Raster(samples, kind, dpi, icc_profile)


def _pil_samples(pil_image: PIL.Image.Image, name) -> np.ndarray:
  """(H, W, C) uint8/uint16 samples of a decoded Pillow image."""
  mode = pil_image.mode
  if mode in ("P", "PA"):  # Palette: expand to the colours it stands for.
    has_alpha = mode == "PA" or "transparency" in pil_image.info
    pil_image = pil_image.convert("RGBA" if has_alpha else "RGB")
  elif mode in ("L", "RGB") and "transparency" in pil_image.info:  # A tRNS colour key.
    pil_image = pil_image.convert(mode + "A")
  elif mode == "1":
    pil_image = pil_image.convert("L")
  mode = pil_image.mode
  if mode in ("L", "LA", "RGB", "RGBA"):
    samples = np.asarray(pil_image)
    return samples.reshape(samples.shape[:2] + (-1,))
  if mode.startswith("I;16") or mode == "I":  # 16-bit gray (older Pillows open it as "I").
    samples = np.asarray(pil_image)
    if samples.min() < 0 or samples.max() > 65535:
      raise UnsupportedImageError(name, f"{mode} samples outside 0..65535 are not supported")
    return samples.astype(np.uint16)[..., None]
  raise UnsupportedImageError(name, f"pixel mode {mode} is not supported (8/16-bit gray, RGB, "
                              "RGBA and palette images are)")


def _pil_dpi(pil_image: PIL.Image.Image) -> tuple[float, float] | None:
  dpi = pil_image.info.get("dpi")
  if not dpi or not all(float(d) > 0 for d in dpi):
    return None
  return float(dpi[0]), float(dpi[1])


def _png_is_16bit_colour(data: bytes) -> bool:
  # IHDR is the first chunk: 8-byte signature, length, "IHDR", width, height, depth, colour type.
  if len(data) < 26 or data[12:16] != b"IHDR":
    raise ValueError("truncated PNG header")
  bit_depth, colour_type = data[24], data[25]
  return bit_depth == 16 and colour_type in (2, 4, 6)  # RGB, gray+alpha, RGBA.


def _decode_png16(data: bytes) -> np.ndarray:
  # TensorFlow is a dependency already (tf.data) and decodes all 16 bits; imported here so that
  # reading any other file never pays its start-up time.
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()


# ----------------------------------------------------------------------------------------------
# Binary PGM / PPM.


def _netpbm_header(data: bytes, name) -> tuple[list[int], int]:
  """Parses `P5|P6 <ws> width <ws> height <ws> maxval <one ws>`, skipping `#` comments."""
  fields, pos = [], 2
  while len(fields) < 3:
    if pos >= len(data):
      raise UnreadableImageError(name, "truncated PNM header")
    char = data[pos:pos + 1]
    if char.isspace():
      pos += 1
    elif char == b"#":
      end = data.find(b"\n", pos)
      pos = len(data) if end < 0 else end + 1
    else:
      start = pos
      while pos < len(data) and data[pos:pos + 1].isdigit():
        pos += 1
      if start == pos:
        raise UnreadableImageError(name, f"unexpected byte {char!r} in PNM header")
      fields.append(int(data[start:pos]))
  # Exactly one whitespace byte separates maxval from the raster.
  return fields, pos + 1


def _decode_binary_pnm(data: bytes, name) -> np.ndarray:
  (width, height, maxval), offset = _netpbm_header(data, name)
  if not 0 < maxval < 65536:
    raise UnreadableImageError(name, f"PNM maxval {maxval} out of range")
  channels = 1 if data[:2] == b"P5" else 3
  wide = maxval > 255
  count = width * height * channels
  if len(data) - offset < count * (2 if wide else 1):
    raise UnreadableImageError(name, f"PNM raster truncated (expected {width}x{height}x"
                               f"{channels})")
  raster = np.frombuffer(data, dtype=">u2" if wide else np.uint8, count=count, offset=offset)
  image = raster.reshape(height, width, channels)
  full_scale = 65535 if wide else 255
  if maxval != full_scale:
    # Rare depths (e.g. 10-bit, maxval 1023) are stretched to the container's full range so
    # that the usual /255 or /65535 gives values in [0, 1].
    image = np.round(image.astype(np.float64) * (full_scale / maxval))
  return image.astype(np.uint16 if wide else np.uint8)


# ----------------------------------------------------------------------------------------------
# TIFF.


def import_tifffile():
  try:
    import tifffile  # pylint: disable=import-outside-toplevel  (0.2 s; TIFF files only)
  except ImportError as e:
    raise ImportError("TIFF files need the tifffile package: pip install tifffile") from e
  return tifffile


def _decode_tiff(data: bytes, name) -> Raster:
  tifffile = import_tifffile()
  with tifffile.TiffFile(io.BytesIO(data)) as tiff:
    if len(tiff.pages) > 1:
      raise UnsupportedImageError(name, f"multi-page TIFF ({len(tiff.pages)} pages) is not "
                                  "supported; save one page per file")
    page = tiff.pages[0]
    photometric = page.photometric.name
    if photometric not in ("MINISBLACK", "MINISWHITE", "RGB", "PALETTE"):
      raise UnsupportedImageError(name, f"TIFF photometric {photometric} is not supported")
    if page.dtype not in (np.uint8, np.uint16, np.bool_):
      raise UnsupportedImageError(name, f"TIFF samples of type {page.dtype} are not supported "
                                  "(1-, 8- and 16-bit unsigned integers are)")
    extras = [e.name for e in page.extrasamples]
    if len(extras) > 1 or extras == ["ASSOCALPHA"]:
      raise UnsupportedImageError(name, f"TIFF extra samples {extras} are not supported "
                                  "(one unassociated alpha channel is)")
    try:
      samples = _tiff_samples(page)
    except ValueError as e:
      if "imagecodecs" not in str(e):
        raise
      samples = _tiff_samples_by_pillow(data, page, name, e)
    if photometric == "PALETTE":
      # Pillow's expansion: 16-bit colour map entries / 256 -> 8-bit RGB.
      colours = (np.asarray(page.colormap).T // 256).astype(np.uint8)
      samples = colours[samples[..., 0]]
    elif samples.dtype == np.bool_:  # Bilevel: 0/255, as Pillow's "1" -> "L".
      samples = np.where(samples, np.uint8(255), np.uint8(0))
    per_inch = {"INCH": 1.0, "CENTIMETER": 2.54}.get(tifffile.RESUNIT(page.resolutionunit).name)
    dpi = tuple(float(r) * per_inch for r in page.resolution) if per_inch else None
    icc = page.tags.get("InterColorProfile")
  if photometric == "MINISWHITE":  # Stored dark-is-high; the network sees white = high.
    samples = samples.copy()
    samples[..., 0] = np.iinfo(samples.dtype).max - samples[..., 0]
  return Raster(samples, "tiff", dpi if dpi and all(dpi) else None,
                bytes(icc.value) if icc else None)


def _tiff_samples(page) -> np.ndarray:
  """The page's samples as stored, ordered (Y, X, S) whatever the planar configuration."""
  samples = page.asarray()
  axes = page.axes if "S" in page.axes else page.axes + "S"
  samples = samples.reshape(samples.shape + (1,) * ("S" not in page.axes))
  return np.moveaxis(samples, [axes.index("Y"), axes.index("X"), axes.index("S")], [0, 1, 2])


def _tiff_samples_by_pillow(data: bytes, page, name, cause: Exception) -> np.ndarray:
  """The samples of a page whose compression tifffile cannot decode here, through Pillow."""
  channels = page.samplesperpixel
  full = page.dtype in (np.uint8, np.bool_) or (page.dtype == np.uint16 and channels == 1)
  if not full or page.photometric.name not in ("MINISBLACK", "RGB", "PALETTE"):
    raise UnsupportedImageError(name, f"{cause}; without it, this TIFF ({page.dtype}, "
                                f"{channels} samples, {page.photometric.name}) cannot be read "
                                "without losing bits: pip install imagecodecs")
  with PIL.Image.open(io.BytesIO(data), formats=["TIFF"]) as pil_image:
    pil_image.load()
    mode = pil_image.mode
    samples = np.asarray(pil_image)  # A palette image's indices: expanded by the caller.
  expected = ("1" if page.dtype == np.bool_ else
              "P" if page.photometric.name == "PALETTE" else
              ("L", "LA", "RGB", "RGBA")[channels - 1] if page.dtype == np.uint8 else "I;16")
  if mode != expected and not (expected == "I;16" and mode.startswith(expected)):
    raise UnsupportedImageError(name, f"{cause}; Pillow decodes this TIFF as {mode}, not as "
                                "stored: pip install imagecodecs")
  samples = samples.reshape(samples.shape[:2] + (-1,))
  return samples.astype(page.dtype)

