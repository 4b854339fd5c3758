"""The evaluation driver: protocol -> every model (+ the bicubic baseline) -> metrics -> files.

A model is any callable `upscale(lr, scale) -> sr`, with `lr` an HxWx3 float32 image in [0, 1] and
`sr` its (scale*H)x(scale*W)x3 upscaling; nothing here knows about networks or checkpoints.

`evaluate` writes into `out_dir`:
  per_image.csv    one row per (image, model): every metric and the model's seconds
  summary.json     protocol options, per-model mean/std, paired differences with bootstrap CIs
  summary.md       the same as Markdown tables
  comparison.png   LR | models | GT with magnified regions, for the first few images

While it runs, finished images are journaled in `out_dir/evaluation.partial/`: the same
evaluation started again after an interruption skips them (see `journal`).
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

import ml_collections
import numpy as np
import tqdm

from jaxsr.data import source_specs
from jaxsr.evaluate import figures, metrics, protocols, report
from jaxsr.evaluate import journal as journal_lib
from jaxsr.evaluate import models as models_lib

Upscaler = Callable[[np.ndarray, int], np.ndarray]

# `extra` entries that may differ between an interrupted run and its resumption.
UNFINGERPRINTED = ("command", "machine")


def evaluate(images: Iterable[tuple[str, np.ndarray]], models: Mapping[str, Upscaler],
             protocol: ml_collections.ConfigDict, out_dir: str,
             regions: Optional[Mapping[str, figures.Region]] = None,
             progress: bool = True, extra: Optional[Mapping] = None,
             notes: Sequence[str] = (), resume: bool = True) -> dict:
  """Evaluates `models` on `images` under `protocol`; writes the result files; returns the summary.

  Args:
    images: (name, HxW[x3] float image in [0, 1]) pairs, e.g. from `source_images`; names must be
      unique.
    models: name -> upscale(lr, scale). The baseline (`protocol.baseline`, PIL bicubic) is added
      as the first model; a model may not take its name.
    protocol: from `protocols.get_protocol`; recorded in every result file.
    out_dir: folder for the result files (created).
    regions: optional image name -> (top, left, size) of the figure's magnified region in GT
      pixels; other images get an automatically picked one.
    progress: show a tqdm progress bar.
    extra: more entries for summary.json (e.g. where the models and images came from).
    notes: Markdown lines for summary.md, after the protocol line (e.g. how a model was run).
    resume: continue an interrupted run of the same evaluation (same protocol, model names and
      `extra` except its "command" and "machine" entries) from its journal in `out_dir`;
      False starts over.

  Returns:
    The summary written to summary.json (see `report.summarize`).
  """
  if protocol.baseline in models:
    raise ValueError(f"{protocol.baseline!r} is the built-in baseline; rename that model")
  if protocol.report.figure_images and importlib.util.find_spec("matplotlib") is None:
    # Fail before minutes of work, not after.
    raise ImportError("The comparison figure needs matplotlib (pip install matplotlib), or set "
                      "protocol.report.figure_images = 0")
  all_models = {protocol.baseline: protocols.bicubic_upscale, **models}
  suite = metrics.ImageMetrics(protocol.metrics)
  scale = protocol.scale
  os.makedirs(out_dir, exist_ok=True)

  # Finished images are journaled as they complete, so an interrupted run resumes (see journal).
  fingerprint = {"protocol": protocols.protocol_summary(protocol), "models": list(all_models),
                 "regions": dict(regions or {}),
                 **{k: v for k, v in (extra or {}).items() if k not in UNFINGERPRINTED}}
  journal = journal_lib.Journal(out_dir, fingerprint, resume=resume)
  figure_images = protocol.report.figure_images
  rows, figure_rows, seen = [], [], set()
  # `images` may be sized (then the bar shows a total); a network call can take a minute on a CPU,
  # so the bar also says which model is running.
  bar = tqdm.tqdm(images, desc=f"evaluate {protocol.name}", unit="image", disable=not progress)
  for index, (name, image) in enumerate(bar):
    if name in seen:
      raise ValueError(f"Duplicate image name {name!r}")
    seen.add(name)
    if name in journal.done:
      rows.extend(journal.done[name])
      if index < figure_images:
        figure_rows.append(journal.figure_row(index))
      continue
    gt, lr = protocols.make_pair(image, protocol)
    score = suite.against(gt)
    image_rows, outputs, captions = [], {}, {}
    for model_name, upscale in all_models.items():
      bar.set_postfix_str(f"{name}: {model_name}")
      start = time.perf_counter()
      sr = np.asarray(upscale(lr, scale), np.float32)
      seconds = time.perf_counter() - start
      if sr.shape != gt.shape:
        raise ValueError(f"Model {model_name!r} returned {sr.shape} for LR {lr.shape} at x{scale}; "
                         f"GT is {gt.shape}")
      sr = protocols.scored_output(sr, protocol)
      values = score(sr)
      image_rows.append({"image": name, "model": model_name, **values, "seconds": seconds})
      if index < figure_images:
        outputs[model_name] = sr
        captions[model_name] = f"{values['psnr']:.2f} dB / {values['ssim']:.4f}"
    figure_row = None
    if index < figure_images:
      figure_row = figures.ComparisonRow(
          name=name, lr=lr, outputs=outputs, gt=gt, region=(regions or {}).get(name),
          captions=captions)
      figure_rows.append(figure_row)
    journal.record(name, image_rows, figure_row, index)
    rows.extend(image_rows)

  if not rows:
    raise ValueError("No images to evaluate")
  extra = dict(extra or {})
  if "figure" in extra:
    raise ValueError("'figure' is written by evaluate; pass the regions instead")
  if figure_rows:
    used = figures.comparison_figure(
        figure_rows, os.path.join(out_dir, "comparison.png"), scale,
        inset_size=protocol.report.inset_size, dark_threshold=protocol.report.dark_threshold)
    extra["figure"] = {"file": "comparison.png",
                       "regions": {row.name: list(region)
                                   for row, region in zip(figure_rows, used)}}
  summary = report.write_reports(
      rows, suite.names, protocols.protocol_summary(protocol), out_dir,
      n_bootstrap=protocol.report.n_bootstrap, seed=protocol.report.seed,
      protocol_line="\n\n".join([protocols.describe(protocol), *notes]), extra=extra)
  journal.remove()
  return summary


def evaluate_model_dirs(images_by_protocol: Mapping[str, Callable[[], Iterable[tuple[str, np.ndarray]]]],
                        model_dirs: Mapping[str, str], out_dir: str, *,
                        data: Optional[Mapping] = None, progress: bool = True) -> dict[str, dict]:
  """Scores generator directories under several protocols: what a training run's final
  evaluation and the fine-tuning study both do, with the provenance `jaxsr.evaluate` records.

  Args:
    images_by_protocol: protocol name -> a function returning that protocol's (name, image) pairs.
    model_dirs: table name -> generator directory (bicubic is added as the baseline).
    out_dir: results go to OUT/PROTOCOL/ (per_image.csv, summary.json, summary.md,
      comparison.png); an interrupted evaluation resumes from its journal there.
    data: where the images came from, for summary.json.

  Returns:
    protocol name -> the summary written to its summary.json.
  """
  networks = {name: models_lib.NetworkModel(models_lib.check(directory, name))
              for name, directory in model_dirs.items()}
  summaries = {}
  for protocol_name, images in images_by_protocol.items():
    protocol = protocols.get_protocol(protocol_name)
    summaries[protocol_name] = evaluate(
        images(), networks, protocol, os.path.join(out_dir, protocol_name), progress=progress,
        notes=[models_lib.note(net.spec, protocol.scale) for net in networks.values()],
        extra={"data": dict(data or {}),
               "model_details": {name: models_lib.record(net.spec, protocol.scale, "fp32")
                          for name, net in networks.items()}})
  return summaries


def source_images(spec: str, names: Sequence[str] = ()) -> Iterator[tuple[str, np.ndarray]]:
  """(name, HxWx3 float32 in [0, 1]) of the images of a data source (any `source_specs` spec: a
  folder, "bundled:heldout", "tfds:NAME", ...), the named ones in that order, or all of them.

  Images are read as `jaxsr.evaluate --data` reads them (`ImageSource.read_float`); the names are
  the source's (`ImageSource.name`).

  Raises:
    KeyError: naming what is missing, before any image is decoded.
    jaxsr.data.source.SourceError: the spec names nothing readable.
  """
  images = source_specs.open_source(spec, split="test")
  indices = images.indices(names) if names else range(len(images))
  return ((images.name(i), images.read_float(i)) for i in indices)


def parse_protocol_images(text: str) -> dict[str, list[str]]:
  """"chest-x4:RG1_UNCR.dcm;retina-x2:retina.jpg[bottom],microaneurysms.png" -> {protocol: names}.

  The held-out images of a training run or study, by the protocol that scores them; a protocol
  with no names (e.g. "chest-x4:") scores every image of the source.
  """
  plan: dict[str, list[str]] = {}
  for part in filter(None, (p.strip() for p in text.split(";"))):
    name, sep, images = part.partition(":")
    if not sep or name.strip() not in protocols.PROTOCOL_NAMES:
      raise ValueError(f"{part!r}: expected PROTOCOL:NAME[,NAME...] with a protocol of "
                       f"{protocols.PROTOCOL_NAMES}")
    plan[name.strip()] = [image.strip() for image in images.split(",") if image.strip()]
  return plan
