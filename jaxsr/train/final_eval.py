"""After fine-tuning: the starting generator vs the fine-tuned EMA generator on held-out images.

Uses `jaxsr.evaluate` (the paper's protocols, metrics, reports, figures); results land in
WORKDIR/eval/ (per_image.csv, summary.json, summary.md, comparison.png).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _images(spec: str, max_images: int):
  from jaxsr.data import source as source_lib

  images = source_lib.open_source(spec, split="test")
  for index in range(min(len(images), max_images)):
    pixels = images.read(index)
    scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    pixels = pixels.astype(np.float32) / scale
    if pixels.shape[-1] == 1:
      pixels = np.repeat(pixels, 3, axis=-1)
    yield images.name(index), pixels[..., :3]


def pretrained_vs_finetuned(config, workdir: Path, pretrained_dir: Path, finetuned_dir: Path) -> dict:
  from jaxsr.evaluate import protocols, run
  from jaxsr.infer.upscaler import Upscaler

  protocol = protocols.get_protocol(config.protocol)
  if config.get("gt_size"):
    protocol.gt_size = tuple(config.gt_size)
  models = {}
  for name, directory in (("pretrained", pretrained_dir), ("fine-tuned", finetuned_dir)):
    upscaler = Upscaler(directory)
    models[name] = lambda lr, scale, up=upscaler: up.upscale(lr, outscale=scale)
  summary = run.evaluate(_images(config.data, config.max_images), models, protocol,
                         str(workdir / "eval"))
  print(f"held-out evaluation: {workdir / 'eval' / 'summary.md'}")
  return summary
