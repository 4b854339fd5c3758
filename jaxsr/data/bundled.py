"""Real medical images that ship inside PyPI packages, as a train / held-out source for offline runs.

The demo (`configs/demo.py`) fine-tunes on these with no dataset download:

  train:    retina.jpg (scikit-image, 1411x1411 fundus photo), its top 60 %;
            RG1_UNCR.dcm (pydicom-data, 1955x1841 chest CR, 15-bit MONOCHROME1)
  heldout:  retina.jpg, its bottom 40 % (no pixel shared with training);
            microaneurysms.png (scikit-image, fundus detail); RG3_UNCR.dcm (pydicom-data, leg CR)

Radiographs are read as a viewer shows them (modality rescale, MONOCHROME1 inverted) and kept at
16 bits.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from jaxsr.data import decode
from jaxsr.data import source as source_lib

RETINA_TRAIN_FRACTION = 0.6
SPLITS = ("train", "heldout")


def _skimage_file(name: str) -> np.ndarray:
  import importlib.resources

  from PIL import Image

  with Image.open(importlib.resources.files("skimage") / "data" / name) as image:
    return np.asarray(image.convert("RGB"))


def _retina_part(first: bool) -> np.ndarray:
  image = _skimage_file("retina.jpg")
  cut = int(image.shape[0] * RETINA_TRAIN_FRACTION)
  return image[:cut] if first else image[cut:]


def _radiograph(name: str) -> np.ndarray:
  from pydicom.data import get_testdata_file

  path = get_testdata_file(name, download=False)
  if path is None:
    raise decode.CorruptImageError(
        f"{name} is not installed: pip install pydicom-data (or 'jaxsr[demo]')")
  return decode.read_dicom(path)


_IMAGES: dict[str, list[tuple[str, Callable[[], np.ndarray]]]] = {
    "train": [("retina.jpg[top]", lambda: _retina_part(True)),
              ("RG1_UNCR.dcm", lambda: _radiograph("RG1_UNCR.dcm"))],
    "heldout": [("retina.jpg[bottom]", lambda: _retina_part(False)),
                ("microaneurysms.png", lambda: _skimage_file("microaneurysms.png")),
                ("RG3_UNCR.dcm", lambda: _radiograph("RG3_UNCR.dcm"))],
}


class BundledImages(source_lib.ImageSource):
  """`bundled:train` / `bundled:heldout`."""

  def __init__(self, split: str):
    super().__init__()
    if split not in SPLITS:
      raise ValueError(f"bundled images come in splits {SPLITS}, not {split!r}")
    self._split = split
    self._cache: dict[int, np.ndarray] = {}

  @property
  def location(self) -> str:
    return f"bundled:{self._split} (scikit-image and pydicom-data files)"

  def __len__(self) -> int:
    return len(_IMAGES[self._split])

  def name(self, index: int) -> str:
    return _IMAGES[self._split][index][0]

  def read(self, index: int) -> np.ndarray:
    # A handful of images, decoded once: the DICOMs take a while to read.
    with self._lock:
      if index not in self._cache:
        self._cache[index] = _IMAGES[self._split][index][1]()
      return self._cache[index]
