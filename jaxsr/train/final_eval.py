"""After fine-tuning: the starting generator vs the fine-tuned EMA generator on held-out images.

Uses `jaxsr.evaluate` (the paper's protocols, metrics, reports, figures); results land in
WORKDIR/eval/ (per_image.csv, summary.json, summary.md, comparison.png).
"""

from __future__ import annotations

from pathlib import Path


def pretrained_vs_finetuned(config, workdir: Path, pretrained_dir: Path, finetuned_dir: Path) -> dict:
  from jaxsr.evaluate import protocols, run
  from jaxsr.infer.upscaler import Upscaler
  from jaxsr.train import validation

  protocol = protocols.get_protocol(config.protocol)
  if config.get("gt_size"):
    protocol.gt_size = tuple(config.gt_size)
  models = {}
  for name, directory in (("pretrained", pretrained_dir), ("fine-tuned", finetuned_dir)):
    upscaler = Upscaler(directory)
    models[name] = lambda lr, scale, up=upscaler: up.upscale(lr, outscale=scale)
  summary = run.evaluate(validation.held_out_images(config.data, config.max_images), models, protocol,
                         str(workdir / "eval"))
  print(f"held-out evaluation: {workdir / 'eval' / 'summary.md'}")
  return summary
