"""python -m jaxsr.upscale: super-resolve an image with a jaxsr generator directory.

  python -m jaxsr.upscale -i xray.png -o xray_x4.png --model models/x4plus
  python -m jaxsr.upscale -i fundus.jpg -o fundus_x2.png --model models/x4plus --outscale 2

Whole image in one jit-compiled call; 8-bit PNG/JPEG, RGB or gray (gray stays gray).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxsr import checkpoint

SUPPORTED_MODES = {"L": "L", "RGB": "RGB", "RGBA": "RGBA", "P": "RGB", "LA": "RGBA"}


def read_image(path: Path) -> np.ndarray:
  try:
    with Image.open(path) as img:
      img.load()
      if img.mode not in SUPPORTED_MODES:
        raise ValueError(f"{path}: pixel mode {img.mode} is not supported here (8-bit gray, RGB or RGBA)")
      return np.asarray(img.convert(SUPPORTED_MODES[img.mode]))
  except (UnidentifiedImageError, OSError) as e:
    raise ValueError(f"{path} cannot be read as an image ({e})") from None


def write_image(path: Path, pixels: np.ndarray) -> None:
  """Writes atomically: a failure leaves no partial file at `path`."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
  os.close(fd)
  try:
    Image.fromarray(pixels).save(tmp, format=Image.registered_extensions().get(path.suffix.lower()))
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxsr.upscale", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("-i", "--input", required=True, type=Path)
  parser.add_argument("-o", "--output", required=True, type=Path)
  parser.add_argument("--model", required=True, type=Path, help="jaxsr generator directory")
  parser.add_argument("--outscale", type=float, default=None,
                      help="final scale (default: the network's own scale)")
  parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
  args = parser.parse_args(argv)

  from jaxsr.infer.upscaler import Upscaler  # After arg parsing: --help stays instant.

  try:
    upscaler = Upscaler(args.model, dtype=args.dtype)
  except checkpoint.CheckpointError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if args.output.suffix.lower() not in Image.registered_extensions():
    print(f"error: cannot tell the output format from {args.output.name}; use .png or .jpg",
          file=sys.stderr)
    return 2
  try:
    image = read_image(args.input)
  except (ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  start = time.perf_counter()
  result = upscaler.upscale(image, args.outscale)
  write_image(args.output, result)
  print(f"{args.input} {image.shape[1]}x{image.shape[0]} -> {args.output} "
        f"{result.shape[1]}x{result.shape[0]} ({time.perf_counter() - start:.1f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
