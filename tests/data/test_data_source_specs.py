"""The one source-spec grammar (jaxsr.data.source_specs): every form, what each consumer gets from
it, and one clear error for a spec that names nothing.

Training (`input_pipeline`, tested in test_data_input_pipeline), validation and evaluation open
their data through `open_source`; the same file gives the same pixels whichever spec names it
(tests/io/test_same_dicom_pixels.py for pydicom-data's RG1).
"""

import gzip
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from jaxsr.data import bundled
from jaxsr.data import source
from jaxsr.data import source_specs
from jaxsr.evaluate import data as evaluate_data
from jaxsr.train import validation


def write_dicom(path, pixels, photometric, slope=1.0, intercept=0.0):
  """A 12-bit CR file with a rescale, written with pydicom (shared with test_evaluate_data)."""
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
  meta.MediaStorageSOPInstanceUID = generate_uid()
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = pydicom.Dataset()
  ds.file_meta = meta
  ds.SOPClassUID = meta.MediaStorageSOPClassUID
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.Modality = "CR"
  ds.Rows, ds.Columns = pixels.shape
  ds.SamplesPerPixel = 1
  ds.PhotometricInterpretation = photometric
  ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
  ds.PixelRepresentation = 0
  ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
  ds.PixelData = pixels.astype(np.uint16).tobytes()
  ds.save_as(path, enforce_file_format=True)


def _all_float(images):
  return {images.short_name(i): images.read_float(i) for i in images.stable_order()}


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_a_dicom_file_reads_with_its_rescale_normalised_and_monochrome1_inverted(
    tmp_path, photometric):
  raw = np.random.default_rng(0).integers(100, 4000, size=(12, 10))
  path = tmp_path / "x.dcm"
  write_dicom(path, raw, photometric, slope=2.0, intercept=-50.0)
  image = source_specs.open_source(str(path)).read_float(0)
  values = 2.0 * raw - 50.0
  expected = (values - values.min()) / (values.max() - values.min())
  if photometric == "MONOCHROME1":
    expected = 1.0 - expected
  assert image.shape == (12, 10, 3) and image.dtype == np.float32
  for c in range(3):
    np.testing.assert_allclose(image[..., c], expected, atol=1e-6)


def test_a_folder_reads_8_and_16_bit_gray_and_rgb_sorted_recursively(tmp_path):
  rng = np.random.default_rng(1)
  rgb = rng.integers(0, 256, size=(8, 9, 3), dtype=np.uint8)
  gray16 = rng.integers(0, 65536, size=(7, 5), dtype=np.uint16)
  gray8 = rng.integers(0, 256, size=(6, 6), dtype=np.uint8)
  Image.fromarray(rgb).save(tmp_path / "b_rgb.png")
  Image.fromarray(gray8).save(tmp_path / "c_gray8.tif")
  (tmp_path / "sub").mkdir()
  buffer = io.BytesIO()
  Image.fromarray(gray16).save(buffer, format="PNG")
  (tmp_path / "sub" / "a_gray16.png.gz").write_bytes(gzip.compress(buffer.getvalue()))
  (tmp_path / "notes.txt").write_text("not an image")
  Image.fromarray(rgb).save(tmp_path / ".hidden.png")

  images = source_specs.open_source(str(tmp_path))
  assert [images.name(i) for i in range(len(images))] == [
      str(tmp_path / "b_rgb.png"), str(tmp_path / "c_gray8.tif"),
      str(tmp_path / "sub" / "a_gray16.png.gz")]
  read = _all_float(images)
  assert list(read) == ["b_rgb", "c_gray8", "a_gray16"]
  np.testing.assert_array_equal(read["b_rgb"], rgb / np.float32(255))
  np.testing.assert_array_equal(read["a_gray16"],
                                np.repeat(gray16[..., None] / np.float32(65535), 3, -1))
  np.testing.assert_array_equal(read["c_gray8"],
                                np.repeat(gray8[..., None] / np.float32(255), 3, -1))
  # Training's samples of the same files: their own depth and channels.
  assert images.read(2).dtype == np.uint16 and images.read(2).shape == (7, 5, 1)


