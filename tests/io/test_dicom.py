"""DICOM in and out: modality rescale, MONOCHROME1/2, bit depth, spacing, provenance, errors.

Generated fixtures (built with pydicom in each test) and the real radiographs shipped with
pydicom-data (RG1_UNCR: chest CR, MONOCHROME1, 15 bits stored; RG3_UNCR: CR, 10 bits) and
pydicom (CT_small: signed CT with a rescale). Expected values are computed here with NumPy or
pydicom's own LUT functions; the "network" is nearest-neighbour x2 in NumPy.
"""

import os

import numpy as np
import PIL.Image
import pydicom
import pydicom.pixels
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from jaxsr import io as jio

# The series a derived image is put in (a new one of the same study, unless keep_series).
SERIES = {"SeriesInstanceUID", "SeriesNumber", "SeriesDescription"}
# Elements a derived image is expected to change; everything else must be copied unchanged.
CHANGED = {"Rows", "Columns", "PixelData", "SOPInstanceUID", "ImageType", "DerivationDescription",
           "SourceImageSequence", "PixelSpacing", "ImagerPixelSpacing", "SmallestImagePixelValue",
           "LargestImagePixelValue"} | SERIES
COLOUR_CHANGED = CHANGED | {"PhotometricInterpretation", "PlanarConfiguration"}


def nearest_x2(a: np.ndarray) -> np.ndarray:
  return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def write_fixture(path, stored, *, photometric="MONOCHROME2", bits_stored=12, slope=None,
                  intercept=None, window=None, series=None):
  """A single-frame CT-like DICOM file with `stored` (int16 or uint16) as its pixel data.

  `series`: {keyword: value} of series elements (default: a new SeriesInstanceUID alone).
  """
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = CTImageStorage
  meta.MediaStorageSOPInstanceUID = generate_uid()
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
  ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
  ds.PatientName, ds.PatientID, ds.Modality = "Test^Patient", "P-0001", "CT"
  ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
  ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
  ds.Rows, ds.Columns = stored.shape
  ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
  ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
  ds.PixelRepresentation = int(stored.dtype == np.int16)
  ds.PixelSpacing, ds.ImagerPixelSpacing = [0.2, 0.3], [0.25, 0.5]
  ds.SmallestImagePixelValue = int(stored.min())
  if slope is not None:
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
  if window is not None:
    ds.WindowCenter, ds.WindowWidth = window
  for keyword, value in (series or {}).items():
    setattr(ds, keyword, value)
  block = ds.private_block(0x0009, "JAXSR TEST", create=True)
  block.add_new(0x01, "LO", "kept as is")
  ds.PixelData = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
  ds.save_as(path, enforce_file_format=True)


