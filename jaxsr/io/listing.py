"""The one rule for which files are images, used by training, evaluation, upscaling and the degrade
preview alike.

A file is an image file when
  * its name ends in an image suffix, case-insensitively: .png .tif .tiff .jpg .jpeg .bmp .pgm
    .ppm .pnm, each optionally followed by .gz, or .dcm .dicom; or
  * its content is a DICOM Part 10 file (a 128-byte preamble, then b"DICM"): DICOM files often
    have bare names (IM0001, a UID).
Only files without an image suffix are opened to be sniffed. A suffix decides listing only:
reading goes by content (`jaxsr.io.files`), so a mis-named file fails with a clear error.

A spec names
  * a file: that file, if it is an image file (also when its name is hidden);
  * a folder: every image file under it, recursively, leaving out hidden files and folders
    (a name starting with "."; e.g. macOS `._im0001.ppm` resource forks, `.git`);
  * a glob (`*`, `?`, `[`; `**` recurses): every image file it matches (glob itself leaves out
    hidden names unless the pattern spells them).
Files are sorted by their path relative to the folder (a glob: its leading folders without
wildcards), as POSIX strings, so the order never depends on the file system. `exclude` leaves out
everything under a folder (upscaling's own output folder, so earlier results are not read back).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

from jaxsr.io import formats

WILDCARDS = "*?["


@dataclasses.dataclass(frozen=True)
class Listing:
  """The files a spec names.

  Attributes:
    root: the folder `files` are relative to (the folder, a glob's fixed leading folders, or a
      file's parent).
    files: the image files, sorted.
    passed_over: the other (visible) files the folder or glob holds, sorted; a named file that
      is not an image file is here too.
  """
  root: Path
  files: list[Path]
  passed_over: list[Path]


def describe() -> str:
  """The rule in words, for messages."""
  return (f"{', '.join(formats.RASTER_SUFFIXES)} (each optionally .gz), "
          f"{', '.join(formats.DICOM_SUFFIXES)}, or DICOM by content")


def has_image_suffix(path: str | os.PathLike) -> bool:
  """The name ends in an image suffix (see the module docstring)."""
  name = Path(path).name.lower()
  if name.endswith(formats.DICOM_SUFFIXES):
    return True
  if name.endswith(formats.GZIP_SUFFIX):
    name = name[:-len(formats.GZIP_SUFFIX)]
  return name.endswith(formats.RASTER_SUFFIXES)


def is_image_file(path: str | os.PathLike) -> bool:
  """An existing file that the rule counts as an image (suffix, or DICOM content)."""
  path = Path(path)
  return path.is_file() and (has_image_suffix(path) or _sniffs_as_dicom(path))


def is_hidden(path: Path, root: Path) -> bool:
  """Any part of `path` below `root` starts with "."."""
  return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_images(spec: str | os.PathLike, *, exclude: str | os.PathLike | None = None) -> Listing:
  """The image files `spec` (a file, a folder or a glob) names; see the module docstring.

  Raises:
    FileNotFoundError: `spec` is neither an existing file or folder nor a glob pattern.
  """
  spec = os.fspath(spec)
  path = Path(spec)
  if path.is_file():
    image = is_image_file(path)
    return Listing(path.parent, [path] if image else [], [] if image else [path])
  if path.is_dir():
    root = path
    found = [p for p in path.rglob("*") if p.is_file() and not is_hidden(p, path)]
  elif any(c in spec for c in WILDCARDS):
    root = glob_root(spec)
    found = [Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
  else:
    raise FileNotFoundError(f"{spec} does not exist (and is not a glob pattern)")
  if exclude is not None:
    found = [p for p in found if not is_inside(p, Path(exclude))]
  found.sort(key=lambda p: _relative(p, root))
  files, passed_over = [], []
  for p in found:
    (files if has_image_suffix(p) or _sniffs_as_dicom(p) else passed_over).append(p)
  return Listing(root, files, passed_over)


def list_folder(root: str | os.PathLike) -> list[Path]:
  """Every image file under the folder `root` (recursively, sorted): training's folder source.

  Raises:
    FileNotFoundError: `root` is not a directory.
    ValueError: it holds no image file; both messages name the path looked at.
  """
  root = Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
  files = find_images(root).files
  if not files:
    raise ValueError(f"no image files under {root.resolve()} (looked recursively for "
                     f"{describe()})")
  return files


def glob_root(pattern: str) -> Path:
  """The folder a glob's matches are relative to: its leading parts without wildcards."""
  fixed = []
  for part in Path(pattern).parts[:-1]:
    if any(c in part for c in WILDCARDS):
      break
    fixed.append(part)
  return Path(*fixed)


def is_inside(path: Path, folder: Path) -> bool:
  return folder.resolve() in path.resolve().parents


def _relative(path: Path, root: Path) -> str:
  try:
    return path.relative_to(root).as_posix()
  except ValueError:  # A glob's match outside its fixed folders (e.g. through "..").
    return path.as_posix()


def _sniffs_as_dicom(path: Path) -> bool:
  try:
    with open(path, "rb") as f:
      return formats.is_dicom_head(f.read(formats.HEAD_BYTES))
  except OSError:
    return False
