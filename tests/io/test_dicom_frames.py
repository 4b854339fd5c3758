"""Multi-frame DICOM in and out: MR series, enhanced CT functional groups, colour, multi-page TIFF.

Real multi-frame files from pydicom-data: emri_small (Enhanced MR, 10 frames of 64x64, 12 bits;
also stored as RLE, JPEG 2000 and JPEG-LS lossless), eCT_Supplemental (Enhanced CT, 2 frames,
rescale and pixel spacing only in the functional groups) and SC_rgb_2frame (colour). Expected values are
computed here from pydicom's pixel_array with NumPy; the "network" is nearest-neighbour x2.
"""

import copy
import os

import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from jaxsr import io as jio
from tests.io.test_dicom import (SERIES, assert_derived_from, assert_other_elements_kept,
                                         nearest_x2)

FRAME_CHANGED = {"Rows", "Columns", "PixelData", "SOPInstanceUID", "ImageType",
                 "DerivationDescription", "SourceImageSequence", "SharedFunctionalGroupsSequence",
                 "PerFrameFunctionalGroupsSequence"} | SERIES


def upscale_frames(frames):
  return (frame.with_pixels(nearest_x2(frame.pixels)) for frame in frames)


def test_mr_series_frames_share_one_mapping_and_round_trip_exactly(tmp_path):
  source = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
  stored = source.pixel_array  # (10, 64, 64)
  frames = jio.read_frames(get_testdata_file("emri_small.dcm"))

  assert len(frames) == 10
  low, high = stored.min(), stored.max()  # "data" range over the whole series.
  for i, frame in enumerate(frames):
    assert frame.dicom.frame == i and frame.bit_depth == 16
    np.testing.assert_allclose(frame.pixels[..., 0], (stored[i] - low) / (high - low), atol=1e-7)

  jio.write_frames(tmp_path / "x2.dcm", upscale_frames(frames), len(frames),
                       description="nearest x2")
  written = pydicom.dcmread(tmp_path / "x2.dcm")
  assert int(written.NumberOfFrames) == 10 and (written.Rows, written.Columns) == (128, 128)
  np.testing.assert_array_equal(written.pixel_array,
                                np.stack([nearest_x2(frame) for frame in stored]))
  assert_derived_from(source, written, "nearest x2")
  assert_other_elements_kept(source, written, FRAME_CHANGED)


@pytest.mark.parametrize("name", ["emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm",
                                  "emri_small_jpeg_ls_lossless.dcm"])
def test_compressed_series_read_like_the_uncompressed_one(tmp_path, name):
  plain = jio.read_frames(get_testdata_file("emri_small.dcm"))
  frames = jio.read_frames(get_testdata_file(name))
  assert len(frames) == len(plain)
  for frame, reference in zip(frames, plain):
    np.testing.assert_array_equal(frame.pixels, reference.pixels)
  jio.write_frames(tmp_path / "x2.dcm", upscale_frames(frames), len(frames))
  written = pydicom.dcmread(tmp_path / "x2.dcm")
  assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian  # Written uncompressed.
  expected = pydicom.dcmread(get_testdata_file("emri_small.dcm")).pixel_array
  np.testing.assert_array_equal(written.pixel_array,
                                np.stack([nearest_x2(frame) for frame in expected]))


def test_enhanced_ct_rescale_window_and_spacing_come_from_the_functional_groups(tmp_path):
  path = get_testdata_file("eCT_Supplemental.dcm")
  source = pydicom.dcmread(path)
  assert "RescaleIntercept" not in source and "PixelSpacing" not in source  # Only in groups.
  shared = source.SharedFunctionalGroupsSequence[0]
  transform = shared.PixelValueTransformationSequence[0]
  voi = shared.FrameVOILUTSequence[0]
  hounsfield = source.pixel_array * float(transform.RescaleSlope) + float(
      transform.RescaleIntercept)

  # The window of the functional groups (PS3.3 C.11.2.1.2.1, LINEAR) maps to [0, 1].
  center, width = float(voi.WindowCenter), float(voi.WindowWidth)
  low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
  windowed = jio.read_frames(path, dicom_range="window")
  for i, frame in enumerate(windowed):
    np.testing.assert_allclose(frame.pixels[..., 0],
                               np.clip((hounsfield[i] - low) / (high - low), 0, 1), atol=1e-6)

  frames = jio.read_frames(path)  # "data": exact round trip of the stored values.
  jio.write_frames(tmp_path / "x2.dcm", upscale_frames(frames), len(frames))
  written = pydicom.dcmread(tmp_path / "x2.dcm")
  np.testing.assert_array_equal(written.pixel_array,
                                np.stack([nearest_x2(frame) for frame in source.pixel_array]))
  spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
  groups = list(written.SharedFunctionalGroupsSequence) + list(
      written.PerFrameFunctionalGroupsSequence)
  measures = [m for g in groups for m in g.get("PixelMeasuresSequence") or []]
  assert measures
  for m in measures:
    np.testing.assert_allclose([float(v) for v in m.PixelSpacing], np.divide(spacing, 2),
                               rtol=1e-6)


