"""`--data` specs (jaxsr.data.source_specs) as evaluation lists them: folders with images and DICOM,
bundled sets, TFDS builders, subset draws."""

import gzip
import io
import json

import numpy as np
import pytest
from PIL import Image

from jaxsr.data import image_files
from jaxsr.data import source
from jaxsr.evaluate import data
from tests.data.test_data_source_specs import write_dicom


def test_folder_lists_images_and_bare_named_dicom_recursively_and_reads_them(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
  gray16 = rng.integers(0, 65536, (4, 7), dtype=np.uint16)
  raw = rng.integers(100, 4000, (5, 6))
  Image.fromarray(rgb).save(tmp_path / "b.png")
  (tmp_path / "sub").mkdir()
  buffer = io.BytesIO()
  Image.fromarray(gray16).save(buffer, format="PNG")
  (tmp_path / "sub" / "c.png.gz").write_bytes(gzip.compress(buffer.getvalue()))
  write_dicom(tmp_path / "IM0001", raw, "MONOCHROME2")
  (tmp_path / "notes.txt").write_text("not an image")
  Image.fromarray(rgb).save(tmp_path / ".hidden.png")

  images = data.list_images(str(tmp_path))
  assert [image.name for image in images] == ["IM0001", "b", "c"]
  dicom, png, png16 = (image.load() for image in images)
  expected = (raw - raw.min()) / (raw.max() - raw.min())
  np.testing.assert_allclose(dicom, np.repeat(expected[..., None], 3, -1), atol=1e-6)
  np.testing.assert_array_equal(png, rgb / np.float32(255))
  np.testing.assert_allclose(png16, np.repeat(gray16[..., None], 3, -1) / 65535, atol=1e-7)
  # A single file works too.
  assert [image.name for image in data.list_images(str(tmp_path / "IM0001"))] == ["IM0001"]


@pytest.mark.parametrize("spec, message", [
    ("tfds:", "needs a builder name"),
    ("skimage:nope.png", "skimage:nope.png: no such file"),
    ("pydicom-data:nope.dcm", "pydicom-data:nope.dcm: not installed"),
    ("{tmp}/notes.txt", "neither an image file"),
    ("{tmp}/empty", "no image files under"),
    ("{tmp}/missing", "no such file or folder"),
])
def test_bad_specs_raise_source_error_naming_the_problem(tmp_path, spec, message):
  (tmp_path / "notes.txt").write_text("x")
  (tmp_path / "empty").mkdir()
  with pytest.raises(source.SourceError, match=message):
    data.list_images(spec.format(tmp=tmp_path))


def test_bundled_sets_list_their_files_by_default():
  assert [i.name for i in data.list_images("skimage")] == ["retina", "microaneurysms"]
  assert [(i.name, i.where) for i in data.list_images("skimage:retina.jpg")] == [
      ("retina", "skimage:retina.jpg")]
  assert [i.name for i in data.list_images("pydicom-data")] == ["RG1_UNCR", "RG3_UNCR"]
  assert [i.name for i in data.list_images("bundled:heldout")] == [
      "retina.jpg[bottom]", "microaneurysms.png", "RG1_UNCR.dcm"]


def test_select_draws_a_seeded_subset_in_listed_order_and_names_must_be_unique():
  images = [data.LazyImage(f"im{i}", f"/x/im{i}.png", lambda: None) for i in range(10)]
  assert data.select(images, None, 0) == images and data.select(images, 20, 0) == images
  drawn = data.select(images, 4, seed=7)
  chosen = sorted(np.random.default_rng(7).choice(10, size=4, replace=False))
  assert [image.name for image in drawn] == [f"im{i}" for i in chosen]
  assert data.select(images, 4, seed=8) != drawn
  with pytest.raises(data.DataError, match="two images are named 'im1'"):
    data.check_unique(images + [data.LazyImage("im1", "/y/im1.png", lambda: None)])


def test_image_list_crops_the_center_and_has_a_length():
  image = np.arange(7 * 9 * 3, dtype=np.float32).reshape(7, 9, 3)
  images = data.ImageList([data.LazyImage("a", "a", lambda: image)], crop=4)
  assert len(images) == 1
  ((name, crop),) = list(images)
  assert name == "a"
  np.testing.assert_array_equal(crop, image[1:5, 2:6])


def test_tfds_builder_is_prepared_from_manual_dir_and_read_through_the_cli(tmp_path, capsys):
  from jaxsr.evaluate import __main__ as cli

  rng = np.random.default_rng(2)
  (tmp_path / "manual" / "images").mkdir(parents=True)
  pixels = {}
  for i in range(3):
    pixels[f"0000000{i}_000"] = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(pixels[f"0000000{i}_000"]).save(
        tmp_path / "manual" / "images" / f"0000000{i}_000.png")
  out = tmp_path / "out"
  argv = ["--protocol", "custom", "--scale", "2", "--data", "tfds:nih_chest_xray14/all",
          "--data-dir", str(tmp_path / "tfds"), "--max-images", "2", "--seed", "1",
          "--lpips", "none", "--figure-images", "0", "--quiet", "-o", str(out)]
  assert cli.main(argv) == 2  # Not prepared, and no --manual-dir to prepare it from.
  assert "--manual-dir" in capsys.readouterr().err
  (tmp_path / "wrong").mkdir()
  assert cli.main(argv + ["--manual-dir", str(tmp_path / "wrong")]) == 2
  assert "is missing or empty" in capsys.readouterr().err
  (tmp_path / "wrong" / "README.txt").write_text("not the download")
  assert cli.main(argv + ["--manual-dir", str(tmp_path / "wrong")]) == 2
  assert "cannot prepare from --manual-dir" in capsys.readouterr().err
  assert cli.main(argv + ["--manual-dir", str(tmp_path / "manual")]) == 0

  summary = json.loads((out / "summary.json").read_text())
  chosen = sorted(np.random.default_rng(1).choice(3, size=2, replace=False))
  assert summary["images"] == [sorted(pixels)[i] for i in chosen]
  assert summary["data"]["n_listed"] == 3 and summary["models"] == ["bicubic"]
  assert all("tfds:nih_chest_xray14/all split test" in where
             for where in summary["data"]["images"].values())


def test_a_dicom_file_gets_the_same_pixels_as_a_folder_a_file_and_pydicom_data(tmp_path):
  # A .dcm in a folder used to be read by the raster decoder (no rescale, no MONOCHROME1
  # inversion): RG1 scored 44.5 dB bicubic as a folder and 36.7 dB as pydicom-data:RG1_UNCR.dcm.
  import pydicom
  from pydicom.data import get_testdata_file

  rg1 = get_testdata_file("RG1_UNCR.dcm", download=False)
  (tmp_path / "study").mkdir()
  (tmp_path / "study" / "RG1_UNCR.dcm").write_bytes(open(rg1, "rb").read())
  by_name = data.list_images("pydicom-data:RG1_UNCR.dcm")[0].load()
  by_folder = data.list_images(str(tmp_path / "study"))[0].load()
  by_file = data.list_images(str(tmp_path / "study" / "RG1_UNCR.dcm"))[0].load()
  np.testing.assert_array_equal(by_folder, by_name)
  np.testing.assert_array_equal(by_file, by_name)
  # Independently: pydicom's stored values, MONOCHROME1 inverted, scaled to the image's range.
  stored = pydicom.dcmread(rg1).pixel_array.astype(np.float64)
  expected = (stored.max() - stored) / (stored.max() - stored.min())
  np.testing.assert_allclose(by_name[..., 0], expected, atol=1e-6)
  # Training reads the same file to the same intensities (kept at 16 bits).
  training = image_files.ImageFolder(tmp_path / "study").read(0)[..., 0] / 65535
  np.testing.assert_allclose(training, expected, atol=0.5 / 65535 + 1e-7)
