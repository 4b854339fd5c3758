"""The streaming PNG writer: 8- and 16-bit gray, gray+alpha, RGB and RGBA, a block of rows at a time.

Pillow can write 16 bits for gray only, and makes full-size copies; the format is simple enough
to write here (PNG spec, ISO/IEC 15948).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

from jaxsr.io import image as image_lib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_png(f: BinaryIO, samples: np.ndarray, dpi=None, icc_profile: bytes | None = None) -> None:
  """Writes a PNG of (H, W, C) uint8/uint16 samples (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

  Big-endian samples, each row prefixed by its filter type. Rows are filtered and compressed
  `image.ROWS_PER_BLOCK` at a time and each block's compressed bytes go to `f` as their own IDAT
  chunk (the spec allows any number), so nothing full-size is held besides `samples`. `dpi`
  (x, y) becomes a pHYs chunk, `icc_profile` an iCCP chunk.
  """
  height, width, channels = samples.shape
  colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
  bit_depth = 8 * samples.itemsize
  big_endian = ">u2" if bit_depth == 16 else "u1"

  def chunk(kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind)
    f.write(data)
    f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

  f.write(SIGNATURE)
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
  rows_per_block = image_lib.ROWS_PER_BLOCK
  for top in range(0, height, rows_per_block):
    rows = samples[top:top + rows_per_block].astype(big_endian).reshape(
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