def assert_other_elements_kept(source, written, changed=CHANGED):
  def kept(ds):
    # Group lengths (gggg,0000; retired) are left to pydicom, which recomputes or drops them.
    return {element.tag: element.value for element in ds
            if element.keyword not in changed and element.tag.element != 0}
  assert kept(written) == kept(source)
  assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def assert_derived_from(source, written, description):
  assert list(written.ImageType)[:2] == ["DERIVED", "SECONDARY"]
  assert list(written.ImageType)[2:] == list(source.ImageType)[2:]
  assert written.DerivationDescription == description
  assert written.SOPInstanceUID != source.SOPInstanceUID
  assert written.SOPInstanceUID.is_valid
  assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
  (reference,) = written.SourceImageSequence
  assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
  assert reference.ReferencedSOPClassUID == source.SOPClassUID
  # A new series of the same study, described (without a series description) by `description`.
  assert written.StudyInstanceUID == source.StudyInstanceUID
  assert written.SeriesInstanceUID != source.SeriesInstanceUID
  assert written.SeriesInstanceUID.is_valid
  assert written.SeriesNumber == int(source.get("SeriesNumber") or 0) + 1000
  assert written.SeriesDescription == description[:64]


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("dtype,bits,slope,intercept", [
    (np.uint16, 12, None, None),
    (np.int16, 16, 2.5, -1024.0),
])
def test_generated_monochrome_round_trip(tmp_path, photometric, dtype, bits, slope, intercept):
  rng = np.random.default_rng(0)
  low, high = (0, 4095) if dtype == np.uint16 else (-900, 2000)
  stored = rng.integers(low, high + 1, (12, 9)).astype(dtype)
  write_fixture(tmp_path / "in.dcm", stored, photometric=photometric, bits_stored=bits,
                slope=slope, intercept=intercept)

  image = jio.read_image(tmp_path / "in.dcm")
  # The network sees modality values, min..max -> 0..1, white = high (MONOCHROME2).
  values = stored * (slope or 1.0) + (intercept or 0.0)
  seen = (values - values.min()) / (values.max() - values.min())
  if photometric == "MONOCHROME1":
    seen = 1.0 - seen
  assert image.mode == "L" and image.bit_depth == 16 and image.source_format == "dicom"
  np.testing.assert_allclose(image.pixels[..., 0], seen, atol=1e-6)

  # A "network" that also changes contrast, so the inverse mapping is exercised.
  result = 0.25 + 0.5 * nearest_x2(image.pixels)
  jio.write_image(tmp_path / "out.dcm", image.with_pixels(result), description="test x2")
  written = pydicom.dcmread(tmp_path / "out.dcm")
  shown = result[..., 0].astype(np.float64)
  if photometric == "MONOCHROME1":
    shown = 1.0 - shown
  modality = values.min() + shown * (values.max() - values.min())
  expected = np.rint((modality - (intercept or 0.0)) / (slope or 1.0))
  assert written.pixel_array.dtype == dtype
  np.testing.assert_array_equal(written.pixel_array, expected)

  source = pydicom.dcmread(tmp_path / "in.dcm")
  assert (written.Rows, written.Columns) == (24, 18)
  assert written.PhotometricInterpretation == photometric
  for keyword in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                  "RescaleSlope", "RescaleIntercept"):
    assert written.get(keyword) == source.get(keyword)
  np.testing.assert_allclose([float(v) for v in written.PixelSpacing], [0.1, 0.15])
  np.testing.assert_allclose([float(v) for v in written.ImagerPixelSpacing], [0.125, 0.25])
  assert "SmallestImagePixelValue" not in written  # It described the old pixels.
  assert_derived_from(source, written, "test x2")
  assert_other_elements_kept(source, written)


def test_identity_round_trip_is_exact_in_every_range(tmp_path):
  stored = np.random.default_rng(1).integers(100, 3000, (10, 10)).astype(np.uint16)
  write_fixture(tmp_path / "in.dcm", stored, photometric="MONOCHROME1", slope=0.5,
                intercept=-100.0, window=(700, 1000))
  for intensity_range in jio.DICOM_RANGES:
    image = jio.read_image(tmp_path / "in.dcm", dicom_range=intensity_range)
    out = tmp_path / f"{intensity_range}.dcm"
    jio.write_image(out, image.with_pixels(nearest_x2(image.pixels)))
    expected = nearest_x2(stored)
    if intensity_range == "window":  # Values outside the window come back as its ends.
      window_ends = (np.array([700 - 0.5 - 999 / 2, 700 - 0.5 + 999 / 2]) + 100.0) / 0.5
      expected = np.clip(expected, *window_ends)
    np.testing.assert_allclose(pydicom.dcmread(out).pixel_array, expected, atol=0.5)


@pytest.mark.parametrize("name", ["RG3_UNCR.dcm", "MR_small.dcm"])
def test_window_range_matches_pydicom_voi_lut(name):
  source = pydicom.dcmread(get_testdata_file(name))
  windowed = pydicom.pixels.apply_voi_lut(
      pydicom.pixels.apply_modality_lut(source.pixel_array, source), source)
  # pydicom maps the window onto the stored value range.
  bits = source.BitsStored
  low = -(2 ** (bits - 1)) if source.PixelRepresentation else 0
  expected = (windowed - low) / (2 ** bits - 1)
  if source.PhotometricInterpretation == "MONOCHROME1":
    expected = 1.0 - expected
  image = jio.read_image(get_testdata_file(name), dicom_range="window")
  np.testing.assert_allclose(image.pixels[..., 0], expected, atol=1e-6)


