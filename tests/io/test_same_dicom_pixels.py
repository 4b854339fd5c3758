"""One DICOM file, the same pixels in every command (issue: RG1_UNCR scored 44.5 dB bicubic as a
folder and 36.7 dB as pydicom-data:RG1_UNCR.dcm, two intensity mappings for one file).

pydicom-data's RG1_UNCR.dcm (chest CR, MONOCHROME1, 15 bits stored) is read by training (a
folder source, also under a bare name; and from bytes, as TFDS records are), by evaluation (a
folder, a file and `pydicom-data:`), by upscaling (what `python -m jaxsr.upscale` lists and
reads) and by the degrade preview. Evaluation and upscaling see the same float32 pixels; training
keeps them at 16 bits, round(x * 65535), the nearest 16-bit level of the very same values.
"""

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from jaxsr import degrade
from jaxsr import io as jio
from jaxsr import upscale
from jaxsr.data import folder
from jaxsr.evaluate import data as evaluate_data


@pytest.fixture(scope="module")
def rg1():
  path = get_testdata_file("RG1_UNCR.dcm", download=False)
  if path is None:
    pytest.skip("pydicom-data is not installed")
  return path


def test_training_evaluation_and_upscaling_read_rg1_alike(rg1, tmp_path):
  study = tmp_path / "study"
  study.mkdir()
  shutil.copy(rg1, study / "RG1_UNCR.dcm")
  shutil.copy(rg1, study / "IM0001")  # The same file without a suffix: found by content.

  # Upscaling: the files the CLI lists, read as it reads them (default --dicom-range).
  args = upscale.parse_args(["-i", str(study), "-o", str(tmp_path / "out"), "--model", "m"])
  jobs, _ = upscale.find_jobs(args.input, args.output)
  assert [job.source.name for job in jobs] == ["IM0001", "RG1_UNCR.dcm"]
  upscaled = [jio.read_frames(job.source, dicom_range=args.dicom_range) for job in jobs]
  assert all(len(frames) == 1 for frames in upscaled)
  pixels = upscaled[1][0].pixels
  np.testing.assert_array_equal(upscaled[0][0].pixels, pixels)

  # Independently: pydicom's stored values, MONOCHROME1 inverted, scaled to the image's range.
  ds = pydicom.dcmread(rg1)
  assert ds.PhotometricInterpretation == "MONOCHROME1"
  stored = ds.pixel_array.astype(np.float64)
  expected = (stored.max() - stored) / (stored.max() - stored.min())
  assert pixels.shape == stored.shape + (1,) and pixels.dtype == np.float32
  np.testing.assert_allclose(pixels[..., 0], expected, atol=1e-6)

  # Evaluation: a folder (both files), a file, and pydicom-data:RG1_UNCR.dcm.
  rgb = np.repeat(pixels, 3, axis=2)
  by_folder = [image.load() for image in evaluate_data.list_images(str(study))]
  by_file = evaluate_data.list_images(str(study / "RG1_UNCR.dcm"))[0].load()
  by_name = evaluate_data.list_images("pydicom-data:RG1_UNCR.dcm")[0].load()
  for evaluated in by_folder + [by_file, by_name]:
    np.testing.assert_array_equal(evaluated, rgb)

  # Training: the folder source (both files), and the bytes of a TFDS record.
  source = folder.ImageFolder(study)
  sixteen_bit = np.round(pixels * 65535.0).astype(np.uint16)
  assert [p.name for p in source.paths] == ["IM0001", "RG1_UNCR.dcm"]
  for index in range(2):
    trained = source.read_for_training(index, skip_corrupt=False)
    assert trained.dtype == np.uint16
    np.testing.assert_array_equal(trained, sixteen_bit)
  np.testing.assert_array_equal(jio.decode_samples(open(rg1, "rb").read(), name="RG1"),
                                sixteen_bit)
  assert np.abs(sixteen_bit / 65535.0 - pixels).max() <= 0.5 / 65535 + 1e-7

  # The degrade preview reads what training reads.
  np.testing.assert_array_equal(degrade.read_rgb(study / "IM0001"),
                                np.repeat(sixteen_bit, 3, axis=2) / np.float32(65535))