def test_packaged_files_by_name_with_their_defaults():
  fundus = source_specs.open_source("skimage")
  assert [fundus.name(i) for i in range(len(fundus))] == ["skimage:retina.jpg",
                                                         "skimage:microaneurysms.png"]
  assert [fundus.short_name(i) for i in range(len(fundus))] == ["retina", "microaneurysms"]
  read = _all_float(fundus)
  assert read["retina"].shape == (1411, 1411, 3) and read["microaneurysms"].shape == (102, 102, 3)
  for image in read.values():
    assert image.dtype == np.float32 and 0.0 <= image.min() and image.max() <= 1.0
  one = source_specs.open_source("skimage:microaneurysms.png")
  assert len(one) == 1 and one.where(0) == "skimage:microaneurysms.png"
  np.testing.assert_array_equal(one.read_float(0), read["microaneurysms"])

  radiographs = source_specs.open_source("pydicom-data")
  assert [radiographs.short_name(i) for i in range(2)] == ["RG1_UNCR", "RG3_UNCR"]
  assert radiographs.read(0).shape == (1955, 1841, 1) and radiographs.read(1).shape == (
      1760, 1760, 1)
  assert source_specs.open_source("pydicom-data:CT_small.dcm, MR_small.dcm").paths == [
      bundled.pydicom_data_path("CT_small.dcm"), bundled.pydicom_data_path("MR_small.dcm")]


def test_bundled_splits_keep_their_names_and_protocols():
  heldout = source_specs.open_source("bundled:heldout")
  names = ["retina.jpg[bottom]", "microaneurysms.png", "RG1_UNCR.dcm"]
  assert [heldout.name(i) for i in range(3)] == names
  assert [heldout.short_name(i) for i in range(3)] == names  # The study's table rows.
  assert heldout.protocol(2) == "chest-x4"
  # A whole packaged file is that file; a part of one is cut from the same samples.
  np.testing.assert_array_equal(
      heldout.read_float(1), source_specs.open_source("skimage:microaneurysms.png").read_float(0))
  retina = source_specs.open_source("skimage:retina.jpg").read(0)
  bottom = heldout.read(0)
  assert bottom.shape[0] == bottom.shape[1] and bottom.shape[0] < retina.shape[0]
  np.testing.assert_array_equal(heldout.read_float(0), bottom / np.float32(255))
  assert len(source_specs.open_source("bundled:train")) == 5
  # Named images of a split, in the order named: the same images as in the whole split.
  chosen = source_specs.open_source("bundled:heldout:RG1_UNCR.dcm, retina.jpg[bottom]")
  assert len(chosen) == 2 and [chosen.name(i) for i in range(2)] == [names[2], names[0]]
  assert [chosen.protocol(i) for i in range(2)] == ["chest-x4", "retina-x2"]
  np.testing.assert_array_equal(chosen.read(1), bottom)
  np.testing.assert_array_equal(chosen.read_float(0), heldout.read_float(2))
  assert chosen.where(1) == heldout.where(0)
  assert chosen.location.startswith("bundled:heldout:RG1_UNCR.dcm,retina.jpg[bottom] ")


def test_validation_and_evaluation_open_any_spec(tmp_path):
  # validation.data=skimage:retina.jpg used to fail: training and validation knew only
  # bundled:, tfds: and folders.
  ((name, image, protocol),) = list(validation.held_out_images("skimage:retina.jpg", 8))
  assert (name, protocol) == ("skimage:retina.jpg", None)
  np.testing.assert_array_equal(image, source_specs.open_source("skimage:retina.jpg").read_float(0))
  first_two = [name for name, _, _ in validation.held_out_images("bundled:heldout", 2)]
  assert first_two == ["retina.jpg[bottom]", "microaneurysms.png"]
  # evaluate --data bundled:heldout used to fail: evaluation knew no bundled:.
  listed = evaluate_data.list_images("bundled:heldout")
  assert [(i.name, i.where) for i in listed][1:] == [
      ("microaneurysms.png", "bundled:heldout microaneurysms.png"),
      ("RG1_UNCR.dcm", "bundled:heldout RG1_UNCR.dcm")]
  # ... and --data could not pick the held-out part of retina.jpg without its neighbours.
  listed = evaluate_data.list_images("bundled:heldout:retina.jpg[bottom],microaneurysms.png")
  assert [i.name for i in listed] == ["retina.jpg[bottom]", "microaneurysms.png"]


