"""Figures: region picking against brute force, and the PNG that comes out."""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from jaxsr.evaluate import figures  # noqa: E402


def test_window_sums_match_brute_force():
  values = np.random.default_rng(0).random((9, 11))
  sums = figures._window_sums(values, 4)
  expected = np.array([[values[i:i + 4, j:j + 4].sum() for j in range(8)] for i in range(6)])
  np.testing.assert_allclose(sums, expected)


def _flat_with_texture(texture_at, size=96, patch=24, amplitude=0.2, seed=0):
  rng = np.random.default_rng(seed)
  image = np.full((size, size, 3), 0.5)
  top, left = texture_at
  image[top:top + patch, left:left + patch] += amplitude * rng.standard_normal((patch, patch, 3))
  return np.clip(image, 0, 1)


def test_pick_region_finds_the_textured_patch_on_the_scale_grid():
  image = _flat_with_texture((40, 52))
  top, left, size = figures.pick_region(image, 24, multiple_of=4)
  assert size == 24 and top % 4 == 0 and left % 4 == 0
  assert abs(top - 40) <= 4 and abs(left - 52) <= 4


def test_pick_region_prefers_fine_texture_over_one_strong_edge():
  image = _flat_with_texture((60, 60), amplitude=0.05)
  image[:, :20] = 1.0  # One strong vertical edge at x = 20, like a collimator border.
  top, left, _ = figures.pick_region(image, 24)
  assert abs(top - 60) <= 4 and abs(left - 60) <= 4
  # Without the cap the edge wins: the cap is what makes the difference.
  _, left, _ = figures.pick_region(image, 24, cap_quantile=1.0)
  assert 20 - 24 <= left <= 20


def test_pick_region_avoids_dark_background():
  image = _flat_with_texture((60, 60))
  # Dark-and-bright speckle: more gradient energy than the texture, but on dark background.
  image[4:28, 4:28] = np.random.default_rng(1).integers(0, 2, (24, 24, 1)) * 0.8
  top, left, _ = figures.pick_region(image, 24)
  assert abs(top - 60) <= 4 and abs(left - 60) <= 4
  top, left, _ = figures.pick_region(image, 24, dark_threshold=-1.0)
  assert abs(top - 4) <= 4 and abs(left - 4) <= 4


def test_comparison_figure_writes_a_png_of_the_requested_size(tmp_path):
  rng = np.random.default_rng(2)
  gt = rng.random((64, 48, 3))
  lr = gt[::4, ::4]
  rows = [figures.ComparisonRow("a", lr, {"bicubic": gt * 0.9, "model": gt}, gt,
                                captions={"model": "30.00 dB / 0.9000"}),
          figures.ComparisonRow("b", lr, {"bicubic": gt, "model": gt}, gt, region=(8, 4, 16))]
  path = tmp_path / "figure.png"
  regions = figures.comparison_figure(rows, str(path), scale=4, panel_inches=1.0, dpi=50)
  assert regions[1] == (8, 4, 16)
  top, left, size = regions[0]
  assert top % 4 == 0 and left % 4 == 0 and size == 8  # min(64, 48) // 6 = 8, a multiple of 4.
  with Image.open(path) as image:
    # 4 columns (LR, 2 models, GT) x 2 images x 2 rows of 1-inch panels at 50 dpi.
    assert image.size == (200, 200)
    pixels = np.asarray(image.convert("RGB"))
  assert (pixels[..., 0] > 200).any() and (pixels.std() > 10)  # Red outlines and real content.
