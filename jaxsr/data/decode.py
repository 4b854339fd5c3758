"""Reading image files into NumPy arrays without losing bit depth.

Everything that reads pixels from disk in `jaxsr.data` (the TFDS builders, the image folder, the
TFDS reader used for training) goes through `decode_image`, so 8- and 16-bit, gray and colour,
PNG/JPEG/TIFF/PPM and gzipped files behave the same everywhere.

The result is always `[H, W, C]` with the file's own channel count (1 gray, 2 gray+alpha, 3 RGB,
4 RGBA) and dtype `uint8` or `uint16`. Pillow drops 16-bit colour to 8 bits, so 16-bit colour PNG
goes through TensorFlow's libpng decoder and binary PPM/PGM through a small parser here.
"""

from __future__ import annotations

import gzip
import io
import os

import numpy as np
from PIL import Image

_GZIP_MAGIC = b"\x1f\x8b"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_NETPBM_BINARY = (b"P5", b"P6")
_TIFF_BITS_PER_SAMPLE = 258
# Pillow modes that carry 16 bits per pixel (gray only; Pillow has no 16-bit colour mode).
_PIL_UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class CorruptImageError(ValueError):
  """A file could not be decoded as an image; the message names the file."""


def read_image(path: str | os.PathLike) -> np.ndarray:
  """Reads an image file (optionally gzipped) as `[H, W, C]` uint8 or uint16."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise CorruptImageError(f"cannot read image file {os.fspath(path)}: {e}") from e
  return decode_image(data, name=os.fspath(path))


def read_dicom(path: str | os.PathLike) -> np.ndarray:
  """A single-frame DICOM image as `[H, W, C]` uint16, as a viewer shows it.

  Read by the inference reader (`jaxsr.infer.imageio`, "data" range): modality rescale, the
  image's min..max to 0..65535, MONOCHROME1 inverted (bright = dense, as in MONOCHROME2).
  """
  from jaxsr.infer import imageio  # pylint: disable=import-outside-toplevel  (pydicom, on demand)

  try:
    pixels = imageio.read_image(path, dicom_range="data").pixels
  except (imageio.UnreadableImageError, OSError) as e:
    raise CorruptImageError(f"cannot decode DICOM {os.fspath(path)}: "
                            f"{getattr(e, 'reason', e)}") from e
  return np.round(pixels * 65535.0).astype(np.uint16)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
  """Decodes encoded image bytes as `[H, W, C]` uint8 or uint16 with the file's channels.

  Args:
    data: the file's bytes; gzip-compressed data is recognised by its magic number.
    name: used in error messages only.

  Returns:
    An array of rank 3. 16-bit sources stay uint16 (values up to 65535), everything else uint8.

  Raises:
    CorruptImageError: naming `name`, if the bytes are not a readable image.
  """
  try:
    if data[:2] == _GZIP_MAGIC:
      data = gzip.decompress(data)
    if data[:8] == _PNG_MAGIC:
      image = _decode_png(data)
    elif data[:2] in _NETPBM_BINARY:
      image = _decode_binary_netpbm(data)
    else:
      image = _decode_with_pillow(data)
  except CorruptImageError as e:
    raise CorruptImageError(f"cannot decode image {name}: {e}") from e
  except Exception as e:  # pylint: disable=broad-except
    # Decoders raise anything from OSError to zlib.error or TF errors; callers need one type.
    raise CorruptImageError(f"cannot decode image {name}: {type(e).__name__}: {e}") from e
  if image.ndim == 2:
    image = image[..., None]
  if image.size == 0:
    raise CorruptImageError(f"cannot decode image {name}: it has no pixels {image.shape}")
  return image


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


def _decode_png(data: bytes) -> np.ndarray:
  # IHDR is always the first chunk: 8-byte signature, 4 length, 4 type, 4 width, 4 height, depth.
  if len(data) < 33 or data[12:16] != b"IHDR":
    raise CorruptImageError("truncated PNG header")
  depth = data[24]
  # Imported lazily: reading 8-bit images should not pay for TensorFlow's import.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  dtype = tf.uint16 if depth == 16 else tf.uint8
  return tf.io.decode_png(data, channels=0, dtype=dtype).numpy()


def _netpbm_header(data: bytes) -> tuple[list[int], int]:
  """Parses `P5|P6 <ws> width <ws> height <ws> maxval <one ws>`, skipping `#` comments."""
  fields, pos = [], 2
  while len(fields) < 3:
    if pos >= len(data):
      raise CorruptImageError("truncated PNM header")
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
        raise CorruptImageError(f"unexpected byte {char!r} in PNM header")
      fields.append(int(data[start:pos]))
  # Exactly one whitespace byte separates maxval from the raster.
  return fields, pos + 1


def _decode_binary_netpbm(data: bytes) -> np.ndarray:
  (width, height, maxval), offset = _netpbm_header(data)
  if not 0 < maxval < 65536:
    raise CorruptImageError(f"PNM maxval {maxval} out of range")
  channels = 1 if data[:2] == b"P5" else 3
  wide = maxval > 255
  count = width * height * channels
  if len(data) - offset < count * (2 if wide else 1):
    raise CorruptImageError(f"PNM raster truncated (expected {width}x{height}x{channels})")
  raster = np.frombuffer(data, dtype=">u2" if wide else np.uint8, count=count, offset=offset)
  image = raster.reshape(height, width, channels)
  full_scale = 65535 if wide else 255
  if maxval != full_scale:
    # Rare depths (e.g. 10-bit, maxval 1023) are stretched to the container's full range so
    # that the usual /255 or /65535 gives values in [0, 1].
    image = np.round(image.astype(np.float64) * (full_scale / maxval))
  return image.astype(np.uint16 if wide else np.uint8)


def _decode_with_pillow(data: bytes) -> np.ndarray:
  with Image.open(io.BytesIO(data)) as im:
    if im.format == "TIFF" and _is_wide_colour_tiff(im):
      return _decode_wide_colour_tiff(data)
    im.load()
    mode = im.mode
    if mode in _PIL_UINT16_MODES:
      return np.asarray(im).astype(np.uint16)
    if mode == "I":
      values = np.asarray(im)
      if values.min() < 0 or values.max() > 65535:
        raise CorruptImageError("32-bit integer pixels outside [0, 65535] are not supported")
      return values.astype(np.uint16)
    if mode == "F":
      raise CorruptImageError("floating-point images are not supported; save them as 16-bit")
    if mode in ("L", "LA", "RGB", "RGBA"):
      return np.asarray(im)
    if mode == "1":
      return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):
      has_alpha = mode == "PA" or "transparency" in im.info
      return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    # CMYK / YCbCr / LAB JPEGs and TIFFs.
    return np.asarray(im.convert("RGB"))


def _is_wide_colour_tiff(im: Image.Image) -> bool:
  bits = im.tag_v2.get(_TIFF_BITS_PER_SAMPLE, (8,))
  bits = bits if isinstance(bits, tuple) else (bits,)
  return len(bits) > 1 and max(bits) > 8


def _decode_wide_colour_tiff(data: bytes) -> np.ndarray:
  try:
    import tifffile  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise CorruptImageError(
        "16-bit colour TIFF needs the `tifffile` package (Pillow would cut it to 8 bits)"
    ) from None
  image = tifffile.imread(io.BytesIO(data))
  if image.dtype != np.uint16:
    raise CorruptImageError(f"unsupported TIFF sample type {image.dtype}")
  return image