@pytest.mark.parametrize("name,bits", [("RG1_UNCR.dcm", 15), ("RG3_UNCR.dcm", 10)])
def test_real_radiographs_round_trip(tmp_path, name, bits):
  path = get_testdata_file(name)
  source = pydicom.dcmread(path)
  stored = source.pixel_array
  assert source.PhotometricInterpretation == "MONOCHROME1" and source.BitsStored == bits

  image = jio.read_image(path)
  # As a viewer shows it: dense (low stored MONOCHROME1 values) is white.
  seen = 1.0 - (stored - stored.min()) / (stored.max() - stored.min())
  np.testing.assert_allclose(image.pixels[..., 0], seen, atol=1e-6)

  upscaled = image.with_pixels(nearest_x2(image.pixels))
  jio.write_image(tmp_path / "out.dcm", upscaled)
  written = pydicom.dcmread(tmp_path / "out.dcm")
  assert written.PhotometricInterpretation == "MONOCHROME1"
  assert (written.Rows, written.Columns) == (2 * source.Rows, 2 * source.Columns)
  assert (written.BitsAllocated, written.BitsStored) == (16, bits)
  assert written.pixel_array.dtype == np.uint16
  np.testing.assert_array_equal(written.pixel_array, nearest_x2(stored))
  assert len(np.unique(written.pixel_array)) > 256
  if "PixelSpacing" in source:
    np.testing.assert_allclose([float(v) for v in written.PixelSpacing],
                               [float(v) / 2 for v in source.PixelSpacing])
  assert_derived_from(source, written, "Super-resolved by jaxsr (Real-ESRGAN)")
  assert_other_elements_kept(source, written)

  # Or as a 16-bit gray PNG for a non-DICOM viewer, in the displayed (MONOCHROME2) convention.
  jio.write_image(tmp_path / "out.png", upscaled)
  with PIL.Image.open(tmp_path / "out.png") as png:
    assert png.mode == "I;16"
    difference = np.abs(np.asarray(png) - np.rint(nearest_x2(seen) * 65535))
  # Quantised in float32: a value within float32 rounding of a .5 tie may land one level off.
  assert difference.max() <= 1 and difference.mean() < 1e-2


def test_signed_ct_with_rescale_and_spacing(tmp_path):
  path = get_testdata_file("CT_small.dcm")
  source = pydicom.dcmread(path)
  image = jio.read_image(path, dicom_range="bits")
  hounsfield = source.pixel_array * 1.0 - 1024.0
  np.testing.assert_allclose(image.pixels[..., 0], (hounsfield + 32768 + 1024) / 65535,
                             atol=1e-6)
  jio.write_image(tmp_path / "out.dcm", image.with_pixels(nearest_x2(image.pixels)))
  written = pydicom.dcmread(tmp_path / "out.dcm")
  assert written.pixel_array.dtype == np.int16
  np.testing.assert_array_equal(written.pixel_array, nearest_x2(source.pixel_array))
  np.testing.assert_allclose([float(v) for v in written.PixelSpacing], [0.330734, 0.330734])
  assert_other_elements_kept(source, written)


def test_compressed_source_is_written_uncompressed(tmp_path):
  compressed = get_testdata_file("MR_small_jp2klossless.dcm")
  plain = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
  image = jio.read_image(compressed)
  jio.write_image(tmp_path / "out.dcm", image.with_pixels(nearest_x2(image.pixels)))
  written = pydicom.dcmread(tmp_path / "out.dcm")
  assert pydicom.dcmread(compressed).file_meta.TransferSyntaxUID.is_compressed
  assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
  np.testing.assert_array_equal(written.pixel_array, nearest_x2(plain))


@pytest.mark.parametrize("compressed,plain", [
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS, signed 16-bit MR.
    ("MR_small_RLE.dcm", "MR_small.dcm"),
])
def test_lossless_codecs_read_like_the_uncompressed_file(compressed, plain):
  image = jio.read_image(get_testdata_file(compressed))
  np.testing.assert_array_equal(image.pixels, jio.read_image(get_testdata_file(plain)).pixels)


