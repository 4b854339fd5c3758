"""A folder of the user's own images as a training source.

Every image file under the folder, by the one listing rule of `jaxsr.io.listing` (recursively,
in sorted path order, so the order does not depend on the file system; hidden files and folders
left out): PNG, JPEG, TIFF, BMP, PPM/PGM/PNM, each optionally gzipped, 8- or 16-bit, gray or
colour, and single-frame DICOM (`.dcm`, `.dicom`, or any name with DICOM content; read as a
viewer shows it, at 16 bits: see `jaxsr.io.dicom`).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from jaxsr import io as jio
from jaxsr.data import source


class ImageFolder(source.ImageSource):
  """The images under a folder; listed once, read on demand."""

  def __init__(self, root: str | os.PathLike):
    super().__init__()
    self._root = pathlib.Path(root)
    self._paths = jio.list_folder(self._root)

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
    return jio.read_samples(self._paths[index])
