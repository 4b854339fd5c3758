"""Independent references for the upscale tests: PyTorch networks, NumPy luma, PIL Lanczos, and
the intensity lock written with scikit-image and SciPy."""

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage.measure import block_reduce

from convert import torch_networks as tn
from jaxsr.convert import convert

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as written in the standard.


def small_generator(root, scale, *, seed, num_feat=16, num_grow_ch=8):
  """A random PyTorch RRDBNet (one block) and its jaxsr directory, converted from a .pth."""
  torch.manual_seed(seed)
  net = tn.RRDBNet(scale=scale, num_block=1, num_feat=num_feat, num_grow_ch=num_grow_ch).eval()
  name = f"x{scale}_f{num_feat}_s{seed}"
  torch.save({"params_ema": net.state_dict()}, root / f"{name}.pth")
  return net, convert(root / f"{name}.pth", root / name)


def small_discriminator(root):
  torch.manual_seed(0)
  torch.save({"params": tn.UNetDiscriminatorSN(num_feat=8).state_dict()}, root / "netD.pth")
  return convert(root / "netD.pth", root / "netD")


def torch_sr(net, rgb_float):
  """The PyTorch network on one (H, W, 3) float image (zero padding at its border)."""
  with torch.no_grad():
    out = net(torch.from_numpy(np.ascontiguousarray(rgb_float.transpose(2, 0, 1))[None]).float())
  return out[0].numpy().transpose(1, 2, 0)


def torch_sr_gray(net, gray_float):
  """Real-ESRGAN's gray convention: the value in all three channels, luma of the clipped RGB."""
  rgb = torch_sr(net, np.repeat(np.asarray(gray_float, np.float32)[..., None], 3, axis=2))
  return np.clip(rgb, 0, 1) @ LUMA


def lanczos(channel, height, width):
  """PIL's Lanczos on a whole float channel."""
  return np.asarray(Image.fromarray(np.asarray(channel, np.float32)).resize(
      (width, height), Image.LANCZOS))


def random_image(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def reference_lock(sr, lr, scale, sigma):
  """Written from the formula: block means (scikit-image), Gaussian (SciPy, reflected borders),
  linear interpolation between input pixel centres (SciPy's zoom in grid mode, edges held)."""
  sr = sr.astype(np.float64)
  down = block_reduce(sr, (scale, scale, 1), np.mean)
  difference = ndimage.gaussian_filter(lr.astype(np.float64) - down, (sigma, sigma, 0),
                                       mode="reflect")
  up = ndimage.zoom(difference, (scale, scale, 1), order=1, mode="nearest", grid_mode=True)
  return np.clip(sr + up, 0, 1)
