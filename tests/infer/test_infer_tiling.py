"""Tiled super-resolution: exactness against whole-image runs, window placement, compiles,
blending, memory. (Against the PyTorch RRDBNet and the original's tiling scheme:
tests/upscale/test_upscale_tiling_exactness.py.)"""

import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr.infer import tiling

RECEPTIVE_RADIUS = 2  # Two 3x3 convolutions.


def make_conv_net(scale: int, channels: int = 3, seed: int = 0):
  """A stand-in SR network: conv3x3 -> relu -> conv3x3 (zero 'SAME' padding) -> nearest xscale."""
  k1, k2 = jax.random.split(jax.random.key(seed))
  w1 = jax.random.normal(k1, (3, 3, channels, 8)) * 0.3
  w2 = jax.random.normal(k2, (3, 3, 8, channels)) * 0.3

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def net(x):
    y = conv(jax.nn.relu(conv(x, w1)), w2) + x
    return jnp.repeat(jnp.repeat(y, scale, axis=1), scale, axis=2)

  return net


@pytest.mark.parametrize("start,stop,size", [(-7, 20, 13), (-30, 45, 5), (0, 9, 9), (-3, 4, 1),
                                             (-12, 40, 2)])
def test_reflect_indices_match_numpy_pad(start, stop, size):
  before, after = max(-start, 0), max(stop - size, 0)
  expected = np.pad(np.arange(size), (before, after), mode="reflect")[start + before:stop + before]
  np.testing.assert_array_equal(tiling.reflect_indices(start, stop, size), expected)


PLANS = [  # size, tile, tile_pad, pad_multiple
    (5, 16, 4, 1), (24, 16, 4, 1), (25, 16, 4, 1), (37, 16, 4, 1), (100, 16, 4, 1),
    (301, 64, 16, 1), (1000, 256, 24, 1), (45, 12, 4, 4), (47, 10, 6, 2), (130, 8, 2, 2),
    (9, 8, 0, 1), (57, 8, 0, 1)]


