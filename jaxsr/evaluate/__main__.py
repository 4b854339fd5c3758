"""python -m jaxsr.evaluate: the paper's evaluation protocol on any data, in one command.

  python -m jaxsr.evaluate --protocol retina-x2 --data tfds:drive --manual-dir ~/DRIVE \\
      --model x4plus --model finetuned -o results/drive
  python -m jaxsr.evaluate --protocol chest-x4 --data tfds:nih_chest_xray14/random40_seed0 \\
      --model x4plus --name Real-ESRGAN -o results/nih
  python -m jaxsr.evaluate --protocol retina-x2 --data skimage:retina.jpg --model x4plus -o out
  python -m jaxsr.evaluate --protocol custom --scale 2 --gt-size none --crop 96 \\
      --data scans/ --model x2net -o out

--data: a source spec, the grammar training uses too (jaxsr.data.source_specs):
tfds:NAME[/CONFIG] (jaxsr's TFDS builders), bundled:train|heldout (the offline split),
skimage[:NAME,...] (scikit-image's fundus images), pydicom-data[:NAME,...] (its radiographs), or an
image / DICOM file, a folder or a quoted glob; repeatable. Bicubic is always evaluated as the
baseline. Writes per_image.csv, summary.json, summary.md and comparison.png to -o; every protocol
option, the data and each model's provenance (and any resize of its output to the protocol's
scale) are recorded in summary.json and summary.md. Bad --model / --data / options: a message and exit code 2, before any work.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from typing import Optional, Sequence

import jax
import ml_collections

from jaxsr import checkpoint
from jaxsr.data import source_specs
from jaxsr.evaluate import data, models, protocols, run
from jaxsr.models import precision

RESULT_FILES = ("per_image.csv", "summary.json", "summary.md", "comparison.png")


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
  group.add_argument("--quiet", action="store_true", help="no progress bars")
  return parser


def parse_gt_size(text: str) -> Optional[tuple[int, int]]:
  """'512' -> (512, 512); '768x1024' -> (768, 1024) as HxW; 'none' -> None."""
  if text.lower() == "none":
    return None
  parts = text.lower().split("x")
  if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
    raise ValueError(f"--gt-size {text!r}: expected N, HxW or none")
  return (int(parts[0]), int(parts[-1]))


def build_protocol(args):
  """The protocol ConfigDict with the command line's options; raises ValueError / KeyError."""
  overrides = {}
  if args.scale is not None:
    if args.protocol != "custom":
      raise ValueError(f"--scale is fixed by {args.protocol}; use --protocol custom")
    overrides["scale"] = args.scale
  if args.gt_size is not None:
    overrides["gt_size"] = parse_gt_size(args.gt_size)
  for flag in ("blur_sigma", "blur_kernel_size", "blur_border"):
    if getattr(args, flag) is not None:
      overrides[flag] = getattr(args, flag)
  config = protocols.get_protocol(args.protocol, **overrides)
  # `get_protocol` sets crop_border = scale; the metric options go on top of that.
  if args.crop_border is not None:
    config.metrics.crop_border = args.crop_border
  if args.color_space is not None:
    config.metrics.color_space = args.color_space
  if args.lpips is not None:
    config.metrics.lpips_net = "" if args.lpips == "none" else args.lpips
  if args.vessel is not None:
    config.metrics.vessel = args.vessel
  if args.bootstrap is not None:
    config.report.n_bootstrap = args.bootstrap
  if args.figure_images is not None:
    config.report.figure_images = args.figure_images
  if args.inset_size is not None:
    config.report.inset_size = args.inset_size
  config.report.seed = args.seed
  border = config.metrics.crop_border
  if border < 0 or (config.gt_size is not None and 2 * border >= min(config.gt_size)):
    raise ValueError(f"--crop-border {border} leaves nothing of a {config.gt_size} GT")
  return config


def parse_regions(texts: Sequence[str], image_names: Sequence[str], gt_size) -> dict:
  """'NAME=TOP,LEFT,SIZE' -> {NAME: (top, left, size)}, checked against the images and GT size."""
  regions = {}
  for text in texts:
    name, _, numbers = text.rpartition("=")
    values = numbers.split(",")
    if not name or len(values) != 3 or not all(v.strip().isdigit() for v in values):
      raise ValueError(f"--region {text!r}: expected IMAGE=TOP,LEFT,SIZE")
    top, left, size = (int(v) for v in values)
    if name not in image_names:
      raise ValueError(f"--region {text!r}: no image {name!r} in the data "
                       f"(images: {', '.join(image_names[:8])})")
    if size < 1 or (gt_size is not None and (top + size > gt_size[0] or left + size > gt_size[1])):
      raise ValueError(f"--region {text!r} does not fit in the {gt_size[0]}x{gt_size[1]} GT")
    regions[name] = (top, left, size)
  return regions


class UsageError(ValueError):
  """Something wrong with the command line; reported with exit code 2 before any work."""


