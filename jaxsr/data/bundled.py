"""Real medical images that ship inside PyPI packages: `skimage:` / `pydicom-data:` files, and the
train / held-out split of them that offline runs use (`bundled:train`, `bundled:heldout`).

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

Files are found in the installed packages (scikit-image's `data` folder; pydicom-data through
`pydicom.data.get_testdata_file(name, download=False)`), never downloaded, and read by `jaxsr.io`
like any other file: radiographs and slices as a viewer shows them (modality rescale,
MONOCHROME1 inverted, the image's own range), so a whole file here gives the pixels it gives as
`pydicom-data:NAME`, as a path, or inside a folder.
"""

from __future__ import annotations

import functools
import importlib.resources
import pathlib
from typing import Callable, Optional

import numpy as np
from PIL import Image

from jaxsr import io as jio
from jaxsr.data import decode
from jaxsr.data import source as source_lib

RETINA_TRAIN_FRACTION = 0.6
SPLITS = ("train", "heldout")
# What `skimage` and `pydicom-data` name without a list: the fundus photographs and the
# computed radiographs.
SKIMAGE_FUNDUS = ("retina.jpg", "microaneurysms.png")
PYDICOM_RADIOGRAPHS = ("RG1_UNCR.dcm", "RG3_UNCR.dcm")


def skimage_path(name: str) -> pathlib.Path:
  """A file of scikit-image's `data` folder, read from the installed wheel (never downloaded).

  Raises:
    ImportError: scikit-image is not installed.
    FileNotFoundError: this install has no such file.
  """
  try:
    folder = pathlib.Path(str(importlib.resources.files("skimage") / "data"))
  except ModuleNotFoundError as e:
    raise ImportError("The bundled fundus images need scikit-image "
                      "(pip install scikit-image)") from e
  path = folder / name
  if not path.is_file():
    raise FileNotFoundError(f"skimage:{name}: no such file in this scikit-image install ({folder})")
  return path


def pydicom_data_path(name: str) -> pathlib.Path:
  """A file of pydicom-data (pip install pydicom-data), never downloaded.

  Raises:
    FileNotFoundError: it is not installed (jio.ImageNotFoundError, a FileNotFoundError).
  """
  from pydicom.data import get_testdata_file  # Only when a pydicom-data file is named.

  path = get_testdata_file(name, download=False)
  if path is None:
    raise jio.ImageNotFoundError(
        f"pydicom-data:{name}", "not installed; it ships in the pydicom-data package (pip install "
        "pydicom-data, or 'jaxsr[demo]')")
  return pathlib.Path(path)


@functools.lru_cache(maxsize=None)  # RG3 is listed twice (two scales): decoded once.
def _samples(path: pathlib.Path) -> np.ndarray:
  image = jio.read_samples(path)
  image.flags.writeable = False  # Shared by the entries that use it.
  return image


def _retina_part(image: np.ndarray, first: bool) -> np.ndarray:
  cut = int(image.shape[0] * RETINA_TRAIN_FRACTION)
  if first:
    return image[:cut]
  bottom = image[cut:]  # A square, so the protocols' square GT does not distort it.
  left = (bottom.shape[1] - bottom.shape[0]) // 2
  return bottom[:, left:left + bottom.shape[0]]


def _resized(image: np.ndarray, side: int) -> np.ndarray:
  """Lanczos-resized so the longer side is `side`, at the same bit depth."""
  height, width = image.shape[:2]
  size = (round(width * side / max(height, width)), round(height * side / max(height, width)))
  planes = [np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize(
      size, Image.Resampling.LANCZOS)) for c in range(image.shape[2])]
  limit = np.iinfo(image.dtype).max
  return np.clip(np.rint(np.stack(planes, axis=-1)), 0, limit).astype(image.dtype)


