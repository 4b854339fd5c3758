"""A folder of the user's own images as a training source.

Every image file under the folder (recursively, in sorted path order, so the order does not
depend on the file system) is one example: PNG, JPEG, TIFF, PPM/PGM/PNM, BMP, each optionally
gzipped, 8- or 16-bit, gray or colour, and single-frame DICOM (`.dcm`, `.dicom`; read as a viewer
shows it, at 16 bits: see `decode.read_dicom`). Hidden files (`.name`, e.g. macOS `._im0001.ppm`
resource forks) are ignored.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from jaxsr.data import decode
from jaxsr.data import source

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".bmp")
DICOM_EXTENSIONS = (".dcm", ".dicom")


def is_image_file(path: str | os.PathLike) -> bool:
  """True for a visible file whose name ends in an image extension, optionally plus `.gz`."""
  name = pathlib.PurePath(path).name.lower()
  if name.startswith("."):
    return False
  if name.endswith(DICOM_EXTENSIONS):
    return True
  if name.endswith(".gz"):
    name = name[: -len(".gz")]
  return name.endswith(IMAGE_EXTENSIONS)


def list_images(root: str | os.PathLike) -> list[pathlib.Path]:
  """All image files under `root`, recursively, sorted by their path relative to `root`.

  Raises:
    FileNotFoundError: if `root` is not a directory.
    ValueError: if it holds no image file; both messages name the path looked at.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
  paths = [p for p in root.rglob("*") if is_image_file(p) and p.is_file()]
  if not paths:
    raise ValueError(
        f"no image files under {root.resolve()} (looked recursively for "
        f"{', '.join(IMAGE_EXTENSIONS)}, optionally .gz, and {', '.join(DICOM_EXTENSIONS)})")
  return sorted(paths, key=lambda p: p.relative_to(root).as_posix())


class ImageFolder(source.ImageSource):
  """The images under a folder; listed once, read on demand."""

  def __init__(self, root: str | os.PathLike):
    super().__init__()
    self._root = pathlib.Path(root)
    self._paths = list_images(self._root)

  @property
  def location(self) -> str:
    return str(self._root)

  @property
  def paths(self) -> list[pathlib.Path]:
    return list(self._paths)

  def __len__(self) -> int:
    return len(self._paths)

  def name(self, index: int) -> str:
    return str(self._paths[index])

  def read(self, index: int) -> np.ndarray:
    path = self._paths[index]
    if path.name.lower().endswith(DICOM_EXTENSIONS):
      return decode.read_dicom(path)
    return decode.read_image(path)
