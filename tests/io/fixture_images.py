"""Writers of tiny image files in the official formats, independent of the code under test.

PNG and PNM are written byte by byte from their specifications (no Pillow, no TensorFlow), so
what the decoder reads back is checked against what these functions put on disk.
"""

from __future__ import annotations

import gzip
import pathlib
import struct
import zlib

import numpy as np

_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # gray, gray+alpha, RGB, RGBA


def png_bytes(image: np.ndarray) -> bytes:
  """A valid PNG of a uint8/uint16 `[H, W]` or `[H, W, C]` array (filter 0, one IDAT)."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  height, width, channels = image.shape
  depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}[image.dtype]
  samples = image.astype(">u2" if depth == 16 else np.uint8)
  rows = b"".join(b"\x00" + samples[r].tobytes() for r in range(height))

  def chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

  header = struct.pack(">IIBBBBB", width, height, depth, _PNG_COLOR_TYPE[channels], 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
          + chunk(b"IEND", b""))


def pnm_bytes(image: np.ndarray, maxval: int | None = None, comment: bytes = b"") -> bytes:
  """Binary PGM (P5, `[H, W]` or `[H, W, 1]`) or PPM (P6, `[H, W, 3]`); 2-byte big-endian if maxval > 255."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  height, width, channels = image.shape
  maxval = maxval or (65535 if image.dtype == np.uint16 else 255)
  magic = b"P5" if channels == 1 else b"P6"
  header = magic + b"\n" + comment + b"%d %d\n%d\n" % (width, height, maxval)
  return header + image.astype(">u2" if maxval > 255 else np.uint8).tobytes()


def write(path: pathlib.Path, data: bytes, gzipped: bool = False) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(gzip.compress(data) if gzipped else data)
  return path


def random_image(rng: np.random.Generator, shape, dtype=np.uint8) -> np.ndarray:
  return rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


def png_raw(scanlines: bytes, width: int, height: int, depth: int, colour_type: int) -> bytes:
  """A PNG of already filtered scanlines (each row: a filter byte, then its packed samples)."""

  def chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

  header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines))
          + chunk(b"IEND", b""))
