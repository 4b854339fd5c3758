"""Test images for an offline evaluation, as `(name, HxWx3 float32 in [0, 1])` pairs.

* `skimage_images`: the fundus photographs that scikit-image ships in its wheel (`retina.jpg`,
  1411x1411 RGB; `microaneurysms.png`, 102x102 gray), read from the package folder directly, so no
  download helper can be triggered.
* `dicom_images`: pydicom-data's computed radiographs (`RG1_UNCR.dcm`, `RG3_UNCR.dcm`), found with
  `pydicom.data.get_testdata_file(..., download=False)`.
* `folder_images`: every image file under a folder (the one listing rule of `jaxsr.io.listing`:
  image suffixes or DICOM content, recursively, hidden files left out, sorted).

Gray images are repeated to three channels (the networks are RGB); 16-bit files are divided by
65535, 8-bit ones by 255, DICOM goes through the one intensity mapping of `jaxsr.io.dicom`.
Every file is read by `jaxsr.io` (by content), as in training and upscaling.
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib
from typing import Iterator, Optional, Sequence

import numpy as np

from jaxsr import io as jio
from jaxsr.io import listing

SKIMAGE_FUNDUS = ("retina.jpg", "microaneurysms.png")
PYDICOM_RADIOGRAPHS = ("RG1_UNCR.dcm", "RG3_UNCR.dcm")


def read_image(path: str | os.PathLike) -> np.ndarray:
  """An image or DICOM file (recognised by content) as HxWx3 float32 in [0, 1].

  Alpha is dropped and gray repeated. Raster files give samples / 255 or / 65535; a single-frame
  DICOM gives the "data" mapping of `jaxsr.io.dicom` (modality rescale, the image's own min..max,
  MONOCHROME1 inverted so that bright means dense; no VOI window), unquantised: the pixels
  `python -m jaxsr.upscale` computes on.
  """
  return jio.read_image(path, dicom_range="data").rgb()


def skimage_path(name: str) -> pathlib.Path:
  """A file of scikit-image's `data` folder, read from the installed wheel (never downloaded)."""
  try:
    folder = pathlib.Path(str(importlib.resources.files("skimage") / "data"))
  except ModuleNotFoundError as e:
    raise ImportError("The bundled fundus images need scikit-image "
                      "(pip install scikit-image)") from e
  path = folder / name
  if not path.is_file():
    raise FileNotFoundError(f"{name} is not in this scikit-image install ({folder})")
  return path


def pydicom_data_path(name: str) -> pathlib.Path:
  """A file of pydicom-data (pip install pydicom-data), never downloaded."""
  from pydicom.data import get_testdata_file

  path = get_testdata_file(name, download=False)
  if path is None:
    raise FileNotFoundError(f"{name} is not installed; it ships in the pydicom-data package "
                            "(pip install pydicom-data)")
  return pathlib.Path(path)


def skimage_images(names: Sequence[str] = SKIMAGE_FUNDUS) -> Iterator[tuple[str, np.ndarray]]:
  """The fundus images bundled with scikit-image (no network: files of the installed wheel)."""
  for name in names:
    yield os.path.splitext(name)[0], read_image(str(skimage_path(name)))


def dicom_images(names: Sequence[str] = PYDICOM_RADIOGRAPHS) -> Iterator[tuple[str, np.ndarray]]:
  """pydicom-data's radiographs (pip install pydicom-data), never downloaded."""
  for name in names:
    yield os.path.splitext(name)[0], read_image(pydicom_data_path(name))


def folder_images(folder: str, limit: Optional[int] = None) -> Iterator[tuple[str, np.ndarray]]:
  """Every image file under `folder` (see `jaxsr.io.listing`), sorted; at most `limit` of them.

  Names are file names without their suffixes (and `.gz`).
  """
  paths = jio.find_images(folder).files if os.path.isdir(folder) else []
  if not paths:
    raise FileNotFoundError(f"No image files ({listing.describe()}) in {folder}")
  for path in paths[:limit]:
    yield image_name(path), read_image(path)


def image_name(path: pathlib.Path) -> str:
  """A file's name without its image suffix and an optional `.gz` (`im0001.ppm.gz` -> `im0001`)."""
  name = path.name
  if name.lower().endswith(".gz"):
    name = name[:-3]
  return os.path.splitext(name)[0]
