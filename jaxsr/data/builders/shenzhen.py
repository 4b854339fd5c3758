"""Shenzhen chest X-rays (training set of the paper's chest model), optionally multi-scale.

662 gray PNG chest radiographs of roughly 3K px, `CHNCXR_<id>_<label>.png` (label 0 normal,
1 tuberculosis), from the NLM tuberculosis collection.

The `multiscale` config adds what the paper (following Real-ESRGAN's
`scripts/generate_multiscale_DF2K.py`) trains on: Lanczos copies at 0.75, 0.5 and 1/3 of the size
(`int(w * s) x int(h * s)`, truncated as the script does) and one whose shortest edge is 400,
named `<stem>T0.png` .. `<stem>T3.png`, plus the original: 662 -> 3,310 images. The copies of
8-bit files are the script's, pixel for pixel; 16-bit files are resampled at 16 bits.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Iterator

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from jaxsr.data.builders import base

_NAME = re.compile(r"CHNCXR_\d+_[01]\.png", re.IGNORECASE)


@dataclasses.dataclass(eq=False)
class ShenzhenConfig(tfds.core.BuilderConfig):
  """`scales`: Lanczos factors of the extra copies; `shortest_edge`: one more copy (0: none)."""

  scales: tuple[float, ...] = ()
  shortest_edge: int = 0


def multiscale_sizes(
    width: int, height: int, scales: tuple[float, ...], shortest_edge: int
) -> list[tuple[int, int]]:
  """(width, height) of each copy, in generate_multiscale_DF2K.py's order and rounding."""
  sizes = [(int(width * s), int(height * s)) for s in scales]
  if shortest_edge:
    if width < height:
      sizes.append((shortest_edge, int(shortest_edge * height / width)))
    else:
      sizes.append((int(shortest_edge * width / height), shortest_edge))
  return sizes


def lanczos_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Pillow's Lanczos resize of a gray `[H, W, 1]` uint8/uint16 image to `size` (w, h).

  8-bit images take Pillow's 8-bit path, exactly as generate_multiscale_DF2K.py (whose two
  separable passes round and clip to 8 bits in between). 16-bit images, which the script never
  saw, take Pillow's 32-bit integer path and are clipped to 16 bits at the end; Pillow's own
  I;16 resampling is not 16-bit accurate.
  """
  if image.dtype == np.uint8:
    plane = Image.fromarray(image[..., 0], mode="L")
    return np.asarray(plane.resize(size, resample=Image.Resampling.LANCZOS))[..., None]
  plane = Image.fromarray(image[..., 0].astype(np.int32), mode="I")
  resized = np.asarray(plane.resize(size, resample=Image.Resampling.LANCZOS))
  return np.clip(resized, 0, 65535).astype(np.uint16)[..., None]


class Shenzhen(base.ManualImageBuilder):
  """Shenzhen chest X-rays, split `train`; configs `original` (662) and `multiscale` (3,310)."""

  SPLIT = "train"
  CHANNELS = 1
  DTYPE = np.uint16
  EXPECTED_COUNT = 662
  BUILDER_CONFIGS = [
      ShenzhenConfig(name="original", description="The 662 radiographs as distributed."),
      ShenzhenConfig(
          name="multiscale", scales=(0.75, 0.5, 1 / 3), shortest_edge=400,
          description="Each radiograph plus Lanczos copies at 0.75, 0.5, 1/3 and shortest "
                      "edge 400, as the paper prepares its training set (x5)."),
  ]
  DESCRIPTION = "Shenzhen Hospital chest X-ray set: 662 gray PNG radiographs of ~3K px."
  HOMEPAGE = "https://lhncbc.nlm.nih.gov/LHC-downloads/downloads.html#tuberculosis-image-data-sets"
  CITATION = """@article{jaeger2014two,
  title={Two public chest X-ray datasets for computer-aided screening of pulmonary diseases},
  author={Jaeger, S. and Candemir, S. and Antani, S. and W{\\'a}ng, Y.-X. J. and Lu, P.-X. and
          Thoma, G.},
  journal={Quantitative Imaging in Medicine and Surgery}, volume={4}, number={6}, year={2014}}"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Download the Shenzhen chest X-ray set (`ChinaSet_AllFiles.zip`) from the NLM tuberculosis
  image data sets page,
  https://lhncbc.nlm.nih.gov/LHC-downloads/downloads.html#tuberculosis-image-data-sets ,
  and unpack it into `manual_dir`. The radiographs `CHNCXR_0001_0.png` .. are found in any
  sub-folder (the zip puts them in `ChinaSet_AllFiles/CXR_png/`); other files are ignored.
  """

  def find_sources(self, manual_dir: pathlib.Path) -> list[pathlib.Path]:
    paths = base.find_files(
        manual_dir, "CHNCXR_*", self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        keep=lambda p: _NAME.fullmatch(p.name) is not None)
    base.warn_if_unexpected_count("Shenzhen", paths, self.EXPECTED_COUNT)
    return paths

  def examples_from(
      self, file_name: str, image: np.ndarray, bit_depth: int
  ) -> Iterator[tuple[str, np.ndarray]]:
    yield file_name, image
    # Resample in the file's own depth (8-bit sources were stored x257, which divides back exactly).
    native = (image // 257).astype(np.uint8) if bit_depth == 8 else image
    stem = file_name[: -len(".png")]
    height, width = image.shape[:2]
    sizes = multiscale_sizes(width, height, self.builder_config.scales,
                             self.builder_config.shortest_edge)
    for i, size in enumerate(sizes):
      copy = lanczos_resize(native, size)
      yield f"{stem}T{i}.png", base.fit_layout(copy, channels=1, dtype=np.uint16, name=file_name)
