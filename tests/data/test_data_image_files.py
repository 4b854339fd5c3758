"""jaxsr.data.image_files and source: listing, reading for training, corrupt and empty folders."""

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from jaxsr import io as jio
from jaxsr.data import image_files
from jaxsr.data import source
from jaxsr.data import source_specs
from tests.io import fixture_images as fx


def _tree(tmp_path):
  rng = np.random.default_rng(0)
  images = {
      "b/im0002.ppm.gz": fx.random_image(rng, (30, 40, 3)),
      "a/z_gray16.png": fx.random_image(rng, (30, 40), np.uint16),
      "a/rgba.png": fx.random_image(rng, (30, 40, 4)),
      "c.PNG": fx.random_image(rng, (5, 6, 3)),
  }
  for name, image in images.items():
    data = fx.pnm_bytes(image) if ".ppm" in name else fx.png_bytes(image)
    fx.write(tmp_path / name, data, gzipped=name.endswith(".gz"))
  fx.write(tmp_path / "a" / "notes.txt", b"not an image")
  fx.write(tmp_path / "a" / "._rgba.png", b"macOS resource fork")
  return images


def test_lists_recursively_in_sorted_order_and_ignores_other_files(tmp_path):
  _tree(tmp_path)
  listed = [p.relative_to(tmp_path).as_posix() for p in image_files.ImageFolder(tmp_path).paths]
  assert listed == ["a/rgba.png", "a/z_gray16.png", "b/im0002.ppm.gz", "c.PNG"]


def test_read_for_training_gives_uint16_without_alpha(tmp_path):
  images = _tree(tmp_path)
  src = image_files.ImageFolder(tmp_path)
  assert len(src) == 4
  by_name = {src.name(i).replace(str(tmp_path) + "/", ""): i for i in range(len(src))}
  rgba = src.read_for_training(by_name["a/rgba.png"], skip_corrupt=False)
  assert rgba.dtype == np.uint16
  np.testing.assert_array_equal(rgba, images["a/rgba.png"][..., :3].astype(np.uint16) * 257)
  gray = src.read_for_training(by_name["a/z_gray16.png"], skip_corrupt=False)
  np.testing.assert_array_equal(gray, images["a/z_gray16.png"][..., None])
  ppm = src.read_for_training(by_name["b/im0002.ppm.gz"], skip_corrupt=False)
  # x * 257 / 65535 is x / 255 exactly: 8-bit images lose nothing in the uint16 container.
  np.testing.assert_array_equal(ppm.astype(np.float32) / 65535,
                                images["b/im0002.ppm.gz"].astype(np.float32) / 255)


def test_corrupt_file_raises_naming_it_or_is_skipped_and_counted(tmp_path):
  _tree(tmp_path)
  fx.write(tmp_path / "a" / "broken.png", b"\x89PNG\r\n\x1a\n garbage")
  src = image_files.ImageFolder(tmp_path)
  broken = [i for i in range(len(src)) if src.name(i).endswith("broken.png")][0]
  with pytest.raises(jio.UnreadableImageError, match="broken.png"):
    src.read_for_training(broken, skip_corrupt=False)
  assert src.skipped == {}
  replacement = src.read_for_training(broken, skip_corrupt=True)
  np.testing.assert_array_equal(replacement, src.read_for_training(broken + 1, False))
  assert list(src.skipped) == [str(tmp_path / "a" / "broken.png")]
  src.read_for_training(broken, skip_corrupt=True)  # counted once, not per read
  assert len(src.skipped) == 1


def test_all_corrupt_fails_even_when_skipping(tmp_path):
  fx.write(tmp_path / "x.png", b"nope")
  with pytest.raises(jio.UnreadableImageError, match="no readable image"):
    image_files.ImageFolder(tmp_path).read_for_training(0, skip_corrupt=True)


def test_empty_or_missing_folder_fails_fast_naming_the_path(tmp_path):
  (tmp_path / "empty" / "sub").mkdir(parents=True)
  fx.write(tmp_path / "empty" / "sub" / "readme.txt", b"no images here")
  with pytest.raises(ValueError, match=str(tmp_path / "empty")):
    image_files.ImageFolder(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="does_not_exist"):
    image_files.ImageFolder(tmp_path / "does_not_exist")
  with pytest.raises(source.SourceError, match="does_not_exist.*no such file or folder"):
    source_specs.open_source(str(tmp_path / "does_not_exist"))
  with pytest.raises(source.SourceError, match="no image files under"):
    source_specs.open_source(str(tmp_path / "empty"))


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "CT_small.dcm"])
def test_dicom_files_train_as_a_viewer_shows_them_at_16_bits(tmp_path, name):
  # RG1: chest CR, MONOCHROME1 (inverted: bright = dense); CT_small: signed, with a rescale.
  shutil.copy(get_testdata_file(name), tmp_path / "scan.DCM")
  fx.write(tmp_path / "photo.png", fx.png_bytes(np.zeros((4, 5, 3), np.uint8)))
  src = image_files.ImageFolder(tmp_path)
  assert [p.name for p in src.paths] == ["photo.png", "scan.DCM"]
  read = src.read_for_training(1, skip_corrupt=False)

  ds = pydicom.dcmread(get_testdata_file(name))
  values = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
  shown = (values - values.min()) / (values.max() - values.min())
  if ds.PhotometricInterpretation == "MONOCHROME1":
    shown = 1.0 - shown
  assert read.dtype == np.uint16 and read.shape == ds.pixel_array.shape + (1,)
  assert np.abs(read[..., 0].astype(np.int64) - np.round(shown * 65535)).max() <= 1


def test_broken_dicom_raises_naming_it(tmp_path):
  data = open(get_testdata_file("RG3_UNCR.dcm"), "rb").read()
  fx.write(tmp_path / "cut.dcm", data[: len(data) // 2])
  with pytest.raises(jio.UnreadableImageError, match="cut.dcm"):
    image_files.ImageFolder(tmp_path).read_for_training(0, skip_corrupt=False)
