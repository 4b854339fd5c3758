"""python -m jaxsr.degrade on generated image files."""

import numpy as np
import pytest
from PIL import Image

from jaxsr import degrade


def write_gray16(path, height, width):
  rows, cols = np.mgrid[0:height, 0:width]
  values = (30000 + 20000 * np.sin(rows / 9.0) * np.cos(cols / 13.0)).astype(np.uint16)
  Image.fromarray(values).save(path)  # Pillow writes uint16 arrays as 16-bit gray PNG
  return values


def test_writes_pairs_and_contact_sheet_from_a_small_16bit_gray_image(tmp_path):
  source = tmp_path / "xray.png"
  values = write_gray16(source, 300, 260)  # smaller than the 400 window: padded
  assert Image.open(source).mode.startswith("I")
  out = tmp_path / "pairs"
  assert degrade.main(["-i", str(source), "-o", str(out), "-n", "2", "--seed", "3"]) == 0

  names = sorted(p.name for p in out.iterdir())
  assert names == ["0000_gt.png", "0000_lq.png", "0001_gt.png", "0001_lq.png",
                   "contact_sheet.png"]
  lq = np.asarray(Image.open(out / "0000_lq.png"))
  gt = np.asarray(Image.open(out / "0000_gt.png"))
  assert lq.shape == (64, 64, 3) and lq.dtype == np.uint8
  assert gt.shape == (256, 256, 3)
  # Gray in, gray out: the channels of the GT are equal and its values are the 16-bit input's
  # levels mapped to 8 bits.
  np.testing.assert_array_equal(gt[..., 0], gt[..., 2])
  eight_bit = set(np.unique(np.round(values / 65535 * 255).astype(np.uint8)))
  assert set(np.unique(gt)) <= eight_bit

  sheet = np.asarray(Image.open(out / "contact_sheet.png"))
  assert sheet.shape == (2 * 256, 2 * 256, 3)
  np.testing.assert_array_equal(sheet[:256, 256:], gt)
  np.testing.assert_array_equal(sheet[:256:4, :256:4], lq)  # nearest-neighbour enlargement

  # Same seed, same pairs.
  again = tmp_path / "again"
  degrade.main(["-i", str(source), "-o", str(again), "-n", "1", "--seed", "3"])
  np.testing.assert_array_equal(np.asarray(Image.open(again / "0000_lq.png")), lq)


def test_scale_2_on_an_rgb_jpeg(tmp_path):
  source = tmp_path / "fundus.jpg"
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (420, 450, 3), dtype=np.uint8)).save(source)
  out = tmp_path / "x2"
  assert degrade.main(["-i", str(source), "-o", str(out), "-n", "1", "--scale", "2"]) == 0
  assert np.asarray(Image.open(out / "0000_lq.png")).shape == (128, 128, 3)


def test_unreadable_input_exits_non_zero(tmp_path, capsys):
  bad = tmp_path / "broken.png"
  bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
  assert degrade.main(["-i", str(bad), "-o", str(tmp_path / "o")]) == 1
  assert "cannot read" in capsys.readouterr().err
  assert degrade.main(["-i", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o")]) == 1
  assert not (tmp_path / "o").exists()


def test_bad_arguments_are_refused():
  with pytest.raises(SystemExit) as exit_info:
    degrade.main(["-i", "x.png", "-o", "o", "--gt-size", "255"])
  assert exit_info.value.code != 0
