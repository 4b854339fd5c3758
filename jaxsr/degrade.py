"""python -m jaxsr.degrade: the first (LR, GT) pairs of a training stream, as PNG files.

  python -m jaxsr.degrade -i chest.png -o pairs/ -n 8 --seed 0 --scale 4
  python -m jaxsr.degrade -i bundled:train -o pairs/ -n 16 --config configs/demo.py

Shows what the network is trained on: the pairs are the first `-n` examples of the stream
`jaxsr.data.input_pipeline.make_train_dataset` gives the trainer for this data, config and seed
(the same image order, random GT windows, decoder and degradation seeds; only their grouping into
batches differs), so a preview of `--config X` is exactly what a run of X starts with.

  -i         any source spec (`jaxsr.data.source_specs`): an image or DICOM file, a folder, a
             glob, bundled:train, tfds:NAME, ...
  --config   a training config file: its data options, degradation and seed (default: the paper
             recipe's data options, with --scale, --gt-size and --seed)

Writes `NNNN_lq.png` (gt_size / scale) and `NNNN_gt.png` (gt_size), 8-bit RGB, plus
`contact_sheet.png`: one row per pair (up to --sheet-rows), the LR enlarged with nearest
neighbours next to its GT. Exit status 1 when the data cannot be read, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image
import tqdm

from jaxsr import io as jio
from jaxsr.data import input_pipeline
from jaxsr.data import source as source_lib
from jaxsr.data import source_specs


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxsr.degrade",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("-i", "--input", required=True,
                      help=f"source spec: {source_specs.describe()}")
  parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
  parser.add_argument("-n", "--num", type=int, default=4, help="number of pairs (default 4)")
  parser.add_argument("--config", type=Path,
                      help="training config file whose data options and seed to preview")
  parser.add_argument("--seed", type=int, default=None,
                      help="the run's seed (default: the config's, else 0)")
  parser.add_argument("--scale", type=int, default=None, choices=(1, 2, 3, 4),
                      help="default: the config's, else 4")
  parser.add_argument("--gt-size", type=int, default=None,
                      help="GT crop side (default: the config's, else 256)")
  parser.add_argument("--sheet-rows", type=int, default=16,
                      help="pairs shown on the contact sheet (default 16)")
  args = parser.parse_args(argv)
  if args.num < 1:
    parser.error("-n must be at least 1")
  if args.config is not None and not args.config.is_file():
    parser.error(f"--config {args.config} does not exist")
  return args, parser


def data_config(args) -> tuple[object, int]:
  """(the training config's `data` options with the command line's overrides, seed)."""
  if args.config is not None:
    # A config file is a module with get_config(), as `python -m jaxsr.train --config` loads it.
    spec = importlib.util.spec_from_file_location("jaxsr_previewed_config", args.config)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    data, seed = config.data, config.seed
  else:
    data, seed = input_pipeline.default_config(), 0
  data = data.copy_and_resolve_references()
  degradation = data.degradation
  with degradation.ignore_type():
    if args.scale is not None:
      degradation.scale = args.scale
    if args.gt_size is not None:
      degradation.gt_size = args.gt_size
    degradation.lq_size = degradation.gt_size // degradation.scale
  return data, seed if args.seed is None else args.seed


def to_uint8(pixels: np.ndarray) -> np.ndarray:
  return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]], scale: int) -> np.ndarray:
  """Rows of [LR enlarged by nearest neighbours | GT], uint8."""
  rows = [np.concatenate([lq.repeat(scale, axis=0).repeat(scale, axis=1), gt], axis=1)
          for lq, gt in pairs]
  return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
  args, parser = parse_args(argv)
  data, seed = data_config(args)
  scale, gt_size = data.degradation.scale, data.degradation.gt_size
  if not 0 < gt_size <= data.window_size or gt_size % scale:
    parser.error(f"the GT size {gt_size} must be in 1..{data.window_size} and a multiple of the "
                 f"scale {scale}")
  try:
    source = source_specs.open_source(args.input, split=data.split, data_dir=data.data_dir or None)
    source.read(0)  # A file that cannot be read fails here, with its name, before any work.
  except (OSError, source_lib.SourceError, jio.UnreadableImageError) as e:
    print(f"error: cannot read {args.input}: {e}", file=sys.stderr)
    return 1
  stream = input_pipeline.make_train_dataset(source, data, seed=seed, global_batch_size=1,
                                             process_index=0, process_count=1)
  args.output.mkdir(parents=True, exist_ok=True)
  sheet_pairs = []
  batches = stream.take(args.num).as_numpy_iterator()
  for index, batch in enumerate(tqdm.tqdm(batches, total=args.num, desc="degrading",
                                          unit="pair")):
    lq, gt = to_uint8(batch["lq"][0]), to_uint8(batch["gt"][0])
    Image.fromarray(lq).save(args.output / f"{index:04d}_lq.png")
    Image.fromarray(gt).save(args.output / f"{index:04d}_gt.png")
    if len(sheet_pairs) < args.sheet_rows:
      sheet_pairs.append((lq, gt))
  Image.fromarray(contact_sheet(sheet_pairs, scale)).save(args.output / "contact_sheet.png")
  print(f"wrote {args.num} pairs and contact_sheet.png to {args.output} (the first {args.num} "
        f"examples of the training stream, seed {seed})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
