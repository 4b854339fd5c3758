"""What `--data` names, as a list of lazily read test images.

A spec is one of:

  skimage[:NAME,...]        scikit-image's bundled fundus images (default: retina.jpg and
                            microaneurysms.png)
  pydicom-data[:NAME,...]   pydicom-data's bundled radiographs (default: RG1_UNCR.dcm, RG3_UNCR.dcm)
  tfds:NAME[/CONFIG]        a jaxsr TFDS builder (`drive`, `nih_chest_xray14/random40_seed0`, ...);
                            prepared from `manual_dir` first if it is not prepared yet
  PATH                      an image or DICOM file, or a folder of them (searched recursively;
                            which files are images: `jaxsr.io.listing`, as for training and
                            upscaling)

Images are listed first and read only when iterated: a bad spec fails before any work, and
`select` can draw a subset of a large data set without decoding the rest. Every image comes back
as HxWx3 float32 in [0, 1] (gray repeated; 16-bit files keep their depth until the division).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from jaxsr.data import decode
from jaxsr.evaluate import sources
from jaxsr.io import listing


class DataError(ValueError):
  """A `--data` spec names nothing readable; the message says what was looked for."""


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
  """The images `spec` names (see the module docstring), in a fixed order."""
  kind, _, names = spec.partition(":")
  try:
    # Bundled files are recorded as `kind:NAME`, not by this machine's site-packages path.
    if kind == "skimage":
      return [_lazy_file(sources.skimage_path(name), sources.read_image, f"skimage:{name}")
              for name in _names(names, sources.SKIMAGE_FUNDUS)]
    if kind == "pydicom-data":
      return [_lazy_file(sources.pydicom_data_path(name), sources.read_image,
                         f"pydicom-data:{name}")
              for name in _names(names, sources.PYDICOM_RADIOGRAPHS)]
  except (FileNotFoundError, ImportError) as e:  # Not installed, or no such bundled file.
    raise DataError(f"--data {spec}: {e}") from e
  if kind == "tfds":
    if not names:
      raise DataError("tfds: needs a builder name, e.g. tfds:drive or "
                      "tfds:nih_chest_xray14/random40_seed0")
    return _tfds_images(names, split, data_dir, manual_dir)
  return _path_images(pathlib.Path(spec))


def _names(text: str, default: Sequence[str]) -> list[str]:
  return [name for name in text.split(",") if name] if text else list(default)


def _lazy_file(path: pathlib.Path, reader: Callable[[str], np.ndarray],
               where: Optional[str] = None) -> LazyImage:
  return LazyImage(name=sources.image_name(path), where=where or str(path),
                   load=functools.partial(reader, str(path)))


def _path_images(path: pathlib.Path) -> list[LazyImage]:
  """A file or a folder, by the one listing rule; every file is read by content."""
  if path.is_file():
    if not listing.is_image_file(path):
      raise DataError(f"{path} is neither an image file nor a DICOM file (image files: "
                      f"{listing.describe()})")
    return [_lazy_file(path, sources.read_image)]
  if not path.is_dir():
    raise DataError(f"--data {path}: no such file or folder, and not one of skimage, "
                    "pydicom-data, tfds:NAME")
  images = [_lazy_file(file, sources.read_image) for file in listing.find_images(path).files]
  if not images:
    raise DataError(f"no image or DICOM files under {path.resolve()}")
  return images


def _tfds_images(name: str, split: Optional[str], data_dir: Optional[str],
                 manual_dir: Optional[str]) -> list[LazyImage]:
  import tensorflow_datasets as tfds  # Heavy; only TFDS specs pay for it.

  import jaxsr.data.builders  # pylint: disable=unused-import  (registers the builders)
  from jaxsr.data import tfds_source

  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DataError(f"tfds:{name}: no such TFDS data set ({str(e).splitlines()[0]})") from e
  if not builder.is_prepared():
    if manual_dir is None:
      raise DataError(f"tfds:{name} is not prepared under {builder.data_dir}; pass --manual-dir "
                      "with the unpacked download to prepare it (or run python -m "
                      f"jaxsr.data.builders {name} --manual-dir DIR)")
    if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
      raise DataError(f"tfds:{name}: --manual-dir {manual_dir} is missing or empty")
    # The same file format as `python -m jaxsr.data.builders`, so training can reuse it.
    try:
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except (FileNotFoundError, ValueError) as e:  # The builders name manual_dir and what to get.
      raise DataError(f"tfds:{name}: cannot prepare from --manual-dir {manual_dir}: {e}") from e
  if split is None:
    splits = sorted(builder.info.splits)
    if len(splits) != 1:
      raise DataError(f"tfds:{name} has splits {splits}; choose one with --split")
    split = splits[0]
  source = tfds_source.TfdsSource(name, split=split, data_dir=data_dir)
  # In file-name order: TFDS stores examples in an order of its own (hashed keys), which may
  # differ between file formats; names make `select`'s draw depend on the data set alone.
  order = sorted(range(len(source)), key=source.name)
  return [LazyImage(name=sources.image_name(pathlib.Path(source.name(i))),
                    where=f"tfds:{name} split {split} #{i} ({source.name(i)})",
                    load=functools.partial(_read_tfds, source, i))
          for i in order]


def _read_tfds(source, index: int) -> np.ndarray:
  return decode.to_float_rgb(source.read(index))


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
