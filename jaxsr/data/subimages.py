"""Offline sub-image extraction, as Real-ESRGAN's `scripts/extract_subimages.py`.

For users who prefer pre-extracted crops over the pipeline's random windows. Along each axis
crops start every `step` pixels; where the pixels left after the last crop exceed `thresh_size`,
one more crop is added flush with the image edge. The paper uses crop 400, step 200 (the
original's defaults are 480 and 240) and threshold 0. Crops of image `stem` are written as
`stem_s001.png`, `stem_s002.png`, ... row by row, keeping the bit depth and channels.

  python -m jaxsr.data.subimages -i FOLDER -o OUT [--crop-size 400] [--step 200] [--thresh-size 0]

An axis shorter than the crop is kept whole (the original fails on such images); the training
pipeline pads it when it cuts windows.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
from typing import Sequence

import numpy as np
import tqdm

from jaxsr import io as jio


def crop_starts(length: int, crop_size: int, step: int, thresh_size: int) -> list[int]:
  """Start offsets of the crops along an axis of `length` pixels."""
  if length <= crop_size:
    return [0]
  starts = list(range(0, length - crop_size + 1, step))
  if length - (starts[-1] + crop_size) > thresh_size:
    starts.append(length - crop_size)
  return starts


def extract_subimages(
    image: np.ndarray, crop_size: int = 400, step: int = 200, thresh_size: int = 0
) -> list[tuple[int, int, np.ndarray]]:
  """`(top, left, crop)` for every crop of `image` (`[H, W, ...]`), rows outer, columns inner."""
  if step <= 0 or crop_size <= 0:
    raise ValueError(f"crop_size and step must be positive, got {crop_size} and {step}")
  height, width = image.shape[:2]
  return [(top, left, image[top:top + crop_size, left:left + crop_size])
          for top in crop_starts(height, crop_size, step, thresh_size)
          for left in crop_starts(width, crop_size, step, thresh_size)]


def image_stem(path: str | os.PathLike) -> str:
  """The file name without its image extension and an optional `.gz` (`im0001.ppm.gz` -> `im0001`)."""
  name = pathlib.PurePath(path).name
  if name.lower().endswith(".gz"):
    name = name[: -len(".gz")]
  return os.path.splitext(name)[0]


def encode_png(image: np.ndarray) -> bytes:
  """PNG bytes of a uint8/uint16 `[H, W, C]` image (libpng keeps 16-bit colour, Pillow does not)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  return tf.io.encode_png(np.ascontiguousarray(image)).numpy()


def extract_file(
    path: pathlib.Path, output_dir: pathlib.Path, crop_size: int, step: int, thresh_size: int
) -> int:
  """Writes the crops of one file into `output_dir`; returns how many."""
  image = jio.read_samples(path)
  crops = extract_subimages(image, crop_size, step, thresh_size)
  output_dir.mkdir(parents=True, exist_ok=True)
  stem = image_stem(path)
  for number, (_, _, crop) in enumerate(crops, start=1):
    (output_dir / f"{stem}_s{number:03d}.png").write_bytes(encode_png(crop))
  return len(crops)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("-i", "--input", required=True, help="folder of images (recursive)")
  parser.add_argument("-o", "--output", required=True, help="folder for the crops (PNG)")
  parser.add_argument("--crop-size", type=int, default=400)
  parser.add_argument("--step", type=int, default=200)
  parser.add_argument("--thresh-size", type=int, default=0)
  parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
  args = parser.parse_args(argv)

  input_dir, output_dir = pathlib.Path(args.input), pathlib.Path(args.output)
  paths = jio.list_folder(input_dir)
  # Sub-folders are mirrored, so equal file names in different folders do not collide.
  with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
    counts = list(tqdm.tqdm(pool.map(
        lambda p: extract_file(p, output_dir / p.parent.relative_to(input_dir),
                               args.crop_size, args.step, args.thresh_size), paths),
        total=len(paths), desc="sub-images", unit="image"))
  print(f"{sum(counts)} crops of {len(paths)} images written to {output_dir}")


if __name__ == "__main__":
  main()
