"""`Upscaler` with tiles: against the PyTorch network on the whole image, memmaps, threads, memory.

References: the PyTorch RRDBNet on the same (converted) weights, NumPy luma, PIL's Lanczos on
whole arrays.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jaxsr.infer import upscaler as upscaler_lib
from jaxsr.infer.upscaler import Upscaler
from tests.upscale import reference

# An output pixel of a one-block x4 RRDBNet depends on input pixels up to 19 away: 17 3x3 convs
# at input resolution (conv_first, 15 in the RRDB, conv_body), then conv_up1 at x2 (1/2 input
# pixel) and conv_up2, conv_hr, conv_last at x4 (3/4). Tests use tile_pad >= 19 where they
# expect the whole-image output exactly.
RECEPTIVE_RADIUS_X4 = 19


@pytest.mark.parametrize("channels", [3, 1])
def test_tiled_equals_whole_image_pytorch_everywhere(models, channels):
  # Every output pixel has tile_pad = 40 >= 19 input pixels of context, or the image border
  # where PyTorch's convolutions zero-pad just as on the whole image: so the tiled result is the
  # whole-image network's at every pixel, border included, to float rounding (1e-5).
  nets, dirs = models
  rng = np.random.default_rng(channels)
  image = rng.random((130, 112, channels), np.float32)
  tile_pad = 40
  assert tile_pad >= RECEPTIVE_RADIUS_X4
  tiled = Upscaler(dirs[4], tile=40, tile_pad=tile_pad, batch=3).upscale(image)
  if channels == 3:
    whole = np.clip(reference.torch_sr(nets[4], image), 0, 1)
  else:
    whole = reference.torch_sr_gray(nets[4], image[..., 0])[..., None]
  assert tiled.shape == (520, 448, channels) and tiled.dtype == np.float32
  np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_small_images_run_at_their_own_shape_and_large_ones_share_one(models):
  _, dirs = models
  up = Upscaler(dirs[4], tile=32, tile_pad=8, batch=3, devices=jax.devices()[:1])
  shapes = set()
  clipped = up._clipped[3]

  def recording(variables, batch):
    shapes.add(batch.shape)
    return clipped(variables, batch)

  up._clipped = {3: recording}
  rng = np.random.default_rng(3)
  for size in [(20, 30), (48, 48), (49, 60), (100, 61), (20, 30)]:
    up.upscale(rng.random(size + (3,), np.float32))
  # (48, 48) fits in one 32 + 2 * 8 window; the two larger ones share the 48 x 48 window shape
  # (in batches of 3); (20, 30) runs as itself, in a batch of one per device (one device here).
  assert shapes == {(1, 20, 30, 3), (1, 48, 48, 3), (3, 48, 48, 3)}
  assert Upscaler(dirs[4]).tile == 0  # Default: whole image.


@pytest.mark.parametrize("size,target", [((203, 150), (101, 75)), ((200, 150), (150, 113)),
                                         ((37, 41), (111, 123))])
def test_lanczos_in_strips_equals_pil_on_the_whole_image(monkeypatch, size, target):
  monkeypatch.setattr(upscaler_lib, "RESIZE_STRIP_PIXELS", 3 * target[1])  # 3-row strips.
  image = np.random.default_rng(0).random(size + (2,), np.float32)
  out = upscaler_lib.resize_lanczos(image, *target)
  expected = np.stack([reference.lanczos(image[..., c], *target) for c in range(2)], axis=-1)
  np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-6)


def test_outscale_resizes_the_tiled_output_with_lanczos(models):
  nets, dirs = models
  image = np.random.default_rng(1).random((30, 26, 3), np.float32)
  out = Upscaler(dirs[4], tile=16, tile_pad=40).upscale(image, outscale=2.5)
  x4 = Upscaler(dirs[4], tile=16, tile_pad=40).upscale(image)
  expected = np.stack([reference.lanczos(x4[..., c], 75, 65) for c in range(3)], axis=-1)
  assert out.shape == (75, 65, 3)
  np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-6)


def test_large_outputs_are_memmaps_on_unlinked_files(models, tmp_path):
  _, dirs = models
  up = Upscaler(dirs[4], tile=16, tile_pad=8, batch=2)
  image = np.random.default_rng(2).random((40, 36, 1), np.float32)
  in_memory = up.upscale_pixels(image, outscale=3)
  on_disk = up.upscale_pixels(image, outscale=3, memmap_above=0, scratch_dir=tmp_path)
  assert isinstance(on_disk, np.memmap) and not isinstance(in_memory, np.memmap)
  np.testing.assert_array_equal(on_disk, in_memory)
  assert list(tmp_path.iterdir()) == []  # Nameless temporary files: nothing to clean up.


def test_alpha_is_lanczos_resized_apart_from_the_colour(models):
  nets, dirs = models
  rgba = reference.random_image((48, 44, 4), seed=3)
  out = Upscaler(dirs[4], tile=32, tile_pad=40).upscale(rgba)
  assert out.shape == (192, 176, 4) and out.dtype == np.uint8
  alpha = np.clip(reference.lanczos(rgba[..., 3] / np.float32(255), 192, 176), 0, 1)
  assert np.abs(out[..., 3].astype(int) - np.round(alpha * 255)).max() <= 1
  rgb = np.clip(reference.torch_sr(nets[4], rgba[..., :3] / np.float32(255)), 0, 1)
  assert np.abs(out[..., :3].astype(int) - np.round(rgb * 255)).max() <= 1


def test_one_upscaler_serves_several_threads(models):
  _, dirs = models
  up = Upscaler(dirs[2], tile=16, tile_pad=8, batch=2)
  images = [np.random.default_rng(seed).random((20 + 3 * seed, 30, 3), np.float32)
            for seed in range(6)]
  alone = [up.upscale(image) for image in images]
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    together = list(pool.map(up.upscale, images))
  for expected, got in zip(alone, together):
    np.testing.assert_array_equal(got, expected)


def test_bad_settings_are_refused_before_loading(models):
  _, dirs = models
  for settings in ({"tile": -1}, {"batch": 0}, {"tile_pad": 2.5}, {"dtype": "fp16"}):
    with pytest.raises(ValueError):
      Upscaler(dirs[4], **settings)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_windows_are_split_over_the_devices(models, count):
  # A mesh of `count` of the test process's 4 CPU devices: the batch of 3 becomes a multiple of
  # the count, each call's result lies on all of them, and the image is the whole-image
  # PyTorch output.
  nets, dirs = models
  up = Upscaler(dirs[4], tile=16, tile_pad=20, batch=3, devices=jax.devices()[:count])
  assert (up.devices, up.batch) == (count, {1: 3, 2: 4, 4: 4}[count])
  windows = np.zeros((up.batch, 56, 56, 3), np.float32)
  assert len(up._clipped[3](up._variables, windows).sharding.device_set) == count
  image = np.random.default_rng(0).random((45, 38, 3), np.float32)
  np.testing.assert_allclose(up.upscale(image), np.clip(reference.torch_sr(nets[4], image), 0, 1),
                             atol=1e-5)


@pytest.mark.parametrize("count", [2, 4])
def test_whole_image_mode_splits_rows_over_the_devices_exactly(models, count):
  # A height the devices divide is computed on all of them (rows split, halos exchanged by XLA),
  # another on one device; both equal the PyTorch whole-image output.
  nets, dirs = models
  up = Upscaler(dirs[4], devices=jax.devices()[:count])
  rng = np.random.default_rng(0)
  even, odd = rng.random((44, 38, 3), np.float32), rng.random((45, 38, 3), np.float32)
  assert len(up._clipped[3](up._variables, even[None]).sharding.device_set) == count
  for image in (even, odd):
    np.testing.assert_allclose(up.upscale(image),
                               np.clip(reference.torch_sr(nets[4], image), 0, 1), atol=1e-5)


_MEMORY_PROBE = textwrap.dedent("""
    import json, sys, threading, time, tracemalloc
    import jax, jax.numpy as jnp
    import numpy as np
    from jaxsr.infer.upscaler import Upscaler

    def anonymous_rss():
      with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon"))

    class RssSampler(threading.Thread):
      # Process memory not backed by a file, every 5 ms: XLA's buffers count, memmaps do not.
      def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = anonymous_rss(), True
      def run(self):
        while self.running:
          self.peak = max(self.peak, anonymous_rss())
          time.sleep(0.005)

    model, scratch = sys.argv[1], sys.argv[2]
    up = Upscaler(model, tile=256, tile_pad=8, batch=2)
    up.upscale_pixels(np.ones((300, 300, 1), np.float32))  # Compiles the one tile shape.
    # XLA's own account of what one call on a batch of 2 padded tiles (256 + 2 * 8) holds.
    tiles = jax.ShapeDtypeStruct((2, 272, 272, 1), jnp.float32)
    stats = up._clipped[1].lower(up._variables, tiles).compile().memory_analysis()
    results = {"xla_bytes": stats.temp_size_in_bytes + stats.argument_size_in_bytes
                            + stats.output_size_in_bytes}
    for size in (384, 1536):
      image = np.random.default_rng(0).random((size, size, 1), np.float32)
      before = anonymous_rss()
      sampler = RssSampler()
      sampler.start()
      tracemalloc.start()
      out = up.upscale_pixels(image, outscale=3, memmap_above=0, scratch_dir=scratch)
      numpy_peak = tracemalloc.get_traced_memory()[1]
      tracemalloc.stop()
      sampler.running = False
      sampler.join()
      assert isinstance(out, np.memmap) and out.shape == (3 * size, 3 * size, 1)
      assert 0 <= out.min() and out.max() <= 1 and out.std() > 1e-4  # Written, not zeros.
      results[size] = {"numpy_peak": numpy_peak, "rss_growth": sampler.peak - before,
                       "output_bytes": out.nbytes + 4 * (2 * size) ** 2}
      del out
    print(json.dumps(results))
