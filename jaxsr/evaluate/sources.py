"""Test images for an offline evaluation, as `(name, HxWx3 float32 in [0, 1])` pairs.

* `skimage_images`: the fundus photographs that scikit-image ships in its wheel (`retina.jpg`,
  1411x1411 RGB; `microaneurysms.png`, 102x102 gray), read from the package folder directly, so no
  download helper can be triggered.
* `dicom_images`: pydicom-data's computed radiographs (`RG1_UNCR.dcm`, `RG3_UNCR.dcm`), found with
  `pydicom.data.get_testdata_file(..., download=False)`.
* `folder_images`: every PNG / JPEG / TIFF / BMP / PPM / DICOM file of a folder, sorted by name.

Gray images are repeated to three channels (the networks are RGB); 16-bit files are divided by
65535, 8-bit ones by 255. Decoding is shared with training (images) and inference (DICOM).
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib
from typing import Iterator, Optional, Sequence

import numpy as np

from jaxsr.data import decode
from jaxsr.data.folder import DICOM_EXTENSIONS  # One list of DICOM suffixes.
from jaxsr.infer import imageio

SKIMAGE_FUNDUS = ("retina.jpg", "microaneurysms.png")
PYDICOM_RADIOGRAPHS = ("RG1_UNCR.dcm", "RG3_UNCR.dcm")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".ppm", ".pgm")


def read_image(path: str) -> np.ndarray:
  """An image or DICOM file as HxWx3 float32 in [0, 1] (alpha dropped, gray repeated).

  Images go through the training data's decoder (`jaxsr.data.decode`: 8/16-bit PNG, TIFF, JPEG,
  PPM/PGM, 16-bit colour kept), DICOM through `read_dicom`.
  """
  if path.lower().endswith(DICOM_EXTENSIONS):
    return read_dicom(path)
  return decode.to_float_rgb(decode.read_image(path))


def read_dicom(path: str) -> np.ndarray:
  """A single-frame DICOM image as HxWx3 float32 in [0, 1].

  Read by the inference reader (`jaxsr.infer.imageio`, "data" range): the stored values go
  through the modality rescale, are min-max normalised over the image, and MONOCHROME1 images
  (where high values are dark) are inverted so that, as in MONOCHROME2, bright means dense
  tissue. No VOI window is applied: the whole recorded range is kept.
  """
  pixels = imageio.read_image(path, dicom_range="data").pixels
  return np.ascontiguousarray(np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels)


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
    yield os.path.splitext(name)[0], read_dicom(str(pydicom_data_path(name)))


def folder_images(folder: str, limit: Optional[int] = None) -> Iterator[tuple[str, np.ndarray]]:
  """Every image file of `folder` (not recursive), sorted by name; at most `limit` of them."""
  extensions = IMAGE_EXTENSIONS + DICOM_EXTENSIONS
  names = sorted(name for name in os.listdir(folder) if name.lower().endswith(extensions))
  if not names:
    raise FileNotFoundError(f"No image files ({', '.join(extensions)}) in {folder}")
  for name in names[:limit]:
    yield os.path.splitext(name)[0], read_image(os.path.join(folder, name))
