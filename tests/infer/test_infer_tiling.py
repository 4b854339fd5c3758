"""Tiled super-resolution: exactness against whole-image runs, one compile, blending, memory."""

import json
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


def reflect_padded_run(net, image, margin, scale):
  """The network on the whole image with `margin` reflected pixels on every side, cropped."""
  padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
  out = np.asarray(jax.jit(net)(padded[None]))[0]
  return out[scale * margin:-scale * margin, scale * margin:-scale * margin]


@pytest.mark.parametrize("start,stop,size", [(-7, 20, 13), (-30, 45, 5), (0, 9, 9), (-3, 4, 1),
                                             (-12, 40, 2)])
def test_reflect_indices_match_numpy_pad(start, stop, size):
  before, after = max(-start, 0), max(stop - size, 0)
  expected = np.pad(np.arange(size), (before, after), mode="reflect")[start + before:stop + before]
  np.testing.assert_array_equal(tiling.reflect_indices(start, stop, size), expected)


@pytest.mark.parametrize("scale,tile,pad", [(1, 16, 4), (4, 8, 3), (2, 10, 5)])
def test_blend_ramps_of_neighbours_sum_to_one(scale, tile, pad):
  # Five tiles at stride `tile`, each covering tile + 2 * pad input pixels; sum their ramps.
  length, width = scale * (tile + 2 * pad), scale * pad
  ramp = tiling.blend_ramp(length, width)
  total = np.zeros(scale * (5 * tile + 2 * pad))
  for k in range(5):
    total[scale * k * tile:scale * k * tile + length] += ramp
  interior = total[scale * (tile + pad):scale * (4 * tile + pad)]
  np.testing.assert_allclose(interior, 1.0, atol=1e-12)
  assert ramp[:width // 2].max() == 0  # The outermost half-pad of context never counts.
  np.testing.assert_array_equal(ramp, ramp[::-1])


@pytest.mark.parametrize("scale,size,tile,pad,batch", [
    (2, (45, 61), 16, 4, 3),    # Partial last batch, last tile moved back.
    (4, (33, 20), 8, 6, 1),
    (1, (50, 37), 12, 5, 4),    # Odd pad.
    (3, (9, 14), 32, 4, 2),     # Tile larger than the image.
])
def test_tiled_equals_reflect_padded_whole_image(scale, size, tile, pad, batch):
  assert pad // 2 >= RECEPTIVE_RADIUS
  image = np.random.default_rng(1).random(size + (3,), np.float32)
  net = make_conv_net(scale)
  tiled = tiling.upscale_tiled(image, jax.jit(net), scale=scale, tile=tile, tile_pad=pad,
                               batch=batch)
  assert tiled.shape == (scale * size[0], scale * size[1], 3) and tiled.dtype == np.float32
  np.testing.assert_allclose(tiled, reflect_padded_run(net, image, 8, scale), atol=1e-5)


def test_tiled_equals_zero_padded_whole_image_away_from_the_border():
  # The whole-image call (tile=0) zero-pads at the image edge inside its convolutions; tiles see
  # reflected context there instead. They agree wherever the border is out of reach.
  scale, image = 2, np.random.default_rng(2).random((40, 52, 3), np.float32)
  net = jax.jit(make_conv_net(scale))
  tiled = tiling.upscale_tiled(image, net, scale=scale, tile=16, tile_pad=4, batch=2)
  whole = tiling.upscale_tiled(image, net, scale=scale, tile=0)
  np.testing.assert_allclose(whole, np.asarray(net(image[None]))[0], atol=1e-6)
  inner = slice(scale * RECEPTIVE_RADIUS, -scale * RECEPTIVE_RADIUS)
  np.testing.assert_allclose(tiled[inner, inner], whole[inner, inner], atol=1e-5)
  assert np.abs(tiled - whole).max() > 1e-3  # ... and differ at the border, as they should.


def test_too_small_a_pad_is_not_exact():
  # The bound is tight: with tile_pad // 2 < receptive radius, tiles contribute values computed
  # without enough context. (Shows the exactness tests above can fail.)
  scale, image = 2, np.random.default_rng(3).random((40, 40, 3), np.float32)
  net = make_conv_net(scale)
  tiled = tiling.upscale_tiled(image, jax.jit(net), scale=scale, tile=12, tile_pad=2)
  assert np.abs(tiled - reflect_padded_run(net, image, 8, scale)).max() > 1e-2


def test_compiles_once_for_every_image_size():
  traces = []
  net = make_conv_net(2)

  @jax.jit
  def counted(x):
    traces.append(x.shape)
    return net(x)

  rng = np.random.default_rng(4)
  for size in [(37, 53), (64, 64), (100, 29), (5, 7), (16, 16)]:
    out = tiling.upscale_tiled(rng.random(size + (3,), np.float32), counted, scale=2, tile=16,
                               tile_pad=4, batch=3)
    assert out.shape == (2 * size[0], 2 * size[1], 3)
  assert traces == [(3, 24, 24, 3)]


def test_overlaps_cross_fade_without_a_step():
  # Each call returns a constant: the tile's number. Neighbouring tiles differ by 1 (across) or
  # by the number of tile columns (down); blending must spread that over the ramp instead of
  # jumping at one pixel as crop-and-paste would.
  scale, tile, pad = 2, 10, 6
  calls = []

  def tile_number(windows):
    calls.append(len(calls))
    return np.full((1, scale * (tile + 2 * pad), scale * (tile + 2 * pad), 1), len(calls) - 1,
                   np.float32)

  image = np.zeros((40, 50, 1), np.float32)
  out = tiling.upscale_tiled(image, tile_number, scale=scale, tile=tile, tile_pad=pad)[..., 0]
  columns = 5
  assert len(calls) == 4 * columns
  step_across = np.abs(np.diff(out, axis=1)).max()
  step_down = np.abs(np.diff(out, axis=0)).max()
  ramp_width = scale * pad
  assert 0 < step_across <= 1 / ramp_width + 1e-5
  assert 0 < step_down <= columns / ramp_width + 1e-5
  # A weighted mean of tile numbers: within the range of the tiles that can reach each pixel.
  assert out.min() >= 0 and out.max() <= len(calls) - 1


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
  assert "0/16" in capsys.readouterr().err  # A bar over 4 x 4 tiles (cleared when done).


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