def test_jpeg_lossless_radiograph_reads_like_the_uncompressed_one(tmp_path):
  # Archived CR/DX images are usually JPEG Lossless (process 14). Compress the real RG3 with
  # GDCM's encoder and read both: the pixels must be the same.
  import gdcm  # pylint: disable=import-outside-toplevel

  source = get_testdata_file("RG3_UNCR.dcm")
  reader = gdcm.ImageReader()
  reader.SetFileName(source)
  assert reader.Read()
  change = gdcm.ImageChangeTransferSyntax()
  change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
  change.SetInput(reader.GetImage())
  assert change.Change()
  writer = gdcm.ImageWriter()
  writer.SetFile(reader.GetFile())
  writer.SetImage(change.GetOutput())
  writer.SetFileName(str(tmp_path / "rg3_jpeg_lossless.dcm"))
  assert writer.Write()
  compressed = pydicom.dcmread(tmp_path / "rg3_jpeg_lossless.dcm")
  assert compressed.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLosslessSV1

  image = jio.read_image(tmp_path / "rg3_jpeg_lossless.dcm")
  np.testing.assert_array_equal(image.pixels, jio.read_image(source).pixels)
  jio.write_image(tmp_path / "out.dcm", image.with_pixels(nearest_x2(image.pixels)))
  written = pydicom.dcmread(tmp_path / "out.dcm")
  assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
  np.testing.assert_array_equal(written.pixel_array,
                                nearest_x2(pydicom.dcmread(source).pixel_array))


@pytest.mark.parametrize("name,bits", [("color-pl.dcm", 8), ("SC_rgb_16bit.dcm", 16)])
def test_colour_round_trip(tmp_path, name, bits):
  source = pydicom.dcmread(get_testdata_file(name))
  image = jio.read_image(get_testdata_file(name))
  assert image.mode == "RGB" and image.bit_depth == bits
  np.testing.assert_allclose(image.pixels, source.pixel_array / (2 ** bits - 1), atol=1e-7)
  jio.write_image(tmp_path / "out.dcm", image.with_pixels(nearest_x2(image.pixels)))
  written = pydicom.dcmread(tmp_path / "out.dcm")
  assert written.PhotometricInterpretation == "RGB" and written.PlanarConfiguration == 0
  np.testing.assert_array_equal(written.pixel_array, nearest_x2(source.pixel_array))
  assert_other_elements_kept(source, written, COLOUR_CHANGED)


@pytest.mark.parametrize("name,error,cause", [
    ("MR_truncated.dcm", jio.UnreadableImageError, "less than expected"),
    ("JPEG2000-embedded-sequence-delimiter.dcm", jio.UnreadableImageError, "cannot decode"),
    ("emri_small_jpeg_2k_lossless_too_short.dcm", jio.UnreadableImageError, "no pixel data"),
    ("emri_small_jpeg_2k_lossless.dcm", jio.UnsupportedImageError, "multi-frame"),
    ("OBXXXX1A_rle.dcm", jio.UnsupportedImageError, "PALETTE COLOR"),
])
@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_bad_dicom_files_raise_a_named_error_and_write_nothing(tmp_path, name, error, cause):
  path = get_testdata_file(name)
  assert path is not None, f"{name} is missing from pydicom / pydicom-data"
  with pytest.raises(error, match=cause) as raised:
    image = jio.read_image(path)
    jio.write_image(tmp_path / "out.dcm", image)
  assert name in str(raised.value)
  assert os.listdir(tmp_path) == []


