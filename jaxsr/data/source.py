"""Random-access image sources: the one interface training, validation and evaluation read from.

A source is a fixed, ordered list of images (image files, a prepared TFDS split, the bundled
images). Random access by index is what makes the training stream cheap to reshuffle every epoch
and to resume at any step without decoding the images that came before, and what lets an
evaluation list a large data set and decode only the images it draws.

This module holds the interface only; `source_specs.open_source` turns a spec (`tfds:NAME`,
`bundled:SPLIT`, `skimage[:NAMES]`, `pydicom-data[:NAMES]`, a file, a folder or a glob) into one.
"""

from __future__ import annotations

import abc
import logging
import os
import threading
from typing import Sequence

import numpy as np

from jaxsr import io as jio
from jaxsr.data import decode


class SourceError(ValueError):
  """A source spec names nothing readable (no such data set, file or bundled image, an empty
  folder, ...); the message says what was looked for."""


def image_stem(name: str | os.PathLike) -> str:
  """A file name without its folder, `.gz` and image suffix (`b/im0001.ppm.gz` -> `im0001`)."""
  name = os.path.basename(os.fspath(name))
  if name.lower().endswith(".gz"):
    name = name[:-3]
  return os.path.splitext(name)[0]


class ImageSource(abc.ABC):
  """An ordered list of images; subclasses say how to list and read them."""

  def __init__(self):
    self._skipped: dict[int, tuple[str, str]] = {}  # index -> (name, reason)
    self._lock = threading.Lock()

  @property
  @abc.abstractmethod
  def location(self) -> str:
    """Where the images come from, for messages (a path, or a TFDS name and split)."""

  @abc.abstractmethod
  def __len__(self) -> int:
    """The number of images."""

  @abc.abstractmethod
  def name(self, index: int) -> str:
    """A human-readable name of image `index` (a file path or file name)."""

  @abc.abstractmethod
  def read(self, index: int) -> np.ndarray:
    """Image `index` as `[H, W, C]` uint8/uint16; raises `jio.UnreadableImageError` naming it."""

  def where(self, index: int) -> str:
    """Where image `index` comes from, for messages and result files (default: its name)."""
    return self.name(index)

  def short_name(self, index: int) -> str:
    """The name a result table gives image `index` (default: its file name without folder and
    image suffix, `im0001` for `data/im0001.ppm.gz`)."""
    return image_stem(self.name(index))

  def stable_order(self) -> list[int]:
    """The indices in an order that depends on the images alone, for evaluation's seeded draws:
    the listed order, where the listing is sorted or fixed (files, bundled sets)."""
    return list(range(len(self)))

  def indices(self, names: Sequence[str]) -> list[int]:
    """The indices of the images named `names` (see `name`), in that order.

    Raises:
      KeyError: naming every missing name and the names the source has, before anything is read.
    """
    index = {self.name(i): i for i in range(len(self))}
    missing = [name for name in names if name not in index]
    if missing:
      raise KeyError(f"{self.location} has no image(s) named {missing}; it has {sorted(index)}")
    return [index[name] for name in names]

  def read_float(self, index: int) -> np.ndarray:
    """Image `index` as `[H, W, 3]` float32 in [0, 1], what evaluation and validation score:
    samples / 255 or / 65535, alpha dropped, gray repeated. File sources read a DICOM's intensity
    mapping unquantised (`jaxsr.io.read_image`), the pixels `python -m jaxsr.upscale` computes
    on; `read` keeps the nearest 16-bit level of the same values."""
    return decode.to_float_rgb(self.read(index))

  def protocol(self, index: int) -> str | None:
    """The evaluation protocol image `index` is meant for ("chest-x4", "retina-x2"), where the
    source knows it (the bundled held-out images); None elsewhere."""
    del index
    return None

  @property
  def skipped(self) -> dict[str, str]:
    """Images that `read_for_training` skipped as unreadable: name -> reason."""
    with self._lock:
      return dict(self._skipped.values())

  def read_for_training(self, index: int, skip_corrupt: bool) -> np.ndarray:
    """Image `index` as `[H, W, 1 or 3]` uint16 (8-bit sources scaled by 257).

    One dtype lets the TF graph take 8- and 16-bit images alike; `x * 257 / 65535 == x / 255`
    exactly, so 8-bit images lose nothing. Alpha is dropped.

    With `skip_corrupt`, an unreadable image is logged, counted in `skipped`, and replaced by the
    next readable one (index + 1, + 2, ... wrapping around). The replacement keeps every slot of
    the stream filled, so batch shapes and the position of each later step stay the same.

    Raises:
      jio.UnreadableImageError: naming the image, unless `skip_corrupt`; or when none is readable.
    """
    for offset in range(len(self)):
      candidate = (index + offset) % len(self)
      with self._lock:
        if candidate in self._skipped:
          continue
      try:
        image = self.read(candidate)
        break
      except jio.UnreadableImageError as e:
        if not skip_corrupt:
          raise
        with self._lock:
          self._skipped[candidate] = (self.name(candidate), str(e))
          count = len(self._skipped)
        logging.warning("Skipping unreadable image (%d so far): %s", count, e)
    else:
      raise jio.UnreadableImageError(self.location, "no readable image")
    image = decode.drop_alpha(image)
    if image.dtype == np.uint8:
      image = image.astype(np.uint16) * np.uint16(257)
    return image
