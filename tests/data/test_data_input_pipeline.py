"""jaxsr.data.input_pipeline: order, host split, resumption, windows, errors; real degradation."""

import itertools
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tensorflow_datasets as tfds

from jaxsr.data import builders
from jaxsr.data import bundled
from jaxsr.data import image_files
from jaxsr.data import input_pipeline
from jaxsr.data import source_specs
from tests.io import fixture_images as fx

WINDOW = 32


def _indices(num_examples, steps, **kwargs):
  """The first `steps` batches of a host's index stream as a list of (epoch, index) lists."""
  per_host = kwargs["global_batch_size"] // kwargs["process_count"]
  stream = input_pipeline.example_indices(num_examples, **kwargs).take(steps * per_host)
  pairs = [(int(x["epoch"]), int(x["index"])) for x in stream.as_numpy_iterator()]
  return [pairs[i:i + per_host] for i in range(0, len(pairs), per_host)]


def _global_stream(num_examples, steps, process_count, seed=0, start_step=0, batch=6):
  """Global batches assembled from every host's batches, in host order."""
  hosts = [_indices(num_examples, steps, seed=seed, global_batch_size=batch,
                    process_index=h, process_count=process_count, start_step=start_step)
           for h in range(process_count)]
  return [sum((hosts[h][s] for h in range(process_count)), []) for s in range(steps)]