def test_a_frame_rescaled_in_its_own_functional_group(tmp_path):
  # The same series with a different slope and intercept per frame: each frame's own group wins
  # over the shared one and the top level, on reading and on writing back.
  source = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
  source.RescaleSlope, source.RescaleIntercept = 5, 5  # Must be ignored for these frames.
  shared = pydicom.Dataset()
  shared.PixelValueTransformationSequence = [pydicom.Dataset()]
  shared.PixelValueTransformationSequence[0].RescaleSlope = 7
  shared.PixelValueTransformationSequence[0].RescaleIntercept = 7
  source.SharedFunctionalGroupsSequence = [shared]
  per_frame = []
  for i in range(10):
    transform = pydicom.Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = 0.5 * (i + 1), -100 * i
    group = pydicom.Dataset()
    group.PixelValueTransformationSequence = [transform]
    per_frame.append(group)
  source.PerFrameFunctionalGroupsSequence = per_frame
  source.save_as(tmp_path / "rescaled.dcm")

  stored = source.pixel_array
  values = np.stack([stored[i] * 0.5 * (i + 1) - 100 * i for i in range(10)])
  frames = jio.read_frames(tmp_path / "rescaled.dcm")
  for i, frame in enumerate(frames):
    np.testing.assert_allclose(frame.pixels[..., 0],
                               (values[i] - values.min()) / (values.max() - values.min()),
                               atol=1e-7)
  jio.write_frames(tmp_path / "x2.dcm", upscale_frames(frames), len(frames))
  np.testing.assert_array_equal(pydicom.dcmread(tmp_path / "x2.dcm").pixel_array,
                                np.stack([nearest_x2(frame) for frame in stored]))


def test_colour_frames(tmp_path):
  source = pydicom.dcmread(get_testdata_file("SC_rgb_2frame.dcm"))
  frames = jio.read_frames(get_testdata_file("SC_rgb_2frame.dcm"))
  assert [f.mode for f in frames] == ["RGB", "RGB"]
  jio.write_frames(tmp_path / "x2.dcm", upscale_frames(frames), 2)
  written = pydicom.dcmread(tmp_path / "x2.dcm")
  assert written.PhotometricInterpretation == "RGB" and int(written.NumberOfFrames) == 2
  np.testing.assert_array_equal(written.pixel_array,
                                np.stack([nearest_x2(frame) for frame in source.pixel_array]))


def test_frames_as_a_multi_page_tiff(tmp_path):
  frames = jio.read_frames(get_testdata_file("emri_small.dcm"))
  jio.write_frames(tmp_path / "x2.tif", upscale_frames(frames), len(frames))
  with tifffile.TiffFile(tmp_path / "x2.tif") as tiff:
    assert len(tiff.pages) == 10
    pages = np.stack([page.asarray() for page in tiff.pages])
  assert pages.dtype == np.uint16 and pages.shape == (10, 128, 128)
  expected = np.stack([nearest_x2(f.pixels[..., 0]) for f in frames])
  np.testing.assert_array_equal(pages, np.rint(expected.astype(np.float64) * 65535))


def test_frames_refused_where_they_cannot_go(tmp_path):
  frames = jio.read_frames(get_testdata_file("emri_small.dcm"))
  with pytest.raises(jio.UnsupportedImageError, match="read_frames"):
    jio.read_image(get_testdata_file("emri_small.dcm"))
  with pytest.raises(ValueError, match="multi-frame DICOM or a multi-page TIFF"):
    jio.write_frames(tmp_path / "x2.png", upscale_frames(frames), len(frames))
  with pytest.raises(ValueError, match="write_frames"):
    jio.write_image(tmp_path / "one.dcm", frames[3])
  with pytest.raises(ValueError, match="expected 10 frames, got 9"):
    jio.write_frames(tmp_path / "short.dcm", upscale_frames(frames[:9]), 10)
  with pytest.raises(ValueError, match="expected 9 frames, got more"):
    jio.write_frames(tmp_path / "long.dcm", upscale_frames(frames), 9)
  with pytest.raises(ValueError, match="frame 9 came where frame 0 belongs"):
    jio.write_frames(tmp_path / "order.dcm", upscale_frames(frames[::-1]), 10)
  other = copy.copy(frames[1])  # Same frame index, another source's dataset.
  object.__setattr__(other, "dicom", copy.copy(frames[1].dicom))
  object.__setattr__(other.dicom, "dataset", copy.deepcopy(frames[1].dicom.dataset))
  with pytest.raises(ValueError, match="does not belong"):
    jio.write_frames(tmp_path / "mixed.dcm", upscale_frames([frames[0], other]), 2)
  assert os.listdir(tmp_path) == []