@pytest.mark.parametrize("size,tile,pad,multiple", PLANS)
def test_windows_sit_inside_the_image_and_each_pixel_has_its_full_context(size, tile, pad,
                                                                            multiple):
  scale = 2
  plan = tiling.plan_axis(size, tile=tile, tile_pad=pad, scale=scale, pad_multiple=multiple)
  extent = -(-size // multiple) * multiple
  window = tile + 2 * pad
  # One window the length of the axis when it fits, else fixed-size windows from the first
  # pixel to the last (of the axis extended to the multiple), never past it.
  assert {len(w.source) for w in plan} == {min(window, extent)}
  assert plan[0].start == 0 and plan[-1].start + len(plan[-1].source) == extent
  starts = [w.start for w in plan]
  assert all(start % multiple == 0 for start in starts)
  # Less than `tile` apart (by a multiple), so that neighbours' valid parts overlap, and as few
  # as that allows.
  most = tile - multiple if tile > multiple else tile
  assert all(0 < b - a <= most for a, b in zip(starts, starts[1:]))
  assert len(plan) == (1 if extent <= window else 1 + math.ceil((extent - window) / most))
  assert all(a.valid_stop - b.valid_start >= min(multiple, most) for a, b in zip(plan, plan[1:]))
  for w in plan:
    np.testing.assert_array_equal(w.source, tiling.reflect_indices(w.start, w.start + len(
        w.source), size))
    # An output pixel is taken from a window only where it has `pad` input pixels of context
    # on each side, or that side of the window is the (extended) image's border.
    inputs = (np.arange(w.out_start, w.out_stop) // scale)[w.weight > 0]
    first, last = w.start, w.start + len(w.source) - 1
    assert np.all((inputs - first >= pad) | (first == 0))
    assert np.all((last - inputs >= pad) | (last == extent - 1))
    assert w.local_start == w.out_start - scale * w.start
  # The weights are a partition of unity over the output.
  total = np.zeros(scale * size)
  for w in plan:
    total[w.out_start:w.out_stop] += w.weight
  np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_neighbours_cross_fade_linearly_over_the_overlap_of_their_valid_parts():
  # 40 pixels, tile 10, pad 6: windows of 22 at 0, 9, 18; valid parts [0, 16), [15, 25),
  # [24, 40): one input pixel (two output pixels) of overlap each.
  plan = tiling.plan_axis(40, tile=10, tile_pad=6, scale=2)
  assert [w.start for w in plan] == [0, 9, 18]
  assert [(w.valid_start, w.valid_stop) for w in plan] == [(0, 16), (15, 25), (24, 40)]
  np.testing.assert_allclose(plan[0].weight[-2:], [0.75, 0.25])
  np.testing.assert_allclose(plan[1].weight[:2], [0.25, 0.75])
  np.testing.assert_allclose(plan[1].weight[2:-2], 1.0)
  # At the original's spacing (42 = window + 2 * tile) valid parts would just meet, with a hard
  # cut between them: one more window, and every boundary is cross-faded.
  plan = tiling.plan_axis(42, tile=10, tile_pad=6, scale=2)
  assert [w.start for w in plan] == [0, 7, 13, 20]
  assert [(w.valid_start, w.valid_stop) for w in plan] == [(0, 16), (13, 23), (19, 29), (26, 42)]
  np.testing.assert_allclose(plan[0].weight[-6:], (np.arange(6)[::-1] + 0.5) / 6)


@pytest.mark.parametrize("scale,size,tile,pad,batch", [
    (2, (45, 61), 16, 4, 3),    # Partial last batch.
    (4, (33, 20), 8, 6, 1),     # Rows in windows; the columns fit in one (20 <= 8 + 12).
    (1, (50, 37), 12, 5, 4),    # Odd pad.
    (3, (9, 14), 32, 4, 2),     # Smaller than a tile: one window, its own shape.
    (2, (26, 40), 8, 2, 2),     # The pad just covers the receptive field.
])
def test_tiled_equals_the_whole_image_everywhere_when_the_pad_covers_the_receptive_field(
    scale, size, tile, pad, batch):
  # Windows sit on the image border, where the network zero-pads exactly as it does on the whole
  # image, and every pixel used has `pad` >= receptive radius pixels of context elsewhere: so the
  # tiled result is the whole-image network's at every pixel, the border included.
  assert pad >= RECEPTIVE_RADIUS
  image = np.random.default_rng(1).random(size + (3,), np.float32)
  net = jax.jit(make_conv_net(scale))
  tiled = tiling.upscale_tiled(image, net, scale=scale, tile=tile, tile_pad=pad, batch=batch)
  assert tiled.shape == (scale * size[0], scale * size[1], 3) and tiled.dtype == np.float32
  whole = tiling.upscale_tiled(image, net, scale=scale, tile=0)
  np.testing.assert_allclose(whole, np.asarray(net(image[None]))[0], atol=1e-6)
  np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_too_small_a_pad_is_not_exact():
  # The bound is tight: with tile_pad < receptive radius, used pixels lack context. (Shows the
  # exactness tests above can fail.)
  scale, image = 2, np.random.default_rng(3).random((40, 40, 3), np.float32)
  net = jax.jit(make_conv_net(scale))
  tiled = tiling.upscale_tiled(image, net, scale=scale, tile=12, tile_pad=1)
  whole = tiling.upscale_tiled(image, net, scale=scale, tile=0)
  assert np.abs(tiled - whole).max() > 1e-2


def test_one_window_shape_for_large_images_and_their_own_shape_for_small_ones():
  traces = []
  net = make_conv_net(2)

  @jax.jit
  def counted(x):
    traces.append(x.shape)
    return net(x)

  rng = np.random.default_rng(4)
  # Larger than a window (16 + 2 * 4) in both axes: always the one (batch, 24, 24) shape.
  for size in [(37, 53), (64, 64), (100, 29), (25, 25)]:
    out = tiling.upscale_tiled(rng.random(size + (3,), np.float32), counted, scale=2, tile=16,
                               tile_pad=4, batch=3)
    assert out.shape == (2 * size[0], 2 * size[1], 3)
  assert traces == [(3, 24, 24, 3)]
  # An image that fits in one window runs at its own shape, in a batch of `batch_multiple`, and
  # that shape is compiled once.
  for size in [(5, 7), (16, 16), (5, 7), (16, 16)]:
    tiling.upscale_tiled(rng.random(size + (3,), np.float32), counted, scale=2, tile=16,
                         tile_pad=4, batch=4, batch_multiple=2)
  assert traces == [(3, 24, 24, 3), (2, 5, 7, 3), (2, 16, 16, 3)]


def test_overlaps_cross_fade_without_a_step():
  # Each call returns a constant: the window's number. Where neighbouring valid parts overlap,
  # blending must spread the difference over the overlap instead of jumping at one pixel; where
  # one window alone is valid, its value comes through unchanged.
  scale, tile, pad = 2, 10, 6
  calls = []

  def window_number(windows):
    calls.append(len(calls))
    return np.full((1, scale * windows.shape[1], scale * windows.shape[2], 1), len(calls) - 1,
                   np.float32)

  # Rows as in the test above; columns: windows at 0, 9, 17, 26, overlaps of 1, 2, 1 pixels.
  image = np.zeros((40, 48, 1), np.float32)
  out = tiling.upscale_tiled(image, window_number, scale=scale, tile=tile, tile_pad=pad)[..., 0]
  columns = 4
  assert len(calls) == 3 * columns
  overlap = scale * 1  # Output pixels of the narrowest overlaps.
  step_across = np.abs(np.diff(out, axis=1)).max()
  step_down = np.abs(np.diff(out, axis=0)).max()
  assert 0 < step_across <= 1 / overlap + 1e-5
  assert 0 < step_down <= columns / overlap + 1e-5
  assert out[0, 0] == 0 and out[-1, -1] == len(calls) - 1
  assert out.min() >= 0 and out.max() <= len(calls) - 1


def test_one_window_images_are_padded_only_to_the_batch_multiple():
  shapes = []

  def nearest(x):
    shapes.append(x.shape)
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)

  image = np.random.default_rng(9).random((11, 13, 1), np.float32)
  out = tiling.upscale_tiled(image, nearest, scale=2, tile=32, tile_pad=8, batch=8,
                             batch_multiple=2)
  assert shapes == [(2, 11, 13, 1)]
  np.testing.assert_array_equal(out, nearest(image[None])[0])
  with pytest.raises(ValueError, match="multiple of batch_multiple"):
    tiling.upscale_tiled(image, nearest, scale=2, tile=32, batch=3, batch_multiple=2)


def test_pad_multiple_keeps_block_models_exact():
  # A scale-1 "pixel-unshuffle" model: each aligned 4x4 block is mixed by a fixed matrix, so it
  # needs H, W % 4 == 0 and is only shift-equivariant by multiples of 4. Tiles must stay on the
  # block grid (tile and tile_pad are rounded up to multiples of 4).
  mixing = np.random.default_rng(5).normal(size=(16, 16)).astype(np.float32)

  def block_model(x):
    b, h, w, c = x.shape
    assert h % 4 == 0 and w % 4 == 0
    blocks = x.reshape(b, h // 4, 4, w // 4, 4, c).transpose(0, 1, 3, 5, 2, 4)
    blocks = blocks.reshape(b, h // 4, w // 4, c, 16) @ mixing
    blocks = blocks.reshape(b, h // 4, w // 4, c, 4, 4).transpose(0, 1, 4, 2, 5, 3)
    return blocks.reshape(b, h, w, c)

  image = np.random.default_rng(6).random((45, 38, 2), np.float32)
  padded = np.pad(image, ((0, 3), (0, 2), (0, 0)), mode="reflect")
  expected = block_model(padded[None])[0, :45, :38]
  whole = tiling.upscale_tiled(image, block_model, scale=1, tile=0, pad_multiple=4)
  np.testing.assert_allclose(whole, expected, atol=1e-5)
  tiled = tiling.upscale_tiled(image, block_model, scale=1, tile=10, tile_pad=3, batch=2,
                               pad_multiple=4)
  np.testing.assert_allclose(tiled, expected, atol=1e-5)


def test_whole_image_mode_reflects_bottom_right_by_pre_pad_then_to_the_multiple():
  image = np.random.default_rng(7).random((21, 30, 3), np.float32)
  net = jax.jit(make_conv_net(2))
  out = tiling.upscale_tiled(image, net, scale=2, tile=0, pre_pad=5, pad_multiple=4)
  padded = np.pad(image, ((0, 7), (0, 6), (0, 0)), mode="reflect")  # 21+5 -> 28, 30+5 -> 36.
  np.testing.assert_allclose(out, np.asarray(net(padded[None]))[0, :42, :60], atol=1e-6)


def test_wrong_scale_is_reported():
  image = np.zeros((20, 20, 3), np.float32)
  upscale_x4 = lambda x: np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)
  with pytest.raises(ValueError, match="network's own scale"):
    tiling.upscale_tiled(image, upscale_x4, scale=2, tile=8, tile_pad=2)
  with pytest.raises(ValueError, match="network's own scale"):
    tiling.upscale_tiled(image, upscale_x4, scale=2, tile=0)


def test_writes_into_a_memmap_with_progress(tmp_path, capsys):
  image = np.random.default_rng(8).random((30, 26, 3), np.float32)
  out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32,
                                  shape=(60, 52, 3))
  out[...] = 7.0  # Stale content must not leak into the result.
  nearest = lambda x: np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
  result = tiling.upscale_tiled(image, nearest, scale=2, tile=8, tile_pad=2, batch=5, out=out,
                                progress=True)
  assert result is out
  out.flush()
  np.testing.assert_allclose(np.load(tmp_path / "out.npy"), nearest(image[None])[0], atol=1e-6)
  assert "0/12" in capsys.readouterr().err  # A bar over 4 x 3 windows (cleared when done).


_MEMORY_PROBE = textwrap.dedent("""
    import json, sys, tracemalloc
    import jax, jax.numpy as jnp, numpy as np
    from jaxsr.infer import tiling

    nearest = jax.jit(lambda x: jnp.repeat(jnp.repeat(x, 4, axis=1), 4, axis=2))
    folder, peaks = sys.argv[1], {}
    # Warm-up: compilation and first-call allocations are not the tiling's.
    tiling.upscale_tiled(np.ones((64, 64, 1), np.float32), nearest, scale=4, tile=128,
                         tile_pad=8, batch=4)
    for size in (500, 2000):
      image = np.random.default_rng(0).random((size, size, 1), np.float32) + 0.5
      out = np.lib.format.open_memmap(f"{folder}/out{size}.npy", mode="w+", dtype=np.float32,
                                      shape=(4 * size, 4 * size, 1))
      tracemalloc.start()
      tiling.upscale_tiled(image, nearest, scale=4, tile=128, tile_pad=8, batch=4, out=out)
      peaks[size] = tracemalloc.get_traced_memory()[1]
      tracemalloc.stop()
      # Correct too: blending equal values must reproduce nearest upsampling everywhere.
      rows = slice(4 * size // 2 - 300, 4 * size // 2 + 300)
      expected = np.repeat(np.repeat(image[rows.start // 4:rows.stop // 4], 4, 0), 4, 1)
      assert np.abs(out[rows] - expected).max() < 1e-6
      del out
    print(json.dumps(peaks))
""")


def test_peak_memory_does_not_grow_with_image_size(tmp_path):
  # tracemalloc sees every NumPy allocation (an output-sized buffer would show as 256 MB) but not
  # the memmap's file pages, which the kernel can write back at will.
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  peaks = {int(k): v for k, v in json.loads(run.stdout.strip().splitlines()[-1]).items()}
  output_bytes = 4 * 2000 * 4 * 2000 * 4
  print(f"tracemalloc peaks: 500x500 -> {peaks[500] / 2**20:.1f} MiB, "
        f"2000x2000 -> {peaks[2000] / 2**20:.1f} MiB (output {output_bytes / 2**20:.0f} MiB)")
  assert peaks[2000] < 2 * peaks[500] + 2 * 2**20  # 16x the pixels.
  assert peaks[2000] < output_bytes / 20