# name -> (the file's package, the file, what is cut or resized from it; None: the whole file).
_Part = Optional[Callable[[np.ndarray], np.ndarray]]
_IMAGES: dict[str, list[tuple[str, Callable[[str], pathlib.Path], str, _Part]]] = {
    "train": [
        ("retina.jpg[top]", skimage_path, "retina.jpg",
         functools.partial(_retina_part, first=True)),
        ("RG3_UNCR.dcm", pydicom_data_path, "RG3_UNCR.dcm", None),
        ("RG3_UNCR.dcm[1024]", pydicom_data_path, "RG3_UNCR.dcm",
         functools.partial(_resized, side=1024)),
        ("MR2_UNCR.dcm", pydicom_data_path, "MR2_UNCR.dcm", None),
        ("693_UNCR.dcm", pydicom_data_path, "693_UNCR.dcm", None)],
    "heldout": [
        ("retina.jpg[bottom]", skimage_path, "retina.jpg",
         functools.partial(_retina_part, first=False)),
        ("microaneurysms.png", skimage_path, "microaneurysms.png", None),
        ("RG1_UNCR.dcm", pydicom_data_path, "RG1_UNCR.dcm", None)],
}
_PACKAGES = {skimage_path: "skimage", pydicom_data_path: "pydicom-data"}


# The protocol that scores each held-out image: microaneurysms.png is a gray fundus detail, so
# its colour cannot tell.
_PROTOCOLS = {"retina.jpg[bottom]": "retina-x2", "microaneurysms.png": "retina-x2",
              "RG1_UNCR.dcm": "chest-x4"}


class BundledImages(source_lib.ImageSource):
  """`bundled:train` / `bundled:heldout`, or the images of a split that `names` lists (in that
  order), e.g. `bundled:heldout:retina.jpg[bottom],microaneurysms.png` (parts of a file, such as
  the bottom of retina.jpg, have no other spec)."""

  def __init__(self, split: str, names: Optional[list[str]] = None):
    super().__init__()
    if split not in SPLITS:
      raise source_lib.SourceError(
          f"bundled:{split}: no such split; the bundled images are split into "
          f"{', '.join('bundled:' + s for s in SPLITS)}")
    self._split = split
    self._entries = _IMAGES[split]
    self._spec = f"bundled:{split}"
    if names:
      by_name = {entry[0]: entry for entry in self._entries}
      unknown = [name for name in names if name not in by_name]
      if unknown:
        raise source_lib.SourceError(
            f"bundled:{split} has no image {', '.join(map(repr, unknown))}; it has "
            f"{', '.join(by_name)}")
      self._entries = [by_name[name] for name in names]
      self._spec += ":" + ",".join(names)
    self._cache: dict[int, np.ndarray] = {}

  @property
  def location(self) -> str:
    return f"{self._spec} (scikit-image and pydicom-data files)"

  def __len__(self) -> int:
    return len(self._entries)

  def name(self, index: int) -> str:
    return self._entries[index][0]

  def where(self, index: int) -> str:
    name, package, file, part = self._entries[index]
    whole = "" if part is None else f", part of {_PACKAGES[package]}:{file}"
    return f"bundled:{self._split} {name}{whole}"

  def short_name(self, index: int) -> str:
    return self.name(index)  # "retina.jpg[top]" and "retina.jpg[bottom]" must stay apart.

  def protocol(self, index: int) -> str | None:
    return _PROTOCOLS.get(self.name(index))

  def read(self, index: int) -> np.ndarray:
    # A handful of images, decoded once: the DICOMs take a while to read.
    with self._lock:
      if index not in self._cache:
        _, package, file, part = self._entries[index]
        image = _samples(package(file))
        self._cache[index] = image if part is None else part(image)
      return self._cache[index]

  def read_float(self, index: int) -> np.ndarray:
    _, package, file, part = self._entries[index]
    if part is None:  # A whole file: exactly what it gives under any other spec.
      return jio.read_image(package(file), dicom_range="data").rgb()
    return decode.to_float_rgb(self.read(index))
