"""Image sources: files written in the test, plus the images bundled by installed packages."""

import numpy as np
import pytest
from PIL import Image

from jaxsr.evaluate import sources


def write_dicom(path, pixels, photometric, slope=1.0, intercept=0.0):
  """A 12-bit CR file with a rescale (shared with test_evaluate_data)."""
  pydicom = pytest.importorskip("pydicom")
  from pydicom.dataset import FileMetaDataset
  from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

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


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_read_dicom_applies_rescale_normalises_and_inverts_monochrome1(tmp_path, photometric):
  raw = np.random.default_rng(0).integers(100, 4000, size=(12, 10))
  path = tmp_path / "x.dcm"
  write_dicom(path, raw, photometric, slope=2.0, intercept=-50.0)
  image = sources.read_image(str(path))
  values = 2.0 * raw - 50.0
  expected = (values - values.min()) / (values.max() - values.min())
  if photometric == "MONOCHROME1":
    expected = 1.0 - expected
  assert image.shape == (12, 10, 3) and image.dtype == np.float32
  for c in range(3):
    np.testing.assert_allclose(image[..., c], expected, atol=1e-6)


def test_folder_images_reads_8_and_16_bit_gray_and_rgb_sorted(tmp_path):
  rng = np.random.default_rng(1)
  rgb = rng.integers(0, 256, size=(8, 9, 3), dtype=np.uint8)
  gray16 = rng.integers(0, 65536, size=(7, 5), dtype=np.uint16)
  gray8 = rng.integers(0, 256, size=(6, 6), dtype=np.uint8)
  Image.fromarray(rgb).save(tmp_path / "b_rgb.png")
  Image.fromarray(gray16).save(tmp_path / "a_gray16.png")
  Image.fromarray(gray8).save(tmp_path / "c_gray8.tif")
  (tmp_path / "notes.txt").write_text("not an image")
  images = dict(sources.folder_images(str(tmp_path)))
  assert list(images) == ["a_gray16", "b_rgb", "c_gray8"]
  np.testing.assert_allclose(images["b_rgb"], rgb / 255.0, atol=1e-7)
  np.testing.assert_allclose(images["a_gray16"], np.repeat(gray16[..., None] / 65535.0, 3, -1),
                             atol=1e-7)
  np.testing.assert_allclose(images["c_gray8"], np.repeat(gray8[..., None] / 255.0, 3, -1),
                             atol=1e-7)
  assert len(list(sources.folder_images(str(tmp_path), limit=2))) == 2
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError):
    list(sources.folder_images(str(empty)))


def test_bundled_scikit_image_fundus_images():
  pytest.importorskip("skimage")
  images = dict(sources.skimage_images())
  assert images["retina"].shape == (1411, 1411, 3)
  assert images["microaneurysms"].shape == (102, 102, 3)
  for image in images.values():
    assert image.dtype == np.float32 and 0.0 <= image.min() and image.max() <= 1.0


def test_pydicom_data_radiographs():
  pytest.importorskip("pydicom")
  from pydicom.data import get_testdata_file

  if get_testdata_file("RG1_UNCR.dcm", download=False) is None:
    pytest.skip("pydicom-data is not installed")
  images = dict(sources.dicom_images())
  assert images["RG1_UNCR"].shape == (1955, 1841, 3)
  assert images["RG3_UNCR"].shape == (1760, 1760, 3)
  for image in images.values():
    assert image.min() == 0.0 and image.max() == 1.0
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
