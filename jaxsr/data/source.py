"""Random-access image sources: the one interface the training pipeline reads from.

A source is a fixed, ordered list of images (a folder of files, or a prepared TFDS split).
Random access by index is what makes the training stream cheap to reshuffle every epoch and to
resume at any step without decoding the images that came before.
"""

from __future__ import annotations

import abc
import logging
import threading
from typing import Iterator

import numpy as np

from jaxsr import io as jio
from jaxsr.data import decode


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


def open_source(spec: str, *, split: str = "train", data_dir: str | None = None) -> ImageSource:
  """`tfds:NAME[/CONFIG]` opens a prepared TFDS split, `bundled:train|heldout` the images that ship
  in scikit-image / pydicom-data (see `bundled`); anything else is an image folder."""
  if spec.startswith("bundled:"):
    from jaxsr.data import bundled  # pylint: disable=g-import-not-at-top

    return bundled.BundledImages(spec[len("bundled:"):])
  if spec.startswith("tfds:"):
    from jaxsr.data import tfds_source  # pylint: disable=g-import-not-at-top

    return tfds_source.TfdsSource(spec[len("tfds:"):], split=split, data_dir=data_dir or None)
  from jaxsr.data import folder  # pylint: disable=g-import-not-at-top

  return folder.ImageFolder(spec)


def read_named(spec: str, names, *, split: str = "test") -> Iterator[tuple[str, np.ndarray]]:
  """(name, image) for each of `names` in source `spec`, in that order; all names are checked
  before the first image is read, so a typo fails before any work."""
  images = open_source(spec, split=split)
  index = {images.name(i): i for i in range(len(images))}
  missing = [name for name in names if name not in index]
  if missing:
    raise KeyError(f"{images.location} has no image(s) named {missing}; it has {sorted(index)}")
  return ((name, images.read(index[name])) for name in names)
