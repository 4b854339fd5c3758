"""Real medical images that ship inside PyPI packages, as a train / held-out source for offline runs.

The demo (`configs/demo.py`) and the fine-tuning study (`python -m jaxsr.study`) fine-tune on
these with no dataset download:

  train:    retina.jpg (scikit-image, 1411x1411 fundus photo), its top 60 %;
            RG3_UNCR.dcm (pydicom-data, 1760x1760 leg CR, MONOCHROME1), at its own size and
            Lanczos-resized to 1024 px (the chest protocol's GT size, as the paper's multi-scale
            Shenzhen copies);
            MR2_UNCR.dcm (1024x1024 MR slice) and 693_UNCR.dcm (512x512 CT slice)
  heldout:  retina.jpg, the centred square of its bottom 40 % (no pixel shared with training);
            microaneurysms.png (scikit-image, fundus detail); RG1_UNCR.dcm (pydicom-data, 1955x1841
            chest CR, the only chest radiograph the packages ship: never trained on)

Radiographs and slices are read as a viewer shows them (modality rescale, MONOCHROME1 inverted,
the image's own range) and kept at 16 bits: the same mapping `jaxsr.evaluate` applies to them.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from jaxsr import io as jio
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
  if first:
    return image[:cut]
  bottom = image[cut:]  # A square, so the protocols' square GT does not distort it.
  left = (bottom.shape[1] - bottom.shape[0]) // 2
  return bottom[:, left:left + bottom.shape[0]]


@functools.lru_cache(maxsize=None)  # RG3 is listed twice (two scales): decoded once.
def _radiograph(name: str) -> np.ndarray:
  from pydicom.data import get_testdata_file

  path = get_testdata_file(name, download=False)
  if path is None:
    raise jio.ImageNotFoundError(
        name, "not installed: pip install pydicom-data (or 'jaxsr[demo]')")
  image = jio.read_samples(path)
  image.flags.writeable = False  # Shared by the entries that use it.
  return image


def _resized(image: np.ndarray, side: int) -> np.ndarray:
  """Lanczos-resized so the longer side is `side`, at the same bit depth."""
  from PIL import Image

  height, width = image.shape[:2]
  size = (round(width * side / max(height, width)), round(height * side / max(height, width)))
  planes = [np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize(
      size, Image.Resampling.LANCZOS)) for c in range(image.shape[2])]
  limit = np.iinfo(image.dtype).max
  return np.clip(np.rint(np.stack(planes, axis=-1)), 0, limit).astype(image.dtype)


_IMAGES: dict[str, list[tuple[str, Callable[[], np.ndarray]]]] = {
    "train": [("retina.jpg[top]", lambda: _retina_part(True)),
              ("RG3_UNCR.dcm", lambda: _radiograph("RG3_UNCR.dcm")),
              ("RG3_UNCR.dcm[1024]", lambda: _resized(_radiograph("RG3_UNCR.dcm"), 1024)),
              ("MR2_UNCR.dcm", lambda: _radiograph("MR2_UNCR.dcm")),
              ("693_UNCR.dcm", lambda: _radiograph("693_UNCR.dcm"))],
    "heldout": [("retina.jpg[bottom]", lambda: _retina_part(False)),
                ("microaneurysms.png", lambda: _skimage_file("microaneurysms.png")),
                ("RG1_UNCR.dcm", lambda: _radiograph("RG1_UNCR.dcm"))],
}


# The protocol that scores each held-out image: microaneurysms.png is a gray fundus detail, so
# its colour cannot tell.
_PROTOCOLS = {"retina.jpg[bottom]": "retina-x2", "microaneurysms.png": "retina-x2",
              "RG1_UNCR.dcm": "chest-x4"}


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

  def protocol(self, index: int) -> str | None:
    return _PROTOCOLS.get(self.name(index))

  def read(self, index: int) -> np.ndarray:
    # A handful of images, decoded once: the DICOMs take a while to read.
    with self._lock:
      if index not in self._cache:
        self._cache[index] = _IMAGES[self._split][index][1]()
      return self._cache[index]