def test_every_epoch_is_a_permutation_split_disjointly_over_hosts():
  n, batch, steps = 10, 6, 20  # batches straddle epochs: 6 does not divide 10
  flat = sum(_global_stream(n, steps, process_count=3, batch=batch), [])
  for epoch in range(len(flat) // n):
    chunk = flat[epoch * n:(epoch + 1) * n]
    assert {e for e, _ in chunk} == {epoch}
    assert sorted(k for _, k in chunk) == list(range(n))
  orders = [tuple(k for _, k in flat[e * n:(e + 1) * n]) for e in range(len(flat) // n)]
  assert len(set(orders)) > 1, "each epoch is reshuffled"


def test_global_batches_do_not_depend_on_the_number_of_hosts():
  one = _global_stream(10, 12, process_count=1)
  assert _global_stream(10, 12, process_count=2) == one
  assert _global_stream(10, 12, process_count=3) == one
  assert _global_stream(10, 12, process_count=1, seed=1) != one


@pytest.mark.parametrize("start_step", [1, 4, 9])
def test_index_stream_resumes_exactly(start_step):
  full = _global_stream(7, 14, process_count=2)
  resumed = _global_stream(7, 14 - start_step, process_count=2, start_step=start_step)
  assert resumed == full[start_step:]


def test_example_seeds_are_distinct_and_depend_on_the_run_seed():
  seeds = {tuple(input_pipeline.example_seed(0, e, k).numpy())
           for e, k in itertools.product(range(5), range(20))}
  assert len(seeds) == 100
  assert tuple(input_pipeline.example_seed(1, 0, 0).numpy()) not in seeds
  np.testing.assert_array_equal(input_pipeline.example_seed(0, 3, 7),
                                input_pipeline.example_seed(0, 3, 7))


def _fake_degrade(gt, seed, config):
  """Passes the GT through; lq is noise drawn from the seed, to expose the seed plumbing."""
  lq_size = config.gt_size // config.scale
  return {"lq": tf.random.stateless_uniform([lq_size, lq_size, 3], seed),
          "gt": gt[:config.gt_size, :config.gt_size],
          "gt_usm": gt[:config.gt_size, :config.gt_size]}


def _config(skip_corrupt=False):
  config = input_pipeline.default_config()
  config.window_size = WINDOW
  config.degradation.gt_size = WINDOW
  config.skip_corrupt = skip_corrupt
  return config


def _image_folder(root):
  """Mixed formats and depths; one image smaller than the window (reflect-101 padded)."""
  rng = np.random.default_rng(7)
  images = {
      "a.png": fx.random_image(rng, (40, 36, 3)),
      "b_xray16.png": fx.random_image(rng, (34, 45), np.uint16),
      "c.ppm.gz": fx.random_image(rng, (33, 33, 3)),
      "d_small.png": fx.random_image(rng, (20, 13), np.uint16),
      "e_rgba.png": fx.random_image(rng, (32, 40, 4)),
  }
  for name, image in images.items():
    data = fx.pnm_bytes(image) if ".ppm" in name else fx.png_bytes(image)
    fx.write(root / name, data, gzipped=name.endswith(".gz"))
  return images


def _expected_float_rgb(image):
  """The float32 RGB the pipeline must see for a file: x/255 or x/65535, gray repeated."""
  image = image if image.ndim == 3 else image[..., None]
  full = 65535.0 if image.dtype == np.uint16 else 255.0
  rgb = (image[..., :3].astype(np.float64) / full).astype(np.float32)
  return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb


def _batches(source, steps, **kwargs):
  kwargs.setdefault("seed", 0)
  kwargs.setdefault("process_index", 0)
  kwargs.setdefault("process_count", 1)
  kwargs.setdefault("global_batch_size", 4)
  config = kwargs.pop("config", None) or _config()
  dataset = input_pipeline.make_train_dataset(source, config, degrade_fn=_fake_degrade, **kwargs)
  return list(dataset.take(steps).as_numpy_iterator())


def test_batches_are_reflect101_windows_of_the_right_images(tmp_path):
  images = _image_folder(tmp_path)
  source = image_files.ImageFolder(tmp_path)
  names = [p.name for p in source.paths]
  batches = _batches(source, steps=3)
  ids = _indices(len(source), 3, seed=0, global_batch_size=4, process_index=0, process_count=1)
  for batch, batch_ids in zip(batches, ids):
    assert batch["gt"].shape == (4, WINDOW, WINDOW, 3) and batch["gt"].dtype == np.float32
    assert batch["lq"].shape == (4, WINDOW // 4, WINDOW // 4, 3)
    for gt, (_, index) in zip(batch["gt"], batch_ids):
      image = _expected_float_rgb(images[names[index]])
      pad = ((0, max(0, WINDOW - image.shape[0])), (0, max(0, WINDOW - image.shape[1])), (0, 0))
      padded = np.pad(image, pad, mode="reflect")
      offsets = [(t, l) for t in range(padded.shape[0] - WINDOW + 1)
                 for l in range(padded.shape[1] - WINDOW + 1)
                 if np.array_equal(padded[t:t + WINDOW, l:l + WINDOW], gt)]
      assert offsets, f"batch element is no window of {names[index]}"


def test_any_source_spec_feeds_training(tmp_path):
  # data.source takes every spec of jaxsr.data.source_specs, skimage: and pydicom-data: included;
  # a packaged file trains exactly as a copy of it in a folder.
  (tmp_path / "folder").mkdir()
  for name in ("microaneurysms.png", "retina.jpg"):
    (tmp_path / "folder" / name).write_bytes(bundled.skimage_path(name).read_bytes())
  by_spec = _batches("skimage:microaneurysms.png,retina.jpg", 2)
  by_folder = _batches(str(tmp_path / "folder"), 2)
  for a, b in zip(by_spec, by_folder):
    np.testing.assert_array_equal(a["gt"], b["gt"])


def test_prepared_tfds_split_feeds_the_same_windows(tmp_path):
  rng = np.random.default_rng(8)
  images = {f"im{i:04d}.ppm.gz": fx.random_image(rng, (40, 36, 3)) for i in (1, 2, 3)}
  for name, image in images.items():
    fx.write(tmp_path / "manual" / name, fx.pnm_bytes(image), gzipped=True)
  builder = builders.Stare(data_dir=str(tmp_path / "data"), file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual")))
  config = _config()
  config.data_dir = str(tmp_path / "data")
  from_tfds = _batches("tfds:stare", 2, config=config)
  # The same images as a folder, in the TFDS source's order, give the same stream.
  source = source_specs.open_source("tfds:stare", data_dir=config.data_dir)
  for i in range(len(source)):
    fx.write(tmp_path / "folder" / f"{i}.png", fx.png_bytes(images[source.name(i)]))
  from_folder = _batches(image_files.ImageFolder(tmp_path / "folder"), 2)
  for a, b in zip(from_tfds, from_folder):
    for key in ("lq", "gt"):
      np.testing.assert_array_equal(a[key], b[key])


def test_same_seed_same_batches_other_seed_other_batches(tmp_path):
  _image_folder(tmp_path)
  source = image_files.ImageFolder(tmp_path)
  first, again = _batches(source, 4), _batches(source, 4)
  other = _batches(source, 4, seed=1)
  for a, b in zip(first, again):
    for key in ("lq", "gt", "gt_usm"):
      np.testing.assert_array_equal(a[key], b[key])
  assert not all(np.array_equal(a["lq"], c["lq"]) for a, c in zip(first, other))


def test_hosts_split_each_global_batch_disjointly(tmp_path):
  _image_folder(tmp_path)
  source = image_files.ImageFolder(tmp_path)
  single = _batches(source, 3)
  hosts = [_batches(source, 3, process_index=h, process_count=2) for h in range(2)]
  for step in range(3):
    assert hosts[0][step]["gt"].shape[0] == 2
    for key in ("lq", "gt"):
      np.testing.assert_array_equal(
          np.concatenate([hosts[0][step][key], hosts[1][step][key]]), single[step][key])


def test_skipping_to_a_step_equals_iterating_to_it(tmp_path):
  _image_folder(tmp_path)
  source = image_files.ImageFolder(tmp_path)
  full = _batches(source, 6)
  resumed = _batches(source, 2, start_step=4)
  for a, b in zip(full[4:], resumed):
    for key in ("lq", "gt", "gt_usm"):
      np.testing.assert_array_equal(a[key], b[key])


def test_corrupt_file_error_names_it_or_is_skipped_and_counted(tmp_path):
  _image_folder(tmp_path)
  fx.write(tmp_path / "bad_scan.png", b"\x89PNG\r\n\x1a\n this is not a PNG body")
  with pytest.raises(tf.errors.OpError, match="bad_scan.png"):
    _batches(image_files.ImageFolder(tmp_path), 3)
  source = image_files.ImageFolder(tmp_path)
  batches = _batches(source, 3, config=_config(skip_corrupt=True))
  assert len(batches) == 3 and all(b["gt"].shape[0] == 4 for b in batches)
  assert list(source.skipped) == [str(tmp_path / "bad_scan.png")]


def test_empty_folder_fails_fast_naming_the_path(tmp_path):
  with pytest.raises(ValueError, match=str(tmp_path)):
    input_pipeline.make_train_dataset(str(tmp_path), _config(), seed=0, global_batch_size=2,
                                      process_index=0, process_count=1,
                                      degrade_fn=_fake_degrade)


def test_bad_batch_split_is_refused(tmp_path):
  _image_folder(tmp_path)
  with pytest.raises(ValueError, match="does not split"):
    _batches(image_files.ImageFolder(tmp_path), 1, global_batch_size=5, process_count=2)


def test_16bit_precision_reaches_the_batch(tmp_path):
  xray = np.full((WINDOW, WINDOW), 1000, np.uint16)
  xray[::2] = 1001  # one 16-bit level apart: gone if anything rounds to 8 bits
  fx.write(tmp_path / "xray.png", fx.png_bytes(xray))
  gt = _batches(image_files.ImageFolder(tmp_path), 1, global_batch_size=1)[0]["gt"][0]
  assert set(np.unique(gt)) == {np.float32(1000 / 65535), np.float32(1001 / 65535)}


def test_real_degradation_shapes_range_and_resumption(tmp_path):
  _image_folder(tmp_path)
  source = image_files.ImageFolder(tmp_path)
  config = input_pipeline.default_config()
  config.window_size = 160  # the degradation needs >= 147 px at scale 4
  config.degradation.gt_size = 128
  kwargs = dict(seed=3, global_batch_size=2, process_index=0, process_count=1)
  full = list(input_pipeline.make_train_dataset(source, config, **kwargs)
              .take(3).as_numpy_iterator())
  resumed = list(input_pipeline.make_train_dataset(source, config, start_step=2, **kwargs)
                 .take(1).as_numpy_iterator())
  for batch in full:
    assert batch["lq"].shape == (2, 32, 32, 3)
    assert batch["gt"].shape == batch["gt_usm"].shape == (2, 128, 128, 3)
    for key in ("lq", "gt", "gt_usm"):
      assert batch[key].dtype == np.float32 and np.isfinite(batch[key]).all()
      assert batch[key].min() >= 0.0 and batch[key].max() <= 1.0
    # lq is quantised to 8 bits, as the original.
    np.testing.assert_allclose(batch["lq"] * 255, np.round(batch["lq"] * 255), atol=1e-3)
  for key in ("lq", "gt", "gt_usm"):
    np.testing.assert_array_equal(full[2][key], resumed[0][key])


_EXIT_SCRIPT = '''
import time
import numpy as np
from jaxsr.data import input_pipeline, source

class SlowSource(source.ImageSource):
  location = "slow"
  def __len__(self):
    return 8
  def name(self, index):
    return f"image{index}"
  def read(self, index):
    time.sleep(0.5)  # so that reads are surely in flight when the script ends
    return np.full((40, 40, 3), index, np.uint8)

def degrade(gt, seed, config):
  return {"lq": gt[::4, ::4], "gt": gt, "gt_usm": gt}

config = input_pipeline.default_config()
config.window_size = config.degradation.gt_size = 32
batches = input_pipeline.make_train_dataset(
    SlowSource(), config, seed=0, global_batch_size=2, process_index=0, process_count=1,
    degrade_fn=degrade).as_numpy_iterator()
next(batches)
print("consumed", flush=True)
'''


def test_script_exits_while_the_pipeline_is_still_prefetching(tmp_path):
  # Python reads that are in flight when the interpreter finalises used to hang the process
  # forever in the iterator's destructor (without the exit hook this script never ends).
  script = tmp_path / "train_and_exit.py"
  script.write_text(_EXIT_SCRIPT)
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=pathlib.Path(__file__).parents[2])
  assert result.returncode == 0, result.stderr[-2000:]
  assert "consumed" in result.stdout
