"""The real radiographs of pydicom-data through `python -m jaxsr.upscale`, end to end.

RG1_UNCR (chest CR, 1841 x 1955, MONOCHROME1, 15 bits stored) and RG3_UNCR (CR, 1760 x 1760,
MONOCHROME1, 10 bits) go through a tiny random x2 network in tiles, as a folder. Checked against
pydicom and NumPy: size, bit depth, photometric convention, spacing, identity and every other
element of the header; and pixel values in a region against the PyTorch network on the same
weights, mapped to stored values here.
"""

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from jaxsr import upscale as cli
from tests.upscale import reference

RADIOGRAPHS = ("RG1_UNCR.dcm", "RG3_UNCR.dcm")
# Elements a derived image is expected to change; every other one must be copied unchanged.
CHANGED = {"Rows", "Columns", "PixelData", "SOPInstanceUID", "ImageType", "DerivationDescription",
           "SourceImageSequence", "PixelSpacing", "ImagerPixelSpacing",
           "SeriesInstanceUID", "SeriesNumber", "SeriesDescription"}  # A new series.
# An output pixel of a one-block x2 RRDBNet depends on input pixels up to 38 away: 17 3x3 convs
# at half resolution after pixel-unshuffle (34, +1 for the 2x2 block), conv_up1 at input
# resolution (1) and conv_up2, conv_hr, conv_last at x2 (3/2).
RECEPTIVE_RADIUS_X2 = 38
TILE = 512


@pytest.fixture(scope="module")
def tiny_x2(tmp_path_factory):
  return reference.small_generator(tmp_path_factory.mktemp("tiny"), 2, seed=7, num_feat=4,
                                   num_grow_ch=4)


@pytest.mark.slow
def test_real_radiographs_keep_their_conventions(tiny_x2, tmp_path):
  net, model = tiny_x2
  study = tmp_path / "study"
  study.mkdir()
  # RG1 records PixelSpacing 0\0 (unknown) and RG3 none: give RG1 a chest plate's spacings so
  # that dividing them shows. RG3 goes in untouched.
  rg1 = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
  rg1.PixelSpacing, rg1.ImagerPixelSpacing = [0.15, 0.15], [0.168, 0.172]
  rg1.save_as(study / "RG1_UNCR.dcm")
  shutil.copy(get_testdata_file("RG3_UNCR.dcm"), study / "RG3_UNCR.dcm")

  assert cli.main(["-i", str(study), "-o", str(tmp_path / "x2"), "--model", str(model),
                   "--tile", str(TILE), "--batch", "2"]) == 0

  for name in RADIOGRAPHS:
    source, result = pydicom.dcmread(study / name), pydicom.dcmread(tmp_path / "x2" / name)
    assert (result.Rows, result.Columns) == (2 * source.Rows, 2 * source.Columns)
    for keyword in ("PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "SamplesPerPixel"):
      assert result[keyword].value == source[keyword].value, keyword
    assert result.PhotometricInterpretation == "MONOCHROME1"
    assert result.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert result.SOPInstanceUID != source.SOPInstanceUID
    assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
    assert result.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert list(result.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    for element in source:
      if element.keyword not in CHANGED:
        assert result[element.tag].value == element.value, element.keyword

    stored = source.pixel_array.astype(np.float64)
    out = result.pixel_array
    assert out.dtype == np.uint16 and out.max() < 2 ** source.BitsStored
    # A region well inside the first tile's core, where that tile alone counts and sees all
    # the context the network reaches: there the output is the whole-image network's.
    top, size, margin = 100, 100, RECEPTIVE_RADIUS_X2 + 22  # Even: pixel-unshuffle blocks.
    assert top - margin >= 0 and top + size + RECEPTIVE_RADIUS_X2 < TILE
    crop = stored[top - margin:top + size + margin, top - margin:top + size + margin]
    low, high = stored.min(), stored.max()
    shown = (1.0 - (crop - low) / (high - low)).astype(np.float32)  # MONOCHROME1: inverted.
    sr = reference.torch_sr_gray(net, shown)[2 * margin:-2 * margin, 2 * margin:-2 * margin]
    expected = np.round(low + (1.0 - sr) * (high - low))
    region = out[2 * top:2 * (top + size), 2 * top:2 * (top + size)]
    assert np.abs(region.astype(int) - expected).max() <= 1

  rg1_x2 = pydicom.dcmread(tmp_path / "x2" / "RG1_UNCR.dcm")
  assert [float(v) for v in rg1_x2.PixelSpacing] == [0.075, 0.075]
  assert [float(v) for v in rg1_x2.ImagerPixelSpacing] == [0.084, 0.086]
  rg3_x2 = pydicom.dcmread(tmp_path / "x2" / "RG3_UNCR.dcm")
  assert "PixelSpacing" not in rg3_x2 and "ImagerPixelSpacing" not in rg3_x2