""")


def test_peak_memory_does_not_grow_with_image_size(models, tmp_path):
  # A x2 network, outscale 3: the network output (2x) and the Lanczos result (3x) are both
  # memmaps (117 MiB together for the 1536 x 1536 input). tracemalloc sees every NumPy
  # allocation; the sampled anonymous RSS also sees XLA's (its working set for a batch of
  # tiles, 75 MiB here, is the same at both sizes). 16x the pixels must not cost more memory.
  _, dirs = models
  # A fixed mmap threshold: glibc then returns every large block when it is freed, instead of
  # keeping some (its default threshold adapts), so RSS follows what is really in use.
  env = dict(os.environ, JAX_PLATFORMS="cpu", MALLOC_MMAP_THRESHOLD_="131072")
  run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(dirs[2]), str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads(run.stdout.strip().splitlines()[-1])
  small, large, xla_bytes = results["384"], results["1536"], results["xla_bytes"]
  mib = 2**20
  print(f"NumPy peaks {small['numpy_peak'] / mib:.1f} -> {large['numpy_peak'] / mib:.1f} MiB, "
        f"anonymous RSS growth {small['rss_growth'] / mib:.1f} -> "
        f"{large['rss_growth'] / mib:.1f} MiB (XLA's working set {xla_bytes / mib:.1f} MiB); "
        f"outputs {large['output_bytes'] / mib:.0f} MiB")
  assert large["numpy_peak"] < 1.5 * small["numpy_peak"] + 2 * mib
  assert large["numpy_peak"] < large["output_bytes"] / 8
  # The sampled RSS is bounded by XLA's compiled working set (fixed by the tile shape) plus
  # NumPy's peak; any output-sized buffer in RAM (36 MiB at least) would add more than the
  # slack. XLA's figure, not the small image's sampled peak, is the reference: a busy 2-core
  # machine can starve the sampler through a short run and under-read that peak.
  assert large["rss_growth"] < xla_bytes + large["numpy_peak"] + large["output_bytes"] / 4


def test_the_automatic_tile_batch_fills_half_an_accelerator_and_one_window_per_cpu_core(models):
  # Sizing from XLA's memory analysis of the compiled network: a device with room for about
  # k windows in half its memory gets about k; a CPU device (no memory limit) one; never below
  # one or above the cap.
  import jax
  import jax.numpy as jnp

  from jaxsr import checkpoint

  _, dirs = models
  variables, metadata = checkpoint.load(dirs[4])
  module = checkpoint.build_model(metadata)
  usage = jax.jit(module.apply).lower(
      variables, jax.ShapeDtypeStruct((1, 40, 40, 3), jnp.float32)).compile().memory_analysis()
  per_window = usage.temp_size_in_bytes + usage.output_size_in_bytes + 40 * 40 * 3 * 4
  assert per_window > 4 * 160 * 160 * 3  # At least the float output of one window.
  parameters = sum(np.asarray(a).nbytes for a in jax.tree.leaves(variables))
  fits = lambda k: int(2 * (parameters + k * per_window))  # Half of it holds k windows.
  assert upscaler_lib.windows_per_device(module, variables, 40, fits(6)) in (5, 6)
  assert upscaler_lib.windows_per_device(module, variables, 40, fits(0)) == 1
  assert upscaler_lib.windows_per_device(module, variables, 40, fits(10_000)) == 32
  assert upscaler_lib.windows_per_device(module, variables, 40, None) == 1
  assert upscaler_lib.device_memory(jax.devices("cpu")[0]) is None
  tiled = Upscaler(dirs[4], tile=16)
  assert tiled.batch == tiled.devices  # One window per CPU device.
