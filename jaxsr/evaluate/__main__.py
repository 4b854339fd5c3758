"""python -m jaxsr.evaluate: the paper's evaluation protocol on any data, in one command.

  python -m jaxsr.evaluate --protocol retina-x2 --data tfds:drive --manual-dir ~/DRIVE \\
      --model x4plus --model finetuned -o results/drive
  python -m jaxsr.evaluate --protocol chest-x4 --data tfds:nih_chest_xray14/random40_seed0 \\
      --model x4plus --name Real-ESRGAN -o results/nih
  python -m jaxsr.evaluate --protocol retina-x2 --data skimage:retina.jpg --model x4plus -o out
  python -m jaxsr.evaluate --protocol custom --scale 2 --gt-size none --crop 96 \\
      --data scans/ --model x2net -o out

--data: a source spec, the grammar training uses too (jaxsr.data.source_specs):
tfds:NAME[/CONFIG] (jaxsr's TFDS builders), bundled:train|heldout[:NAME,...] (the offline split),
skimage[:NAME,...] (scikit-image's fundus images), pydicom-data[:NAME,...] (its radiographs), or an
image / DICOM file, a folder or a quoted glob; repeatable. Bicubic is always evaluated as the
baseline. Writes per_image.csv, summary.json, summary.md and comparison.png to -o; every protocol
option, the data and each model's provenance (and any resize of its output to the protocol's
scale) are recorded in summary.json and summary.md. Bad --model / --data / options: a message and exit code 2, before any work.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from jaxsr.data import source_specs
from jaxsr.evaluate import command, protocols
from jaxsr.infer import compilation_cache, devices
from jaxsr.models import precision


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m jaxsr.evaluate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--protocol", required=True, choices=protocols.PROTOCOL_NAMES)
  parser.add_argument("--data", required=True, action="append", metavar="SRC",
                      help="test images (repeatable): " + source_specs.describe())
  parser.add_argument("--model", action="append", default=[], metavar="DIR",
                      help="jaxsr generator directory (repeatable)")
  parser.add_argument("--name", action="append", default=[],
                      help="table name of each --model, in order (default: directory name)")
  parser.add_argument("-o", "--out-dir", required=True)
  parser.add_argument("--force", action="store_true", help="overwrite results already in -o")
  parser.add_argument("--restart", action="store_true",
                      help="ignore the journal of an interrupted run in -o (default: the same "
                           "evaluation resumes after the images it finished)")

  group = parser.add_argument_group("protocol (defaults: the protocol's own; all recorded)")
  group.add_argument("--gt-size", metavar="N|HxW|none",
                     help="GT size (Lanczos resize); none: source size cropped to the scale")
  group.add_argument("--scale", type=int, help="LR -> GT factor (custom protocol only)")
  group.add_argument("--blur-sigma", type=float, help="Gaussian blur after the downscale")
  group.add_argument("--blur-kernel-size", type=int, help="odd kernel side")
  group.add_argument("--blur-border", choices=("reflect101", "symmetric", "edge", "constant"))
  group.add_argument("--color-space", choices=("rgb", "y"), help="PSNR / SSIM on RGB or BT.601 Y")
  group.add_argument("--crop-border", type=int, help="pixels dropped per side (default: scale)")
  group.add_argument("--lpips", choices=("alex", "vgg", "none"))
  group.add_argument("--vessel", action=argparse.BooleanOptionalAction,
                     help="Frangi vessel scores (default: on for retina-x2 only)")
  group.add_argument("--bootstrap", type=int, help="bootstrap resamples for the CIs")
  group.add_argument("--seed", type=int, default=0,
                     help="seeds the bootstrap and the --max-images draw")

  group = parser.add_argument_group("data")
  group.add_argument("--max-images", type=int,
                     help="evaluate this many images, drawn at random (--seed) from the data")
  group.add_argument("--crop", type=int, metavar="SIZE",
                     help="central SIZE x SIZE window of each source image (quick runs)")
  group.add_argument("--split", help="TFDS split (default: the builder's only split)")
  group.add_argument("--data-dir", help="TFDS data dir (default ~/tensorflow_datasets)")
  group.add_argument("--manual-dir", help="unpacked download, to prepare an unprepared tfds: set")

  group = parser.add_argument_group("figure and models")
  group.add_argument("--figure-images", type=int, help="images in comparison.png (0: no figure)")
  group.add_argument("--region", action="append", default=[], metavar="IMAGE=TOP,LEFT,SIZE",
                     help="magnified region of an image, in GT pixels (default: auto-picked)")
  group.add_argument("--inset-size", type=int, help="side of auto-picked regions in GT pixels")
  group.add_argument("--dtype", default="fp32", choices=precision.NAMES,
                     help="network compute dtype (bf16 for GPU/TPU)")
  group.add_argument("--intensity-lock", type=float, default=0.0, metavar="SIGMA",
                     help="run every --model with the upscaler's intensity lock (Gaussian sigma "
                          "in LR pixels; see python -m jaxsr.upscale); default 0: off")
  group.add_argument("--quiet", action="store_true", help="no progress bars")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = _parser().parse_args(argv)
  try:
    checked = command.plan(args)
  except command.UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2

  written = command.execute(argv, args, checked)
  with open(os.path.join(args.out_dir, "summary.md")) as f:
    print(f.read())
  print(f"wrote {', '.join(written)} to {args.out_dir}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  # Before JAX's backends start: one CPU device per core, so each image's rows (or its windows)
  # are computed on every core (a no-op on GPUs and TPUs). Here, not in main(): a process that
  # calls main() keeps the devices it chose.
  devices.use_cpu_cores()
  compilation_cache.use_persistent_cache()  # The user's cache folder: compiled once per shape.
  sys.exit(main())
