"""One DICOM file, the same pixels in every command (issue: RG1_UNCR scored 44.5 dB bicubic as a
folder and 36.7 dB as pydicom-data:RG1_UNCR.dcm, two intensity mappings for one file).

pydicom-data's RG1_UNCR.dcm (chest CR, MONOCHROME1, 15 bits stored) is named by every source spec
that can name it (`jaxsr.data.source_specs`: `pydicom-data:RG1_UNCR.dcm`, its path, a folder
holding it, also under a bare name, a glob, and `bundled:heldout`) and read by training, by
validation and evaluation, from bytes (as TFDS records are), by upscaling (what
`python -m jaxsr.upscale` lists and reads); the degrade preview is training's own stream (tested
in tests/degradation/test_cli.py). Evaluation, validation and
upscaling see the same float32 pixels; training keeps them at 16 bits, round(x * 65535), the
nearest 16-bit level of the very same values.
"""

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from jaxsr import io as jio
from jaxsr import upscale
from jaxsr.data import source_specs
from jaxsr.evaluate import data as evaluate_data
from jaxsr.train import validation


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

  # Every spec naming the file, through the one registry: (spec, index of RG1 in that source).
  specs = [(str(study), 0), (str(study), 1), (str(study / "RG1_UNCR.dcm"), 0),
           (f"{study}/IM*", 0), ("pydicom-data:RG1_UNCR.dcm", 0), ("pydicom-data", 0),
           ("bundled:heldout", 2)]
  sources = [(source_specs.open_source(spec), index) for spec, index in specs]
  assert sources[-1][0].name(2) == "RG1_UNCR.dcm"

  # Evaluation and validation: float32, exactly upscaling's pixels.
  rgb = np.repeat(pixels, 3, axis=2)
  for source, index in sources:
    np.testing.assert_array_equal(source.read_float(index), rgb, err_msg=source.location)
  by_folder = [image.load() for image in evaluate_data.list_images(str(study))]
  by_name = evaluate_data.list_images("pydicom-data:RG1_UNCR.dcm")[0].load()
  by_bundled = [image.load() for image in evaluate_data.list_images("bundled:heldout")
                if image.name == "RG1_UNCR.dcm"]
  for evaluated in by_folder + [by_name] + by_bundled:
    np.testing.assert_array_equal(evaluated, rgb)
  validated = {name: image for name, image, _ in validation.held_out_images("bundled:heldout", 8)}
  np.testing.assert_array_equal(validated["RG1_UNCR.dcm"], rgb)

  # Training: 16 bits, whichever spec names the file; also from the bytes of a TFDS record.
  sixteen_bit = np.round(pixels * 65535.0).astype(np.uint16)
  assert [p.name for p in sources[0][0].paths] == ["IM0001", "RG1_UNCR.dcm"]
  for source, index in sources:
    trained = source.read_for_training(index, skip_corrupt=False)
    assert trained.dtype == np.uint16
    np.testing.assert_array_equal(trained, sixteen_bit, err_msg=source.location)
  np.testing.assert_array_equal(jio.decode_samples(open(rg1, "rb").read(), name="RG1"),
                                sixteen_bit)
  assert np.abs(sixteen_bit / 65535.0 - pixels).max() <= 0.5 / 65535 + 1e-7
