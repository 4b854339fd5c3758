"""python -m jaxsr.degrade: the first pairs of the training stream, on generated image files."""

import numpy as np
import pytest
from PIL import Image

from jaxsr import degrade
from jaxsr.data import input_pipeline
from jaxsr.train.config import base_config


def write_gray16(path, height, width):
  rows, cols = np.mgrid[0:height, 0:width]
  values = (30000 + 20000 * np.sin(rows / 9.0) * np.cos(cols / 13.0)).astype(np.uint16)
  Image.fromarray(values).save(path)  # Pillow writes uint16 arrays as 16-bit gray PNG
  return values


def read(path):
  return np.asarray(Image.open(path))


def test_writes_pairs_and_contact_sheet_from_a_small_16bit_gray_image(tmp_path):
  source = tmp_path / "xray.png"
  values = write_gray16(source, 300, 260)  # smaller than the 400 window: padded
  assert Image.open(source).mode.startswith("I")
  out = tmp_path / "pairs"
  assert degrade.main(["-i", str(source), "-o", str(out), "-n", "2", "--seed", "3"]) == 0

  names = sorted(p.name for p in out.iterdir())
  assert names == ["0000_gt.png", "0000_lq.png", "0001_gt.png", "0001_lq.png",
                   "contact_sheet.png"]
  lq, gt = read(out / "0000_lq.png"), read(out / "0000_gt.png")
  assert lq.shape == (64, 64, 3) and lq.dtype == np.uint8
  assert gt.shape == (256, 256, 3)
  # Gray in, gray out: the channels of the GT are equal and its values are the 16-bit input's
  # levels mapped to 8 bits.
  np.testing.assert_array_equal(gt[..., 0], gt[..., 2])
  eight_bit = set(np.unique(np.round(values / 65535 * 255).astype(np.uint8)))
  assert set(np.unique(gt)) <= eight_bit

  sheet = read(out / "contact_sheet.png")
  assert sheet.shape == (2 * 256, 2 * 256, 3)
  np.testing.assert_array_equal(sheet[:256, 256:], gt)
  np.testing.assert_array_equal(sheet[:256:4, :256:4], lq)  # nearest-neighbour enlargement

  # The pairs are the training stream's first examples for this data and seed (a batch of 2
  # holds the same two examples as two batches of 1).
  stream = input_pipeline.make_train_dataset(
      str(source), input_pipeline.default_config(), seed=3, global_batch_size=2,
      process_index=0, process_count=1).as_numpy_iterator()
  batch = next(stream)
  for index in range(2):
    for key in ("lq", "gt"):
      expected = np.round(np.clip(batch[key][index], 0, 1) * 255).astype(np.uint8)
      np.testing.assert_array_equal(read(out / f"{index:04d}_{key}.png"), expected)


def test_a_config_file_previews_that_runs_stream(tmp_path):
  # --config takes the data options and the seed of a training config: here scale 2, GT 128
  # and seed 7 from the file, a folder of two images as the source.
  folder = tmp_path / "images"
  folder.mkdir()
  rng = np.random.default_rng(0)
  for name in ("a.png", "b.jpg"):
    Image.fromarray(rng.integers(0, 255, (420, 450, 3), dtype=np.uint8)).save(folder / name)
  config_file = tmp_path / "run_config.py"
  config_file.write_text(
      "from jaxsr.train.config import base_config\n"
      "def get_config():\n"
      "  config = base_config()\n"
      "  config.seed = 7\n"
      "  config.data.degradation.scale = 2\n"
      "  config.data.degradation.gt_size = 128\n"
      "  return config\n")
  out = tmp_path / "x2"
  assert degrade.main(["-i", str(folder), "-o", str(out), "-n", "3",
                       "--config", str(config_file)]) == 0
  config = base_config()
  config.data.degradation.scale = 2
  config.data.degradation.gt_size = 128
  stream = input_pipeline.make_train_dataset(str(folder), config.data, seed=7,
                                             global_batch_size=3, process_index=0,
                                             process_count=1).as_numpy_iterator()
  batch = next(stream)
  assert read(out / "0000_lq.png").shape == (64, 64, 3)
  for index in range(3):
    expected = np.round(np.clip(batch["lq"][index], 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(read(out / f"{index:04d}_lq.png"), expected)


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
  assert exit_info.value.code == 2
