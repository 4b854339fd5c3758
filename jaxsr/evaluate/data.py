"""What `--data` names, as a list of lazily read test images.

A spec is any source spec (`jaxsr.data.source_specs`, the grammar training and validation use
too): `tfds:NAME[/CONFIG]` (prepared from `manual_dir` first if it is not prepared yet),
`bundled:SPLIT`, `skimage[:NAME,...]`, `pydicom-data[:NAME,...]`, or an image or DICOM file, a
folder (recursively) or a glob.

Images are listed first and read only when iterated: a bad spec fails before any work, and
`select` can draw a subset of a large data set without decoding the rest. Every image comes back
as HxWx3 float32 in [0, 1] (`ImageSource.read_float`: gray repeated; 16-bit files keep their
depth until the division; DICOM through the one intensity mapping of `jaxsr.io.dicom`,
unquantised). An image's name in the result tables is its file name without folder and image
suffix (`retina` for `skimage:retina.jpg`; a bundled image keeps its own name, such as
`retina.jpg[bottom]`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from jaxsr.data import source_specs


class DataError(ValueError):
  """The listed images cannot be evaluated together (two share a name); the message says which."""


@dataclasses.dataclass(frozen=True)
class LazyImage:
  name: str  # Unique within an evaluation: rows of per_image.csv.
  where: str  # File path or TFDS record, for messages and the result files.
  load: Callable[[], np.ndarray]


class ImageList:
  """A sized iterable of (name, image) pairs, so progress bars know the total."""

  def __init__(self, images: Sequence[LazyImage], crop: Optional[int] = None):
    self.images = list(images)
    self.crop = crop

  def __len__(self) -> int:
    return len(self.images)

  def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
    for image in self.images:
      pixels = image.load()
      yield image.name, center_crop(pixels, self.crop) if self.crop else pixels


def list_images(spec: str, *, split: Optional[str] = None, data_dir: Optional[str] = None,
                manual_dir: Optional[str] = None) -> list[LazyImage]:
  """The images `spec` names, in an order that depends on the data alone
  (`ImageSource.stable_order`: TFDS sets in file-name order).

  Raises:
    jaxsr.data.source.SourceError: the spec names nothing readable.
  """
  source = source_specs.open_source(spec, split=split, data_dir=data_dir, manual_dir=manual_dir)
  return [LazyImage(name=source.short_name(i), where=source.where(i),
                    load=functools.partial(source.read_float, i))
          for i in source.stable_order()]


def select(images: Sequence[LazyImage], max_images: Optional[int], seed: int) -> list[LazyImage]:
  """At most `max_images`, drawn without replacement by `seed` and kept in their listed order.

  A random draw rather than the first N, as the paper's "40 random images": the first files of a
  data set are often one patient or one camera.
  """
  if not max_images or max_images >= len(images):
    return list(images)
  chosen = np.random.default_rng(seed).choice(len(images), size=max_images, replace=False)
  return [images[i] for i in sorted(chosen)]


def check_unique(images: Sequence[LazyImage]) -> None:
  seen = {}
  for image in images:
    if image.name in seen:
      raise DataError(f"two images are named {image.name!r} ({seen[image.name]} and "
                      f"{image.where}); evaluate them separately or rename one")
    seen[image.name] = image.where


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """The central size x size window (the whole side where the image is smaller)."""
  height, width = image.shape[:2]
  top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
  return image[top:top + size, left:left + size]
