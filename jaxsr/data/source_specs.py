"""Source specs: the one grammar that names images, for every command and config.

  tfds:NAME[/CONFIG]       a prepared TFDS split (`jaxsr.data.builders`: stare, shenzhen/multiscale,
                           drive, nih_chest_xray14/random40_seed0, ...); prepared from
                           `manual_dir` first when one is given
  bundled:SPLIT[:NAME,...] bundled:train / bundled:heldout, the offline runs' split of the images
                           below (`jaxsr.data.bundled`), or the named images of a split
                           (bundled:heldout:retina.jpg[bottom],microaneurysms.png)
  skimage[:NAME,...]       files of scikit-image's data folder (default: retina.jpg,
                           microaneurysms.png)
  pydicom-data[:NAME,...]  files of pydicom-data, never downloaded (default: RG1_UNCR.dcm,
                           RG3_UNCR.dcm)
  PATH                     an image or DICOM file, a folder (recursively) or a quoted glob, by the
                           one listing rule (`jaxsr.io.listing`)

`open_source` turns a spec into an `ImageSource` (random access, read on demand). Training
(`data.source`), validation (`validation.data`), a run's final evaluation
(`evaluate_after.data`), `python -m jaxsr.evaluate --data` and the study all go through it, and
every file is read by `jaxsr.io`, so one file gives the same pixels whichever spec names it
(`pydicom-data:RG1_UNCR.dcm`, its path, a folder holding it, or `bundled:heldout`).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from jaxsr.data import bundled
from jaxsr.data import image_files
from jaxsr.data import source

# The accepted forms, for messages and help texts.
FORMS = ("tfds:NAME[/CONFIG]", f"bundled:{'|'.join(bundled.SPLITS)}[:NAME,...]",
         "skimage[:NAME,...]",
         "pydicom-data[:NAME,...]", "a path (an image or DICOM file, a folder or a glob)")


def describe() -> str:
  """The grammar in one line: "tfds:NAME[/CONFIG], bundled:train|heldout[:NAME,...], ... or a
  path (...)"."""
  return ", ".join(FORMS[:-1]) + " or " + FORMS[-1]


def _names(text: str) -> list[str]:
  """The NAME,... list after a scheme: comma-separated, spaces around names ignored."""
  return [name.strip() for name in text.split(",") if name.strip()]


def _tfds(rest: str, split, data_dir, manual_dir) -> source.ImageSource:
  if not rest:
    raise source.SourceError("tfds: needs a builder name, e.g. tfds:drive or "
                             "tfds:nih_chest_xray14/random40_seed0")
  # TensorFlow and TFDS load in seconds: only tfds: specs pay for them.
  from jaxsr.data import tfds_source  # pylint: disable=import-outside-toplevel

  return tfds_source.TfdsSource(rest, split=split, data_dir=data_dir or None,
                                manual_dir=manual_dir or None)


def _bundled(rest: str, split, data_dir, manual_dir) -> source.ImageSource:
  del split, data_dir, manual_dir
  split_name, _, names = rest.partition(":")
  return bundled.BundledImages(split_name, _names(names))


def _package_files(scheme: str, find: Callable[[str], os.PathLike], default: tuple[str, ...]):
  def open_files(rest: str, split, data_dir, manual_dir) -> source.ImageSource:
    del split, data_dir, manual_dir
    names = _names(rest) or list(default)
    paths = [find(name) for name in names]
    # Recorded as `scheme:NAME`, not by this machine's site-packages path.
    return image_files.ImageFiles(paths, f"{scheme}:{','.join(names)}",
                                  names=[f"{scheme}:{name}" for name in names])
  return open_files


# scheme -> opener(text after "scheme:", split, data_dir, manual_dir).
SCHEMES: dict[str, Callable[..., source.ImageSource]] = {
    "tfds": _tfds,
    "bundled": _bundled,
    "skimage": _package_files("skimage", bundled.skimage_path, bundled.SKIMAGE_FUNDUS),
    "pydicom-data": _package_files("pydicom-data", bundled.pydicom_data_path,
                                   bundled.PYDICOM_RADIOGRAPHS),
}


def open_source(spec: str | os.PathLike, *, split: Optional[str] = None,
                data_dir: Optional[str] = None,
                manual_dir: Optional[str] = None) -> source.ImageSource:
  """The images `spec` names (see the module docstring), listed now and read on demand.

  Args:
    spec: a source spec.
    split: the TFDS split (training: "train"; None: the data set's only split). Other sources
      have no splits and ignore it.
    data_dir: the TFDS data directory (default: TFDS's, ~/tensorflow_datasets).
    manual_dir: the unpacked download an unprepared TFDS data set is prepared from.

  Raises:
    source.SourceError: `spec` names nothing readable: one message saying what was looked for
      (and, for a spec of no known form, listing the accepted forms).
  """
  spec = os.fspath(spec)
  scheme, sep, rest = spec.partition(":")
  if scheme in SCHEMES and (sep or scheme in ("skimage", "pydicom-data")):
    try:
      return SCHEMES[scheme](rest, split, data_dir, manual_dir)
    except (FileNotFoundError, ImportError) as e:  # Not installed, or no such bundled file.
      raise source.SourceError(str(e)) from e
  if not spec:
    raise source.SourceError(f"no image source given. A source is {describe()}")
  try:
    return image_files.listed(spec)
  except FileNotFoundError as e:
    raise source.SourceError(
        f"{spec!r} names no images: no such file or folder, and not a source spec. A source is "
        f"{describe()}") from e
