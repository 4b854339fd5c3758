"""The journal of an evaluation in progress, so an interrupted run resumes where it stopped.

A network evaluation on a CPU can take a minute per image and model; losing hours of it to a
Ctrl-C or a preempted job is not acceptable. `evaluate` records each image here as soon as all
models are scored on it, in `OUT_DIR/evaluation.partial/`:

  rows.jsonl      line 1: the run's fingerprint (protocol, models, data); then one line per
                  finished image with its per-model rows
  figure_K.npz    LR, GT and every model's output of the K-th figure image (the figure needs
                  the pixels, not just the scores)

Running the same evaluation again into the same folder skips the finished images and ends with
the files an uninterrupted run writes; the journal is deleted once they are written. A journal
whose fingerprint differs (other protocol options, models or data) is discarded with a message:
its rows would not be comparable.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from jaxsr.evaluate import figures
from jaxsr.io.atomic import atomic_write

DIRECTORY = "evaluation.partial"


def _plain(value: Any) -> Any:
  """NumPy scalars -> Python ones, so rows survive JSON exactly (floats round-trip via repr)."""
  if isinstance(value, np.generic):
    return value.item()
  return value


class Journal:
  """Finished images of one evaluation (identified by `fingerprint`) in `out_dir`."""

  def __init__(self, out_dir: str, fingerprint: Mapping[str, Any], resume: bool = True):
    self.directory = os.path.join(out_dir, DIRECTORY)
    self._rows_file = os.path.join(self.directory, "rows.jsonl")
    # JSON once, so a fingerprint compares equal to its reloaded self (tuples become lists).
    self._fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=repr))
    self.done: dict[str, list[dict]] = {}
    if resume and os.path.exists(self._rows_file):
      self._load()
    if not self.done:
      shutil.rmtree(self.directory, ignore_errors=True)
      os.makedirs(self.directory)
      with open(self._rows_file, "w") as f:
        f.write(json.dumps({"fingerprint": self._fingerprint}) + "\n")

  def _load(self) -> None:
    with open(self._rows_file) as f:
      lines = f.read().splitlines()
    try:
      header = json.loads(lines[0])
    except (IndexError, json.JSONDecodeError):
      header = {}
    if header.get("fingerprint") != self._fingerprint:
      print(f"note: discarding {self.directory}: it is from an evaluation with other options, "
            "models or data", file=sys.stderr)
      return
    for line in lines[1:]:
      try:
        entry = json.loads(line)
      except json.JSONDecodeError:  # The last line of a run killed while writing it.
        break
      self.done[entry["image"]] = entry["rows"]
    if self.done:
      print(f"resuming: {len(self.done)} image(s) already evaluated ({self.directory})",
            file=sys.stderr)

  def record(self, image: str, rows: Sequence[dict],
             figure_row: Optional[figures.ComparisonRow] = None, figure_index: int = -1) -> None:
    """Adds a finished image (its figure pixels first, so a recorded image always has them)."""
    if figure_row is not None:
      arrays = {"lr": figure_row.lr, "gt": figure_row.gt,
                **{f"out/{name}": out for name, out in figure_row.outputs.items()}}
      meta = {"name": figure_row.name, "captions": dict(figure_row.captions),
              "models": list(figure_row.outputs), "region": figure_row.region}
      path = os.path.join(self.directory, f"figure_{figure_index}.npz")
      atomic_write(path, lambda f: np.savez(f, meta=np.asarray(json.dumps(meta)), **arrays))
    rows = [{key: _plain(value) for key, value in row.items()} for row in rows]
    with open(self._rows_file, "a") as f:
      f.write(json.dumps({"image": image, "rows": rows}) + "\n")
      f.flush()
      os.fsync(f.fileno())
    self.done[image] = rows

  def figure_row(self, figure_index: int) -> figures.ComparisonRow:
    with np.load(os.path.join(self.directory, f"figure_{figure_index}.npz")) as saved:
      meta = json.loads(str(saved["meta"]))
      region = tuple(meta["region"]) if meta["region"] is not None else None
      return figures.ComparisonRow(
          name=meta["name"], lr=saved["lr"], gt=saved["gt"], region=region,
          outputs={name: saved[f"out/{name}"] for name in meta["models"]},
          captions=meta["captions"])

  def remove(self) -> None:
    shutil.rmtree(self.directory, ignore_errors=True)
