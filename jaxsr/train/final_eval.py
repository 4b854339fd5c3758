"""After fine-tuning: the starting generator vs the fine-tuned EMA generator on held-out images.

`config.evaluate_after` = {data: a source spec, images: "PROTOCOL:NAME,...;PROTOCOL:..."}: each
protocol scores the named images of the source (all of them when no name is given) with
`jaxsr.evaluate` itself (protocols, model wrapper, provenance, reports, figures); results land in
WORKDIR/eval/PROTOCOL/ (per_image.csv, summary.json, summary.md, comparison.png).
"""

from __future__ import annotations

import functools
from pathlib import Path

from jaxsr.evaluate import run


def pretrained_vs_finetuned(config, workdir: Path, pretrained_dir: Path, finetuned_dir: Path) -> dict:
  plan = run.parse_protocol_images(config.images)
  summaries = run.evaluate_model_dirs(
      {protocol: functools.partial(run.source_images, config.data, names)
       for protocol, names in plan.items()},
      {"pretrained": str(pretrained_dir), "fine-tuned": str(finetuned_dir)},
      str(workdir / "eval"), data={"source": config.data, "images": config.images})
  for protocol in summaries:
    print(f"held-out evaluation: {workdir / 'eval' / protocol / 'summary.md'}")
  return summaries
