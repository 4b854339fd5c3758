"""The chest-x4 protocol on RG1, implemented without jaxsr: an independent check of a generator.

    python benchmarks/chest_protocol_check.py demo_out/export/generator_ema [--out FILE.json]

Everything here is separate from `jaxsr.evaluate` and the Flax network: pydicom reads
pydicom-data's RG1_UNCR.dcm (MONOCHROME1 inverted, scaled to its own range); PIL resizes in 'F'
mode (Lanczos to 1024x1024, bicubic x4 down); SciPy blurs (Gaussian sigma 1, 7x7, mirrored
border); the generator runs as the PyTorch reference RRDBNet (`convert/torch_networks.py`) on
the weights exported with `python -m jaxsr.convert --to-torch` (safetensors); the output is
quantised to 8 bits, a 4-pixel border is cropped, and scikit-image gives PSNR. Also reports the
Sobel gradient-energy ratio (SciPy) over the whole image and over GT's texture areas, and the
mean intensity bias in levels of 255. Gray handling as Real-ESRGAN's: the gray image in all three
channels, the BT.601 luma of the clipped output.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import torch
from PIL import Image
from pydicom.data import get_testdata_file
from safetensors.torch import load_file
from scipy import ndimage
from skimage import metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # convert/ (the PyTorch reference).
from convert import torch_networks  # pylint: disable=wrong-import-position

LUMA = np.array([0.299, 0.587, 0.114])


def pil(image: np.ndarray, size: int, method) -> np.ndarray:
  return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((size, size), method))


def chest_pair() -> tuple[np.ndarray, np.ndarray]:
  dataset = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm", download=False))
  stored = dataset.pixel_array.astype(np.float64)
  image = (stored.max() - stored) / (stored.max() - stored.min())  # MONOCHROME1: invert.
  gt = np.round(np.clip(pil(image, 1024, Image.Resampling.LANCZOS), 0, 1) * 255) / 255
  lr = pil(gt, 256, Image.Resampling.BICUBIC)
  lr = ndimage.gaussian_filter(lr, 1.0, mode="mirror", truncate=3.0)  # 7x7 taps.
  return gt, np.round(np.clip(lr, 0, 1) * 255) / 255


def torch_upscale(model_dir: str, lr: np.ndarray) -> np.ndarray:
  with tempfile.TemporaryDirectory() as tmp:
    weights = Path(tmp) / "g.safetensors"
    subprocess.run([sys.executable, "-m", "jaxsr.convert", "--to-torch", model_dir, "-o",
                    str(weights)], check=True, capture_output=True)
    state = load_file(weights)
  num_block = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
  net = torch_networks.RRDBNet(scale=4, num_block=num_block).eval()
  net.load_state_dict(state, strict=True)
  x = torch.from_numpy(np.repeat(lr[None, None].astype(np.float32), 3, axis=1))
  with torch.inference_mode():
    out = net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy().astype(np.float64)
  return np.round(np.clip(out @ LUMA, 0, 1) * 255) / 255


def sobel_energy(image: np.ndarray) -> np.ndarray:
  return ndimage.sobel(image, 0, mode="reflect") ** 2 + ndimage.sobel(image, 1, mode="reflect") ** 2


def gradient_energy(image: np.ndarray) -> float:
  return float(np.mean(sobel_energy(image)))


def texture_areas(gt: np.ndarray) -> np.ndarray:
  """GT's calm half: foreground (> 0.05) pixels at or below the median gradient energy of GT
  blurred with a Gaussian of sigma 4 (the README's definition of the texture-area ratio)."""
  coarse = sobel_energy(ndimage.gaussian_filter(gt, 4.0, mode="reflect"))
  foreground = gt > 0.05
  return foreground & (coarse <= np.median(coarse[foreground]))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("model_dir")
  parser.add_argument("--out", type=Path, default=None)
  args = parser.parse_args()
  gt, lr = chest_pair()
  results = {}
  for name, sr in (("bicubic", np.round(np.clip(pil(lr, 1024, Image.Resampling.BICUBIC), 0, 1)
                                        * 255) / 255),
                   ("model", torch_upscale(args.model_dir, lr))):
    g, s = gt[4:-4, 4:-4], sr[4:-4, 4:-4]
    areas = texture_areas(g)
    results[name] = {"psnr": metrics.peak_signal_noise_ratio(g, s, data_range=1.0),
                     "grad_ratio": gradient_energy(s) / gradient_energy(g),
                     "texture_ratio": float(sobel_energy(s)[areas].mean()
                                            / sobel_energy(g)[areas].mean()),
                     "bias_levels": float((s.mean() - g.mean()) * 255)}
  results = {"model_dir": args.model_dir, "protocol": "chest-x4 on RG1_UNCR.dcm", **results}
  text = json.dumps(results, indent=2)
  print(text)
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
  main()
