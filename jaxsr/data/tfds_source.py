"""A prepared TFDS split (one of `jaxsr.data.builders`, or any with an `image` feature) as a source.

Random access needs a random-access file format: prepare training sets with
`--file-format array_record` (the default of `python -m jaxsr.data.builders`). A split stored
only as TFRecord still works: its encoded images are read once into memory (compressed, so
roughly the size of the files on disk).

Given `manual_dir`, a data set that is not prepared yet is prepared from it first, in the format
`python -m jaxsr.data.builders` writes (what `jaxsr.evaluate --manual-dir` does); without it, an
unprepared set is an error that says how to prepare it.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow_datasets as tfds

import jaxsr.data.builders  # pylint: disable=unused-import  (registers the builders)
from jaxsr import io as jio
from jaxsr.data import source


class TfdsSource(source.ImageSource):
  """Images of `name` (e.g. `stare`, `shenzhen/multiscale`) split `split`, decoded on demand.

  `split=None` takes the data set's only split (an error naming them if it has several).

  Raises:
    source.SourceError: no such data set, not prepared (and no usable `manual_dir`), no such
      split, or no examples; each message says what to do.
  """

  def __init__(self, name: str, split: str | None = "train", data_dir: str | None = None,
               manual_dir: str | None = None):
    super().__init__()
    builder = _builder(name, data_dir)
    if not builder.is_prepared():
      builder = _prepare(name, data_dir, manual_dir, builder.data_dir)
    splits = sorted(builder.info.splits)
    if split is None:
      if len(splits) != 1:
        raise source.SourceError(f"tfds:{name} has splits {splits}; choose one (jaxsr.evaluate: "
                                 "--split)")
      split = splits[0]
    self._name, self._split = name, split
    self._location = f"tfds:{name} split {split!r}" + (f" in {data_dir}" if data_dir else "")
    if split not in splits:
      raise source.SourceError(f"{self._location}: no such split; tfds:{name} has {splits}")
    # Skip TFDS's own image decoding: it cannot decode uint16 without OpenCV, and ours keeps the
    # bit depth and names the example in its errors.
    decoders = {"image": tfds.decode.SkipDecoding()}
    try:
      self._records = builder.as_data_source(split, decoders=decoders)
    except NotImplementedError:
      logging.info("%s is not in a random-access format; holding its encoded images in memory",
                   self._location)
      # Unshuffled TFRecord shards keep the order in which TFDS wrote them: fixed per dataset.
      self._records = list(builder.as_dataset(split, decoders=decoders, shuffle_files=False)
                           .as_numpy_iterator())
    if len(self._records) == 0:  # pylint: disable=g-explicit-length-test
      raise source.SourceError(f"{self._location} has no examples")

  @property
  def location(self) -> str:
    return self._location

  def __len__(self) -> int:
    return len(self._records)

  def name(self, index: int) -> str:
    return _text(self._records[index]["file_name"])

  def where(self, index: int) -> str:
    return f"tfds:{self._name} split {self._split} #{index} ({self.name(index)})"

  def stable_order(self) -> list[int]:
    # File-name order: TFDS stores examples in an order of its own (hashed keys), which may
    # differ between file formats; names make a seeded draw depend on the data set alone.
    return sorted(range(len(self)), key=self.name)

  def read(self, index: int) -> np.ndarray:
    record = self._records[index]
    name = f"{_text(record['file_name'])} ({self._location})"
    return jio.decode_samples(record["image"], name=name)


def _builder(name: str, data_dir: str | None, **kwargs):
  try:
    return tfds.builder(name, data_dir=data_dir, **kwargs)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise source.SourceError(
        f"tfds:{name}: no such TFDS data set ({str(e).splitlines()[0]})") from e


def _prepare(name: str, data_dir: str | None, manual_dir: str | None, where: str):
  """A builder of `name`, prepared from `manual_dir` in the format jaxsr.data.builders writes."""
  command = f"python -m jaxsr.data.builders {name} --manual-dir DIR" + (
      f" --data-dir {data_dir}" if data_dir else "")
  if manual_dir is None:
    raise source.SourceError(
        f"tfds:{name} is not prepared under {where}; prepare it from the unpacked download with "
        f"`{command}` (jaxsr.evaluate: pass --manual-dir DIR)")
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    raise source.SourceError(f"tfds:{name}: --manual-dir {manual_dir} is missing or empty")
  builder = _builder(name, data_dir, file_format="array_record")
  try:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except (FileNotFoundError, ValueError) as e:  # The builders name manual_dir and what to get.
    raise source.SourceError(
        f"tfds:{name}: cannot prepare from --manual-dir {manual_dir}: {e}") from e
  return builder


def _text(value: bytes | str) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)