def test_truncated_copy_of_a_real_radiograph(tmp_path):
  data = open(get_testdata_file("RG3_UNCR.dcm"), "rb").read()
  (tmp_path / "cut.dcm").write_bytes(data[:len(data) // 2])
  with pytest.raises(jio.UnreadableImageError, match="cut.dcm"):
    jio.read_image(tmp_path / "cut.dcm")


def test_window_range_needs_a_window():
  with pytest.raises(jio.UnsupportedImageError, match="WindowCenter"):
    jio.read_image(get_testdata_file("CT_small.dcm"), dicom_range="window")


def test_big_endian_source_reads_but_is_not_written_as_dicom(tmp_path):
  image = jio.read_image(get_testdata_file("SC_rgb_expb_16bit.dcm"))
  twin = pydicom.dcmread(get_testdata_file("SC_rgb_16bit.dcm")).pixel_array
  np.testing.assert_allclose(image.pixels, twin / 65535, atol=1e-7)
  with pytest.raises(ValueError, match="big-endian"):
    jio.write_image(tmp_path / "out.dcm", image)
  jio.write_image(tmp_path / "out.png", image)  # PNG/TIFF remain possible.
  assert os.listdir(tmp_path) == ["out.png"]


def test_derived_images_go_in_a_new_series_of_the_same_study(tmp_path):
  # Two slices of one CT series, written one file at a time (as `python -m jaxsr.upscale` does
  # for a folder): both land in one new series, numbered after the source's and described by
  # the model and the scale. Another derivation of the same series gets a series of its own.
  study, series = generate_uid(), generate_uid()
  source_series = {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SeriesNumber": 3,
                   "SeriesDescription": "CHEST 1.0 B30f"}
  rng = np.random.default_rng(11)
  written = []
  for index in range(2):
    path = tmp_path / f"slice{index}.dcm"
    write_fixture(path, rng.integers(0, 4000, (8, 6)).astype(np.uint16), series=source_series)
    image = jio.read_image(path)
    out = tmp_path / f"slice{index}_x2.dcm"
    jio.write_image(out, image.with_pixels(nearest_x2(image.pixels)),
                        description="Super-resolved x2", series_description="jaxsr x2 x4plus")
    written.append(pydicom.dcmread(out))
  first, second = written
  assert first.SeriesInstanceUID == second.SeriesInstanceUID != series
  assert first.SeriesInstanceUID.is_valid
  assert first.StudyInstanceUID == second.StudyInstanceUID == study
  assert (first.SeriesNumber, first.SeriesDescription) == (1003, "jaxsr x2 x4plus")
  assert first.SOPInstanceUID != second.SOPInstanceUID
  assert first.DerivationDescription == "Super-resolved x2"

  image = jio.read_image(tmp_path / "slice0.dcm")
  jio.write_image(tmp_path / "other.dcm", image.with_pixels(nearest_x2(image.pixels)),
                      series_description="jaxsr x2 another model")
  other = pydicom.dcmread(tmp_path / "other.dcm")
  assert other.SeriesInstanceUID not in (series, first.SeriesInstanceUID)


def test_keep_series_leaves_the_source_series(tmp_path):
  series = {"SeriesInstanceUID": generate_uid(), "SeriesNumber": 7, "SeriesDescription": "PA"}
  write_fixture(tmp_path / "in.dcm", np.arange(48, dtype=np.uint16).reshape(8, 6), series=series)
  image = jio.read_image(tmp_path / "in.dcm")
  jio.write_image(tmp_path / "out.dcm", image.with_pixels(nearest_x2(image.pixels)),
                      series_description="jaxsr x2 x4plus", keep_series=True)
  written = pydicom.dcmread(tmp_path / "out.dcm")
  assert {k: written[k].value for k in SERIES} == series
  assert written.SOPInstanceUID != pydicom.dcmread(tmp_path / "in.dcm").SOPInstanceUID


def test_series_without_a_number_and_a_long_description(tmp_path):
  write_fixture(tmp_path / "in.dcm", np.arange(48, dtype=np.uint16).reshape(8, 6))
  image = jio.read_image(tmp_path / "in.dcm")
  long_name = "jaxsr x4 " + "a_fine_tuned_generator_with_a_very_long_name" * 2
  jio.write_image(tmp_path / "out.dcm", image.with_pixels(nearest_x2(image.pixels)),
                      series_description=long_name)
  written = pydicom.dcmread(tmp_path / "out.dcm")
  assert written.SeriesNumber == 1000
  assert written.SeriesDescription == long_name[:64]  # LO holds 64 characters.
