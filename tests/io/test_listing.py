"""The one listing rule (jaxsr.io.listing), and that training, evaluation, upscaling and the degrade
preview all use it: a .bmp, a DICOM without a suffix, gzipped PNM, hidden files, globs."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from jaxsr import degrade
from jaxsr import upscale
from jaxsr.data import image_files
from jaxsr.data import source
from jaxsr.data import source_specs
from jaxsr.evaluate import data as evaluate_data
from jaxsr.io import listing
from tests.io import fixture_images as fx

# Written by `tree`; what every command must list, in this order (relative POSIX paths, sorted).
IMAGES = ["IM0001", "a.bmp", "b/c.ppm.gz", "b/d.TIF", "b/e.dcm", "z.png"]
OTHERS = ["b/notes.txt", "readme"]


def tree(root: Path) -> Path:
  rng = np.random.default_rng(0)
  root.mkdir(parents=True, exist_ok=True)
  Image.fromarray(fx.random_image(rng, (6, 5, 3))).save(root / "a.bmp")
  fx.write(root / "b" / "c.ppm.gz", fx.pnm_bytes(fx.random_image(rng, (4, 3, 3))), gzipped=True)
  Image.fromarray(fx.random_image(rng, (5, 4))).save(root / "b" / "d.TIF")
  shutil.copy(get_testdata_file("CT_small.dcm"), root / "b" / "e.dcm")
  shutil.copy(get_testdata_file("CT_small.dcm"), root / "IM0001")  # DICOM by content alone.
  Image.fromarray(fx.random_image(rng, (3, 3, 3))).save(root / "z.png")
  (root / "b" / "notes.txt").write_text("not an image")
  (root / "readme").write_text("no suffix, not DICOM either" * 10)
  # Hidden files and folders are left out, whatever they hold.
  Image.fromarray(fx.random_image(rng, (3, 3, 3))).save(root / ".hidden.png")
  (root / ".cache").mkdir()
  Image.fromarray(fx.random_image(rng, (3, 3, 3))).save(root / ".cache" / "x.png")
  fx.write(root / "b" / "._c.ppm", b"macOS resource fork")
  return root


def relative(paths, root):
  return [Path(p).relative_to(root).as_posix() for p in paths]


def test_the_rule_by_suffix_and_content(tmp_path):
  root = tree(tmp_path / "data")
  for name in IMAGES:
    assert listing.is_image_file(root / name), name
  for name in OTHERS:
    assert not listing.is_image_file(root / name), name
  assert listing.has_image_suffix("x.PGM.gz") and listing.has_image_suffix("x.pnm")
  assert listing.has_image_suffix("x.dicom") and not listing.has_image_suffix("x.dcm.gz")
  assert not listing.has_image_suffix("x.gif") and not listing.has_image_suffix("x.gz")


def test_folder_and_glob_listings(tmp_path):
  root = tree(tmp_path / "data")
  found = listing.find_images(root)
  assert relative(found.files, root) == IMAGES
  assert relative(found.passed_over, root) == OTHERS
  by_glob = listing.find_images(f"{root}/**/*")
  assert by_glob.root == root and relative(by_glob.files, root) == IMAGES
  assert relative(listing.find_images(f"{root}/b/*").files, root) == IMAGES[2:5]
  assert relative(listing.find_images(root, exclude=root / "b").files, root) == ["IM0001",
                                                                                 "a.bmp", "z.png"]
  single = listing.find_images(root / "IM0001")
  assert single.files == [root / "IM0001"] and single.root == root
  assert listing.find_images(root / "readme").passed_over == [root / "readme"]
  with pytest.raises(FileNotFoundError, match="does not exist"):
    listing.find_images(root / "missing")
  with pytest.raises(ValueError, match="no image files"):
    listing.list_folder(_empty(tmp_path))


def _empty(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "notes.txt").write_text("x")
  return tmp_path / "empty"


def test_training_evaluation_and_upscaling_list_the_same_files(tmp_path):
  root = tree(tmp_path / "data")
  training = image_files.ImageFolder(root).paths
  evaluation = [Path(image.where) for image in evaluate_data.list_images(str(root))]
  jobs, passed_over = upscale.find_jobs(str(root), tmp_path / "out")
  upscaling = [job.source for job in jobs]
  glob_jobs, _ = upscale.find_jobs(f"{root}/**/*", tmp_path / "out")
  for paths in (training, evaluation, upscaling, [job.source for job in glob_jobs]):
    assert relative(paths, root) == IMAGES
  assert relative(passed_over, root) == OTHERS
  assert [image.name for image in evaluate_data.list_images(str(root))] == [
      "IM0001", "a", "c", "d", "e", "z"]
  # A glob and a folder name the same files for every command that takes a source spec.
  assert relative(source_specs.open_source(f"{root}/**/*").paths, root) == IMAGES
  # Upscaling never reads its own output folder back, also when it is inside INPUT.
  (root / "out").mkdir()
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "out" / "a.png")
  jobs, _ = upscale.find_jobs(str(root), root / "out")
  assert relative([job.source for job in jobs], root) == IMAGES
  # BMP and PNM are read, and written back as PNG (jaxsr writes PNG/TIFF/JPEG/DICOM).
  assert upscale.output_path(upscale.Job(root / "a.bmp", tmp_path / "o" / "a.bmp", False),
                             "png") == tmp_path / "o" / "a.png"
  assert upscale.output_path(upscale.Job(root / "b/c.ppm.gz", tmp_path / "o" / "c.ppm.gz",
                                         False), "png") == tmp_path / "o" / "c.png"


def test_a_named_file_that_is_not_an_image_is_refused_by_every_command(tmp_path, capsys):
  root = tree(tmp_path / "data")
  with pytest.raises(upscale.UsageError, match="not an image file"):
    upscale.find_jobs(str(root / "readme"), tmp_path / "out")
  with pytest.raises(source.SourceError, match="neither an image file"):
    evaluate_data.list_images(str(root / "readme"))
  with pytest.raises(source.SourceError, match="neither an image file"):
    source_specs.open_source(str(root / "readme"))  # Training and validation alike.
  assert degrade.main(["-i", str(root / "readme"), "-o", str(tmp_path / "pairs")]) == 1
  assert "neither an image file" in capsys.readouterr().err  # Training's own message.
  assert not (tmp_path / "pairs").exists()

