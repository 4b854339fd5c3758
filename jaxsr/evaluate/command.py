"""What `python -m jaxsr.evaluate` runs, checked before any work: the protocol with the command
line's options, the models (metadata only), the data, the figure regions; and the provenance
(command, data, models, machine) its summary records. `__main__` only parses arguments.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
from typing import Optional, Sequence

import sys

import jax
import ml_collections

from jaxsr import checkpoint
from jaxsr.evaluate import data, models, protocols, run

RESULT_FILES = ("per_image.csv", "summary.json", "summary.md", "comparison.png")


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
  if not (math.isfinite(args.intensity_lock) and args.intensity_lock >= 0):
    raise UsageError(f"--intensity-lock must be >= 0 (0 = off), got {args.intensity_lock}")
  if args.intensity_lock and not specs:
    raise UsageError("--intensity-lock applies to --model networks; none was given")
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
      "model_details": {spec.name: models.record(spec, scale, args.dtype, args.intensity_lock)
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
  notes += [f"Model {models.note(spec, scale, args.intensity_lock)}" for spec in checked.specs]
  notes.append(f"s / image: wall time of one call on {os.cpu_count()} CPU cores"
               if device.platform == "cpu" else f"s / image: wall time on {device.device_kind}")
  notes[-1] += ", the first image of each model including JIT compilation."
  return extra, notes


def execute(argv, args, checked: Plan) -> list[str]:
  """Runs a checked command: loads the networks, evaluates, writes -o; returns the files written."""
  for name in RESULT_FILES:  # With --force: no stale figure next to new numbers.
    if os.path.exists(os.path.join(args.out_dir, name)):
      os.remove(os.path.join(args.out_dir, name))
  networks = {}
  for spec in checked.specs:
    print(f"loading {spec.name} from {spec.directory} (x{spec.network_scale})", file=sys.stderr)
    networks[spec.name] = models.NetworkModel(spec, dtype=args.dtype,
                                              intensity_lock=args.intensity_lock)
  extra, notes = describe_run(argv, args, checked)
  run.evaluate(data.ImageList(checked.images, crop=args.crop), networks, checked.protocol,
               args.out_dir, regions=checked.regions, progress=not args.quiet, extra=extra,
               resume=not args.restart, notes=notes)
  return [f for f in RESULT_FILES if os.path.exists(os.path.join(args.out_dir, f))]
