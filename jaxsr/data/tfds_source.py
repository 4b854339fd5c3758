"""A prepared TFDS split (one of `jaxsr.data.builders`, or any with an `image` feature) as a source.

Random access needs a random-access file format: prepare training sets with
`--file-format array_record`. A split stored only as TFRecord still works: its encoded images
are read once into memory (compressed, so roughly the size of the files on disk).
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow_datasets as tfds

import jaxsr.data.builders  # pylint: disable=unused-import  (registers the builders)
from jaxsr import io as jio
from jaxsr.data import source


class TfdsSource(source.ImageSource):
  """Images of `name` (e.g. `stare`, `shenzhen/multiscale`) split `split`, decoded on demand."""

  def __init__(self, name: str, split: str = "train", data_dir: str | None = None):
    super().__init__()
    self._location = f"tfds:{name} split {split!r}" + (f" in {data_dir}" if data_dir else "")
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      raise FileNotFoundError(
          f"{self._location} is not prepared under {builder.data_dir}; run "
          f"`python -m jaxsr.data.builders {name} --manual-dir DIR"
          + (f" --data-dir {data_dir}`" if data_dir else "`"))
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
      raise ValueError(f"{self._location} has no examples")

  @property
  def location(self) -> str:
    return self._location

  def __len__(self) -> int:
    return len(self._records)

  def name(self, index: int) -> str:
    return _text(self._records[index]["file_name"])

  def read(self, index: int) -> np.ndarray:
    record = self._records[index]
    name = f"{_text(record['file_name'])} ({self._location})"
    return jio.decode_samples(record["image"], name=name)


def _text(value: bytes | str) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)
