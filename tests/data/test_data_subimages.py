"""jaxsr.data.subimages: crop positions and contents, and the CLI's files."""

import numpy as np
import pytest

from jaxsr import io as jio
from jaxsr.data import subimages
from tests.io import fixture_images as fx


@pytest.mark.parametrize("length,thresh,expected", [
    (1000, 0, [0, 200, 400, 600]),  # 600 + 400 == 1000: nothing left over
    (1050, 0, [0, 200, 400, 600, 650]),  # 50 px left > 0: one crop flush with the edge
    (1050, 50, [0, 200, 400, 600]),  # 50 px left is not > 50
    (1050, 49, [0, 200, 400, 600, 650]),
    (599, 0, [0, 199]),
    (400, 0, [0]),
    (250, 0, [0]),  # shorter than a crop: kept whole
])
def test_crop_starts_with_crop_400_step_200(length, thresh, expected):
  assert subimages.crop_starts(length, 400, 200, thresh) == expected


def test_crops_are_numpy_slices_in_row_major_order():
  image = np.arange(700 * 1050, dtype=np.int32).reshape(700, 1050)
  crops = subimages.extract_subimages(image, crop_size=400, step=200, thresh_size=0)
  expected = [(t, l) for t in (0, 200, 300) for l in (0, 200, 400, 600, 650)]
  assert [(t, l) for t, l, _ in crops] == expected
  for top, left, crop in crops:
    assert crop.shape == (400, 400)
    np.testing.assert_array_equal(crop, image[top:top + 400, left:left + 400])


def test_cli_writes_numbered_png_crops_keeping_16bit_gray(tmp_path):
  rng = np.random.default_rng(3)
  xray = fx.random_image(rng, (60, 90), np.uint16)
  fundus = fx.random_image(rng, (50, 50, 3))
  fx.write(tmp_path / "in" / "chest.png", fx.png_bytes(xray))
  fx.write(tmp_path / "in" / "eye" / "im0001.ppm.gz", fx.pnm_bytes(fundus), gzipped=True)
  subimages.main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                  "--crop-size", "40", "--step", "20", "--workers", "2"])
  # 60 rows -> starts 0, 20; 90 columns -> 0, 20, 40, 50 (10 px left > 0).
  chest_offsets = [(t, l) for t in (0, 20) for l in (0, 20, 40, 50)]
  for number, (top, left) in enumerate(chest_offsets, start=1):
    crop = jio.read_samples(tmp_path / "out" / f"chest_s{number:03d}.png")
    assert crop.dtype == np.uint16
    np.testing.assert_array_equal(crop[..., 0], xray[top:top + 40, left:left + 40])
  eye_offsets = [(t, l) for t in (0, 10) for l in (0, 10)]
  for number, (top, left) in enumerate(eye_offsets, start=1):
    crop = jio.read_samples(tmp_path / "out" / "eye" / f"im0001_s{number:03d}.png")
    np.testing.assert_array_equal(crop, fundus[top:top + 40, left:left + 40])
  assert len(list((tmp_path / "out").rglob("*.png"))) == len(chest_offsets) + len(eye_offsets)
