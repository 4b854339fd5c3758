"""python -m jaxsr.degrade: write the (LR, GT) training pairs the degradation makes from one image.

  python -m jaxsr.degrade -i chest.png -o pairs/ -n 8 --seed 0 --scale 4

Shows what the network is trained on. For each pair a random 400x400 window of the image (the
recipe's GT crop; reflect-101 padded when the image is smaller) goes through
`jaxsr.degradation.degrade`, and `NNNN_lq.png` (gt_size / scale) and `NNNN_gt.png` (gt_size) are
written, plus `contact_sheet.png`: one row per pair (up to --sheet-rows), the LR enlarged with
nearest neighbours next to its GT. Input: an image file as training takes it (`jaxsr.io.listing`:
PNG/TIFF/JPEG/BMP/PNM, optionally gzipped, or DICOM; 8 or 16 bits, gray or RGB), read by
training's reader (`jaxsr.io.read_samples`; gray is repeated to RGB, alpha is dropped). Outputs
are 8-bit RGB PNG.
The same --seed gives the same pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
import tensorflow as tf
import tqdm

from jaxsr import degradation
from jaxsr import io as jio
from jaxsr.data import decode
from jaxsr.io import listing

WINDOW = 400  # GT side fed to the degradation, as the recipe's dataset crops


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxsr.degrade", description=__doc__.split("\n")[0])
  parser.add_argument("-i", "--input", required=True, type=Path, help="image file")
  parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
  parser.add_argument("-n", "--num", type=int, default=4, help="number of pairs (default 4)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  parser.add_argument("--scale", type=int, default=4, choices=(1, 2, 4))
  parser.add_argument("--gt-size", type=int, default=256, help="GT crop side (default 256)")
  parser.add_argument("--sheet-rows", type=int, default=16,
                      help="pairs shown on the contact sheet (default 16)")
  args = parser.parse_args(argv)
  if args.num < 1:
    parser.error("-n must be at least 1")
  if not 0 < args.gt_size <= WINDOW or args.gt_size % args.scale:
    parser.error(f"--gt-size must be in 1..{WINDOW} and a multiple of --scale")
  return args


def read_rgb(path: Path) -> np.ndarray:
  """float32 [H, W, 3] in [0, 1] as training reads the file; gray repeated, alpha dropped."""
  return decode.to_float_rgb(jio.read_samples(path))


def random_window(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A random WINDOW x WINDOW crop; smaller sides are reflect-101 padded first (as BasicSR)."""
  pad_rows, pad_cols = max(0, WINDOW - image.shape[0]), max(0, WINDOW - image.shape[1])
  if pad_rows or pad_cols:
    image = np.pad(image, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="reflect")
  top = rng.integers(0, image.shape[0] - WINDOW + 1)
  left = rng.integers(0, image.shape[1] - WINDOW + 1)
  return image[top:top + WINDOW, left:left + WINDOW]


def to_uint8(pixels: np.ndarray) -> np.ndarray:
  return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]], scale: int) -> np.ndarray:
  """Rows of [LR enlarged by nearest neighbours | GT], uint8."""
  rows = [np.concatenate([lq.repeat(scale, axis=0).repeat(scale, axis=1), gt], axis=1)
          for lq, gt in pairs]
  return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.input.is_file() and not listing.is_image_file(args.input):
    print(f"error: {args.input} is not an image file (image files: {listing.describe()})",
          file=sys.stderr)
    return 1
  try:
    image = read_rgb(args.input)
  except (OSError, jio.UnreadableImageError) as e:
    print(f"error: cannot read {args.input}: {e}", file=sys.stderr)
    return 1

  config = degradation.default_config()
  config.scale = args.scale
  config.gt_size = args.gt_size
  degrade = tf.function(lambda gt, seed: degradation.degrade(gt, seed, config)).get_concrete_function(
      tf.TensorSpec([WINDOW, WINDOW, 3], tf.float32), tf.TensorSpec([2], tf.int64))

  args.output.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(args.seed)
  sheet_pairs = []
  for index in tqdm.trange(args.num, desc="degrading", unit="pair"):
    window = random_window(image, rng)
    out = degrade(tf.constant(window), tf.constant([args.seed, index], tf.int64))
    lq, gt = to_uint8(out["lq"].numpy()), to_uint8(out["gt"].numpy())
    Image.fromarray(lq).save(args.output / f"{index:04d}_lq.png")
    Image.fromarray(gt).save(args.output / f"{index:04d}_gt.png")
    if len(sheet_pairs) < args.sheet_rows:
      sheet_pairs.append((lq, gt))
  Image.fromarray(contact_sheet(sheet_pairs, args.scale)).save(args.output / "contact_sheet.png")
  print(f"wrote {args.num} pairs and contact_sheet.png to {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
