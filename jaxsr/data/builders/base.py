"""What the four dataset builders share: features, file discovery, pixel layout.

Each dataset is an unpacked official download in `manual_dir` (nothing can be downloaded for
the user: the sets need a licence click-through or are too big), turned into one split of
examples with the same features:

  image:      `[H, W, C]` PNG-encoded; uint8 RGB for the retina sets, uint16 gray for the
              X-ray sets (8-bit X-rays are scaled by 257, which is exact and reversible, so
              8- and 16-bit sources share one dtype and 16-bit ones lose nothing).
  file_name:  the source file's name (e.g. `im0001.ppm.gz`), or the name of a derived copy.
  channels:   the channel count of the source file (1 gray, 3 RGB, 4 RGBA, ...).
  bit_depth:  bits per sample of the source file (8 or 16).
"""

from __future__ import annotations

import collections
import inspect
import logging
import pathlib
from typing import Callable, Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from jaxsr import io as jio
from jaxsr.data import decode

# ITU-R 601 luma, as Pillow's "L" conversion, for the rare colour file in a gray data set.
_LUMA = np.array([0.299, 0.587, 0.114])


def image_features(channels: int, dtype: type[np.generic]) -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "image": tfds.features.Image(
          shape=(None, None, channels), dtype=dtype, encoding_format="png"),
      "file_name": tfds.features.Text(),
      "channels": tfds.features.Scalar(dtype=np.int32),
      "bit_depth": tfds.features.Scalar(dtype=np.int32),
  })


def find_files(
    manual_dir: pathlib.Path,
    pattern: str,
    instructions: str,
    keep: Callable[[pathlib.Path], bool] = lambda _: True,
) -> list[pathlib.Path]:
  """Files matching `pattern` anywhere under `manual_dir`, sorted by file name.

  Official archives unpack into varying sub-folders (and people re-pack them), so the layout
  is searched recursively and only the file names are relied on.

  Raises:
    FileNotFoundError: nothing found; the message names `manual_dir` and repeats `instructions`.
    ValueError: one file name occurs twice (e.g. two unpacked copies).
  """
  manual_dir = pathlib.Path(manual_dir)
  paths = [p for p in manual_dir.rglob(pattern) if p.is_file() and keep(p)]
  if not paths:
    raise FileNotFoundError(
        f"no files matching {pattern!r} under manual_dir {manual_dir.resolve()}.\n{instructions}")
  counts = collections.Counter(p.name for p in paths)
  duplicates = sorted(name for name, count in counts.items() if count > 1)
  if duplicates:
    raise ValueError(
        f"{len(duplicates)} file names occur more than once under {manual_dir} "
        f"(e.g. {duplicates[:3]}); keep one unpacked copy of the download")
  return sorted(paths, key=lambda p: p.name)


def warn_if_unexpected_count(name: str, paths: list[pathlib.Path], expected: int) -> None:
  if len(paths) != expected:
    logging.warning("%s: found %d images, the official set has %d", name, len(paths), expected)


def fit_layout(
    image: np.ndarray, *, channels: int, dtype: type[np.generic], name: str) -> np.ndarray:
  """Brings a decoded image into a dataset's `(channels, dtype)` without losing precision.

  Alpha is dropped (the sets are opaque); gray becomes RGB by repetition; RGB becomes gray by
  taking one channel when all three are equal, else by ITU-R 601 luma; uint8 -> uint16 is x257.

  Raises:
    ValueError: for a 16-bit image in an 8-bit dataset, naming the file.
  """
  image = decode.drop_alpha(image)
  if image.dtype == np.uint16 and dtype == np.uint8:
    raise ValueError(f"{name} is 16-bit but this dataset stores 8-bit images")
  if image.dtype == np.uint8 and dtype == np.uint16:
    image = image.astype(np.uint16) * np.uint16(257)
  if channels == 3 and image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  elif channels == 1 and image.shape[-1] == 3:
    if np.array_equal(image[..., :1], image[..., 1:2]) and np.array_equal(
        image[..., :1], image[..., 2:]):
      image = image[..., :1]
    else:
      luma = np.round(image.astype(np.float64) @ _LUMA)[..., None]
      image = np.clip(luma, 0, np.iinfo(dtype).max).astype(dtype)
  return np.ascontiguousarray(image)


class ManualImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """An image data set read from an unpacked official download in `manual_dir`.

  Subclasses set the class constants and `find_sources`; `examples_from` may turn one file into
  several examples (Shenzhen's multi-scale copies).
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  SPLIT: str = "train"
  CHANNELS: int = 3
  DTYPE: type[np.generic] = np.uint8
  DESCRIPTION: str = ""
  HOMEPAGE: str = ""
  CITATION: str = ""

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS (4.9.10) finds the defining file through `importlib_resources`, which it only
    # installs on Python < 3.9, and fails without it; the answer is simply this file.
    return epath.Path(inspect.getfile(cls))

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=image_features(self.CHANNELS, self.DTYPE),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    paths = self.find_sources(pathlib.Path(dl_manager.manual_dir))
    return {self.SPLIT: self._generate_examples(paths)}

  def _generate_examples(self, paths: list[pathlib.Path]):
    for path in paths:
      decoded = jio.read_samples(path)
      image = fit_layout(decoded, channels=self.CHANNELS, dtype=self.DTYPE, name=str(path))
      depth = decode.bit_depth(decoded)
      common = {"channels": decoded.shape[-1], "bit_depth": depth}
      for file_name, copy in self.examples_from(path.name, image, depth):
        yield file_name, {"image": copy, "file_name": file_name, **common}

  def find_sources(self, manual_dir: pathlib.Path) -> list[pathlib.Path]:
    raise NotImplementedError

  def examples_from(
      self, file_name: str, image: np.ndarray, bit_depth: int
  ) -> Iterator[tuple[str, np.ndarray]]:
    """(file name, image) pairs made from one source file; by default the file itself.

    `image` is already in the dataset's layout; `bit_depth` is the source file's.
    """
    del bit_depth  # Only derived copies need it.
    yield file_name, image