@pytest.mark.parametrize("spec, message", [
    ("nope:retina.jpg", "'nope:retina.jpg' names no images: no such file or folder"),
    ("{tmp}/missing", "missing' names no images: no such file or folder"),
    ("bundled", "'bundled' names no images"),
    ("", "no image source given"),
    ("bundled:test", "bundled:test: no such split; .* bundled:train, bundled:heldout"),
    ("bundled:heldout:RG1_UNCR.dcm,retina.jpg[top]",
     r"bundled:heldout has no image 'retina.jpg\[top\]'; it has retina.jpg\[bottom\], "
     "microaneurysms.png, RG1_UNCR.dcm"),
    ("tfds:", "tfds: needs a builder name"),
    ("skimage:nope.png", "skimage:nope.png: no such file in this scikit-image install"),
    ("pydicom-data:nope.dcm", "pydicom-data:nope.dcm: not installed"),
    ("{tmp}/notes.txt", "neither an image file nor a DICOM file"),
    ("{tmp}/empty", "no image files under"),
    ("{tmp}/*.jpg", r"no image files match .*\*.jpg"),
])
def test_a_bad_spec_is_one_source_error_saying_what_was_looked_for(tmp_path, spec, message):
  (tmp_path / "notes.txt").write_text("x")
  (tmp_path / "empty").mkdir()
  with pytest.raises(source.SourceError, match=message) as raised:
    source_specs.open_source(spec.format(tmp=tmp_path))
  if "names no images" in message or "no image source" in message:  # A spec of no known form.
    for form in ("tfds:NAME[/CONFIG]", "bundled:train|heldout[:NAME,...]", "skimage[:NAME,...]",
                 "pydicom-data[:NAME,...]", "a folder or a glob"):
      assert form in str(raised.value)


def test_an_unknown_tfds_name_is_a_source_error():
  with pytest.raises(source.SourceError, match="tfds:no_such_set: no such TFDS data set"):
    source_specs.open_source("tfds:no_such_set")


def test_same_pixels_for_a_file_in_every_spec_that_names_it(tmp_path):
  # A 16-bit PNG and a DICOM: a file, a folder, a glob; what training and evaluation read.
  rng = np.random.default_rng(3)
  gray16 = rng.integers(0, 65536, (9, 7), dtype=np.uint16)
  Image.fromarray(gray16).save(tmp_path / "a.png")
  raw = rng.integers(100, 4000, (6, 5))
  write_dicom(tmp_path / "b.dcm", raw, "MONOCHROME1")
  ct = get_testdata_file("CT_small.dcm", download=False)
  (tmp_path / "c.dcm").write_bytes(open(ct, "rb").read())
  folder = source_specs.open_source(str(tmp_path))
  by_glob = source_specs.open_source(f"{tmp_path}/*")
  by_package = source_specs.open_source("pydicom-data:CT_small.dcm")
  for index, name in enumerate(["a.png", "b.dcm", "c.dcm"]):
    single = source_specs.open_source(str(tmp_path / name))
    for other, other_index in ((folder, index), (by_glob, index)) + (
        ((by_package, 0),) if name == "c.dcm" else ()):
      np.testing.assert_array_equal(single.read(0), other.read(other_index), err_msg=name)
      np.testing.assert_array_equal(single.read_float(0), other.read_float(other_index),
                                    err_msg=name)
