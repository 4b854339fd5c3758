"""Image files as a source: a file, a folder, a glob, or the files bundled by installed packages.

Which files are images, and in which order, is the one listing rule of `jaxsr.io.listing`
(recursively, in sorted path order, so the order does not depend on the file system; hidden
files and folders left out): PNG, JPEG, TIFF, BMP, PPM/PGM/PNM, each optionally gzipped, 8- or
16-bit, gray or colour, and single-frame DICOM (`.dcm`, `.dicom`, or any name with DICOM
content; read as a viewer shows it: see `jaxsr.io.dicom`). Every file is read by `jaxsr.io`, by
content, so one file gives the same pixels whichever spec names it.
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

import numpy as np

from jaxsr import io as jio
from jaxsr.data import source
from jaxsr.io import listing


class ImageFiles(source.ImageSource):
  """A fixed list of image files; read on demand.

  `names` (default: the paths) are what `name` and `where` give, e.g. `skimage:retina.jpg` for a
  file of an installed package, so results do not record this machine's site-packages path.
  """

  def __init__(self, paths: Sequence[str | os.PathLike], location: str,
               names: Sequence[str] | None = None):
    super().__init__()
    self._paths = [pathlib.Path(p) for p in paths]
    self._location = location
    self._names = list(names) if names is not None else [str(p) for p in self._paths]
    if len(self._names) != len(self._paths):
      raise ValueError(f"{len(self._names)} names for {len(self._paths)} files")

  @property
  def location(self) -> str:
    return self._location

  @property
  def paths(self) -> list[pathlib.Path]:
    return list(self._paths)

  def __len__(self) -> int:
    return len(self._paths)

  def name(self, index: int) -> str:
    return self._names[index]

  def short_name(self, index: int) -> str:
    return source.image_stem(self._paths[index])

  def read(self, index: int) -> np.ndarray:
    return jio.read_samples(self._paths[index])

  def read_float(self, index: int) -> np.ndarray:
    return jio.read_image(self._paths[index], dicom_range="data").rgb()


class ImageFolder(ImageFiles):
  """Every image file under a folder, recursively, listed once.

  Raises:
    FileNotFoundError: the folder does not exist.
    ValueError: it holds no image file (both name the path looked at).
  """

  def __init__(self, root: str | os.PathLike):
    super().__init__(listing.list_folder(root), str(root))


def listed(spec: str | os.PathLike) -> ImageFiles:
  """The image files a path spec names: a file, a folder (recursively) or a glob.

  Raises:
    source.SourceError: a named file that is not an image file, or nothing found; the message
      names the path and the listing rule.
    FileNotFoundError: `spec` is neither an existing file or folder nor a glob pattern.
  """
  spec = os.fspath(spec)
  if os.path.isdir(spec):
    try:
      return ImageFolder(spec)
    except ValueError as e:
      raise source.SourceError(str(e)) from e
  found = listing.find_images(spec)
  if os.path.isfile(spec) and not found.files:
    raise source.SourceError(f"{spec} is neither an image file nor a DICOM file (image files: "
                             f"{listing.describe()})")
  if not found.files:
    raise source.SourceError(f"no image files match {spec} (image files: "
                             f"{listing.describe()})")
  return ImageFiles(found.files, spec)
