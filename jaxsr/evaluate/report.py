"""Result files of an evaluation: per-image CSV, JSON summary with bootstrap CIs, Markdown tables.

A *row* is one (image, model) pair: `{"image": str, "model": str, <metric>: float, ...,
"seconds": float}`. From the rows:

* `per_image.csv`: one line per row, every metric.
* `summary.json`: the protocol options, per model mean / std / n of each metric, and for every pair
  of models the mean paired difference (later model minus earlier one, image by image) with a
  percentile bootstrap 95 % CI. The bootstrap resamples *images*, with one seeded draw of indices
  shared by every metric and pair, so the CIs are reproducible and mutually consistent.
* `summary.md`: the same as Markdown tables, ready for a README.

Non-finite values (PSNR of an exact copy is +inf; a vessel score without a field of view is NaN)
are left out of means and differences, and written to JSON as null.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
from typing import Optional, Sequence

import numpy as np

from jaxsr.evaluate.metrics import METRIC_DIRECTIONS, distance_from_best

# Column headers of the Markdown tables.
METRIC_LABELS = {
    "psnr": "PSNR (dB) ↑",
    "ssim": "SSIM ↑",
    "lpips": "LPIPS ↓",
    "hfen": "HFEN ↓",
    "grad_ratio": "Grad. energy ratio (1 = GT)",
    "texture_ratio": "Texture-area grad. ratio (1 = GT)",
    "bias": "Mean bias (levels, 0 = GT)",
    "vessel_r": "Vessel r ↑",
    "vessel_f1": "Vessel F1 ↑",
}
_DECIMALS = {"psnr": 2, "bias": 2}  # Everything else gets 4.


def bootstrap_mean_ci(values: np.ndarray, n_bootstrap: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> tuple[float, float]:
  """Percentile bootstrap CI of the mean of `values` (1-D), resampling with replacement."""
  values = np.asarray(values, np.float64)
  indices = _bootstrap_indices(len(values), n_bootstrap, seed)
  return _percentile_interval(values[indices].mean(axis=1), confidence)


def _bootstrap_indices(n: int, n_bootstrap: int, seed: int) -> np.ndarray:
  if n == 0:
    raise ValueError("Cannot bootstrap an empty sample")
  return np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))


def _percentile_interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
  tail = 100.0 * (1.0 - confidence) / 2.0
  low, high = np.percentile(means, [tail, 100.0 - tail])
  return float(low), float(high)


def summarize(rows: Sequence[dict], metric_names: Sequence[str], protocol: Optional[dict] = None,
              n_bootstrap: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict:
  """Per-model statistics and paired differences between all models (see the module docstring).

  Models keep their order of first appearance in `rows`; the pair (a, b) with a before b is
  reported as "b - a" (so "model - bicubic" when the baseline comes first).
  """
  images = list(dict.fromkeys(row["image"] for row in rows))
  models = list(dict.fromkeys(row["model"] for row in rows))
  # values[model][metric]: one entry per image, NaN where that row is missing.
  position = {image: i for i, image in enumerate(images)}
  columns = list(metric_names) + (["seconds"] if any("seconds" in r for r in rows) else [])
  values = {model: {name: np.full(len(images), np.nan) for name in columns} for model in models}
  for row in rows:
    for name in columns:
      if row.get(name) is not None:
        values[row["model"]][name][position[row["image"]]] = float(row[name])

  per_model = {}
  for model in models:
    per_model[model] = {name: _describe(values[model][name]) for name in columns}

  indices = _bootstrap_indices(len(images), n_bootstrap, seed) if images else None
  paired = {}
  for first, second in itertools.combinations(models, 2):
    paired[f"{second} - {first}"] = {
        name: _paired_difference(values[second][name], values[first][name], indices, confidence)
        for name in metric_names
    }
  return {
      "protocol": protocol,
      "n_images": len(images),
      "images": images,
      "models": models,
      "metrics": list(metric_names),
      "metric_directions": {name: METRIC_DIRECTIONS.get(name, "") for name in metric_names},
      "per_model": per_model,
      "paired_differences": paired,
      "bootstrap": {"n_resamples": n_bootstrap, "seed": seed, "confidence": confidence,
                    "method": "percentile, images resampled with replacement"},
  }


def _describe(values: np.ndarray) -> dict:
  finite = values[np.isfinite(values)]
  return {
      "mean": float(finite.mean()) if finite.size else None,
      "std": float(finite.std(ddof=1)) if finite.size > 1 else None,
      "n": int(finite.size),
  }


def _paired_difference(second: np.ndarray, first: np.ndarray, indices: Optional[np.ndarray],
                       confidence: float) -> dict:
  """Mean of second - first over images where both are finite, with its bootstrap CI.

  The shared bootstrap draw is reused; images with a non-finite difference get weight 0 in each
  resample (the mean is over the finite ones drawn), so one missing value does not reshuffle the
  draw of every other metric.
  """
  differences = second - first
  finite = np.isfinite(differences)
  if not finite.any():
    return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
  mean = float(differences[finite].mean())
  if finite.sum() < 2:  # One image: no spread to resample, so no interval.
    return {"mean": mean, "ci_low": None, "ci_high": None, "n": 1}
  drawn_finite = finite[indices]
  drawn_values = np.where(drawn_finite, np.nan_to_num(differences, posinf=0.0, neginf=0.0)[indices],
                          0.0)
  counts = drawn_finite.sum(axis=1)
  usable = counts > 0
  means = drawn_values.sum(axis=1)[usable] / counts[usable]
  low, high = _percentile_interval(means, confidence)
  return {"mean": mean, "ci_low": low, "ci_high": high, "n": int(finite.sum())}


def write_csv(rows: Sequence[dict], metric_names: Sequence[str], path: str) -> None:
  """One line per (image, model): image, model, every metric, seconds (if timed)."""
  columns = ["image", "model", *metric_names]
  if any("seconds" in row for row in rows):
    columns.append("seconds")
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
      writer.writerow({key: _csv_value(row.get(key)) for key in columns})


def _csv_value(value):
  if isinstance(value, float):
    return repr(value)  # Full precision; inf / nan as Python spells them.
  return value


def write_json(summary: dict, path: str) -> None:
  with open(path, "w") as f:
    json.dump(_finite_or_null(summary), f, indent=2, allow_nan=False)
    f.write("\n")


def _finite_or_null(value):
  if isinstance(value, dict):
    return {key: _finite_or_null(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite_or_null(item) for item in value]
  if isinstance(value, (float, np.floating)):
    return float(value) if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  return value


def _format(value: Optional[float], metric: str, signed: bool = False) -> str:
  if value is None:
    return "n/a"
  decimals = _DECIMALS.get(metric, 4)
  return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _best_model(summary: dict, metric: str) -> Optional[str]:
  direction = summary["metric_directions"].get(metric)
  means = {model: stats[metric]["mean"] for model, stats in summary["per_model"].items()
           if stats[metric]["mean"] is not None}
  if not means or direction not in ("higher", "lower", "one", "zero"):
    return None
  return min(means, key=lambda model: distance_from_best(means[model], direction))


def markdown_table(summary: dict, title: Optional[str] = None,
                   protocol_line: Optional[str] = None) -> str:
  """Markdown: mean ± std per model (best in bold), then paired differences with 95 % CIs."""
  metrics = summary["metrics"]
  has_time = any("seconds" in stats for stats in summary["per_model"].values())
  lines = []
  if title:
    lines += [f"### {title}", ""]
  if protocol_line:
    lines += [protocol_line, ""]
  header = ["Model", *[METRIC_LABELS.get(m, m) for m in metrics]]
  if has_time:
    header.append("s / image")
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  best = {metric: _best_model(summary, metric) for metric in metrics}
  for model in summary["models"]:
    stats = summary["per_model"][model]
    cells = [model]
    for metric in metrics:
      mean, std = stats[metric]["mean"], stats[metric]["std"]
      cell = _format(mean, metric) + (f" ± {_format(std, metric)}" if std is not None else "")
      cells.append(f"**{cell}**" if best[metric] == model else cell)
    if has_time:
      cells.append(_format(stats["seconds"]["mean"], "seconds", signed=False))
    lines.append("| " + " | ".join(cells) + " |")
  n = summary["n_images"]
  spread = "mean ± sample std" if n > 1 else "one image, so no spread or interval"
  lines += ["", f"n = {n} image{'s' if n != 1 else ''}; {spread}; best in bold."]

  if summary["paired_differences"]:
    confidence = summary["bootstrap"]["confidence"]
    lines += ["", f"Paired differences (mean [{100 * confidence:.0f} % bootstrap CI], "
              f"{summary['bootstrap']['n_resamples']} resamples of the images, "
              f"seed {summary['bootstrap']['seed']}):", ""]
    header = ["Difference", *[METRIC_LABELS.get(m, m) for m in metrics]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for pair, stats in summary["paired_differences"].items():
      cells = [pair]
      for metric in metrics:
        d = stats[metric]
        cells.append(_format(d["mean"], metric, signed=True)
                     + (f" [{_format(d['ci_low'], metric, True)}, "
                        f"{_format(d['ci_high'], metric, True)}]" if d["ci_low"] is not None
                        else ""))
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_reports(rows: Sequence[dict], metric_names: Sequence[str], protocol: dict,
                  out_dir: str, n_bootstrap: int = 2000, seed: int = 0,
                  protocol_line: Optional[str] = None, extra: Optional[dict] = None) -> dict:
  """Writes per_image.csv, summary.json and summary.md into `out_dir`.

  `extra` entries are added to the JSON summary (e.g. the figure's regions). Returns the summary
  as written to JSON (non-finite values as None).
  """
  os.makedirs(out_dir, exist_ok=True)
  write_csv(rows, metric_names, os.path.join(out_dir, "per_image.csv"))
  summary = summarize(rows, metric_names, protocol, n_bootstrap=n_bootstrap, seed=seed)
  clashes = sorted(set(summary) & set(extra or {}))
  if clashes:  # An extra entry must not silently replace a computed one.
    raise ValueError(f"extra entries {clashes} would replace the summary's own")
  summary = _finite_or_null({**summary, **(extra or {})})
  write_json(summary, os.path.join(out_dir, "summary.json"))
  title = protocol.get("name") if protocol else None
  with open(os.path.join(out_dir, "summary.md"), "w") as f:
    f.write(markdown_table(summary, title=title, protocol_line=protocol_line))
  return summary