@dataclasses.dataclass
class Plan:
  """A checked command: nothing below needs to fail on the user's input any more."""

  protocol: ml_collections.ConfigDict
  specs: list  # models.ModelSpec, in --model order.
  images: list  # data.LazyImage, selected.
  n_listed: int
  regions: dict


def plan(args) -> Plan:
  """Checks every option, model directory (metadata only) and data spec; raises UsageError."""
  try:
    protocol = build_protocol(args)
  except (ValueError, KeyError) as e:
    raise UsageError(str(e)) from e
  if args.name and len(args.name) != len(args.model):
    raise UsageError(f"{len(args.name)} --name for {len(args.model)} --model; "
                     "give one per model or none")
  try:
    specs = [models.check(directory, name)
             for directory, name in zip(args.model, args.name or [None] * len(args.model))]
  except checkpoint.CheckpointError as e:
    raise UsageError(str(e)) from e
  names = [spec.name for spec in specs]
  if len(set(names)) != len(names) or protocol.baseline in names:
    raise UsageError(f"model names must be unique and not {protocol.baseline!r} (the baseline): "
                     f"{names}; set them with --name")
  if args.max_images is not None and args.max_images < 1:
    raise UsageError("--max-images must be at least 1")
  if args.crop is not None and args.crop < protocol.scale:
    raise UsageError(f"--crop {args.crop} is smaller than the scale {protocol.scale}")
  try:
    listed = [image for spec in args.data for image in data.list_images(
        spec, split=args.split, data_dir=args.data_dir, manual_dir=args.manual_dir)]
    images = data.select(listed, args.max_images, args.seed)
    data.check_unique(images)
    regions = parse_regions(args.region, [image.name for image in images], protocol.gt_size)
  except ValueError as e:  # DataError and bad --region.
    raise UsageError(str(e)) from e
  existing = [f for f in RESULT_FILES if os.path.exists(os.path.join(args.out_dir, f))]
  if existing and not args.force:
    raise UsageError(f"{args.out_dir} already holds results ({', '.join(existing)}); "
                     "pass --force to overwrite them")
  return Plan(protocol, specs, images, len(listed), regions)


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = _parser().parse_args(argv)
  try:
    checked = plan(args)
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2

  for name in RESULT_FILES:  # With --force: no stale figure next to new numbers.
    if os.path.exists(os.path.join(args.out_dir, name)):
      os.remove(os.path.join(args.out_dir, name))
  networks = {}
  for spec in checked.specs:
    print(f"loading {spec.name} from {spec.directory} (x{spec.network_scale})", file=sys.stderr)
    networks[spec.name] = models.NetworkModel(spec, dtype=args.dtype)
  extra, notes = describe_run(argv, args, checked)
  run.evaluate(data.ImageList(checked.images, crop=args.crop), networks, checked.protocol,
               args.out_dir, regions=checked.regions, progress=not args.quiet, extra=extra,
               resume=not args.restart,
               notes=notes)
  with open(os.path.join(args.out_dir, "summary.md")) as f:
    print(f.read())
  written = [f for f in RESULT_FILES if os.path.exists(os.path.join(args.out_dir, f))]
  print(f"wrote {', '.join(written)} to {args.out_dir}", file=sys.stderr)
  return 0


def describe_run(argv, args, checked: Plan) -> tuple[dict, list[str]]:
  """summary.json entries and summary.md lines: the command, the data, the models, the machine."""
  device = jax.devices()[0]
  scale, images, n_listed = checked.protocol.scale, checked.images, checked.n_listed
  extra = {
      "command": "python -m jaxsr.evaluate " + shlex.join(argv),
      "data": {
          "specs": list(args.data),
          "n_listed": n_listed,
          "max_images": args.max_images,
          "selection_seed": args.seed if len(images) < n_listed else None,
          "crop": args.crop,
          "images": {image.name: image.where for image in images},
      },
      "model_details": {spec.name: models.record(spec, scale, args.dtype)
                        for spec in checked.specs},
      "machine": {"jax": jax.__version__, "platform": device.platform,
                  "device": device.device_kind, "cpu_count": os.cpu_count()},
  }
  shown = ", ".join(image.name for image in images[:6]) + (", ..." if len(images) > 6 else "")
  selection = (f", {len(images)} drawn from {n_listed} with seed {args.seed}"
               if len(images) < n_listed else "")
  crop = f"; central {args.crop}x{args.crop} crop of each source image" if args.crop else ""
  count = f"{len(images)} image" + ("s" if len(images) != 1 else "")
  notes = [f"Data: {', '.join(f'`{spec}`' for spec in args.data)} ({count}: "
           f"{shown}{selection}){crop}."]
  notes += [f"Model {models.note(spec, scale)}" for spec in checked.specs]
  notes.append(f"s / image: wall time of one call on {os.cpu_count()} CPU cores"
               if device.platform == "cpu" else f"s / image: wall time on {device.device_kind}")
  notes[-1] += ", the first image of each model including JIT compilation."
  return extra, notes


if __name__ == "__main__":
  sys.exit(main())
