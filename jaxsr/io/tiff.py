"""The TIFF writer: one zlib-compressed page per image, at its bit depth, gray or RGB (+ alpha)."""

from __future__ import annotations

from typing import BinaryIO, Iterable

from jaxsr.io.image import Image
from jaxsr.io.image import quantise
from jaxsr.io.image import scaled_dpi
from jaxsr.io.raster import import_tifffile


def write_tiff(f: BinaryIO, images: Iterable[Image]) -> int:
  """Writes one TIFF page per image, each at its bit depth; returns the number of pages.

  Gray is written MINISBLACK, colour RGB, alpha as one unassociated extra sample; the ICC
  profile is kept and the resolution scaled with the image (see `image.scaled_dpi`).
  """
  tifffile = import_tifffile()
  written = 0
  with tifffile.TiffWriter(f) as tiff:
    for image in images:
      samples = quantise(image, image.bit_depth)
      dpi = scaled_dpi(image)
      # Gray is written as (H, W): a trailing axis of 1 would read as a third dimension.
      tiff.write(samples[..., 0] if samples.shape[2] == 1 else samples,
                 photometric="minisblack" if image.pixels.shape[2] == 1 else "rgb",
                 compression="zlib", iccprofile=image.icc_profile,
                 extrasamples=["unassalpha"] if image.alpha is not None else None,
                 **({"resolution": dpi, "resolutionunit": "INCH"} if dpi else {}))
      written += 1
  return written
