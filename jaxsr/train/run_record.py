"""WORKDIR/run.json: what a checkpoint alone does not say about a training run.

It holds the generator's architecture (so `jaxsr.train.export` can rebuild it from a bare
checkpoint), the full configuration the run started with, one entry per resume that ran
with a different configuration (which fields changed, from what to what, at which step), and
the best held-out validation so far (so a resumed run keeps comparing against it). A
resumed run with a changed configuration is allowed (raising `total_steps` is the usual
reason) but never silent: the trainer prints the differences and they stay on record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUN_INFO = "run.json"

# Changing these on resume is routine, so it is recorded but not announced.
_ROUTINE_CHANGES = frozenset({"total_steps"})


def flatten_config(config) -> dict[str, Any]:
  """A (nested) ConfigDict or dict as {"a.b.c": value}; values are JSON scalars.

  Lists and tuples become their repr, so a field's history reads the way it was written.
  """
  items = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  flat = {}
  for key, value in items.items():
    if isinstance(value, dict) or hasattr(value, "to_dict"):
      flat.update({f"{key}.{k}": v for k, v in flatten_config(value).items()})
    elif value is None or isinstance(value, (bool, int, float, str)):
      flat[key] = value
    else:
      flat[key] = repr(value)
  return flat


def config_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
  """{field: [old, new]} for every field whose value differs, appeared or disappeared."""
  return {key: [before.get(key), after.get(key)] for key in sorted(before.keys() | after.keys())
          if before.get(key) != after.get(key)}


def record_start(workdir: Path, *, generator_arch: dict[str, int], config,
                 start_step: int) -> dict[str, list[Any]]:
  """Writes or updates run.json for a run (re)starting at `start_step`; returns the changes.

  A fresh run (step 0, or a workdir without run.json) records its config; a resume compares
  its config with the effective one so far and records the differences, if any.
  """
  path = Path(workdir) / RUN_INFO
  flat = flatten_config(config)
  record = json.loads(path.read_text()) if path.exists() and start_step > 0 else {}
  changes = {}
  if "config" in record:
    effective = dict(record["config"])
    for resume in record.get("resumes", []):
      effective.update({key: new for key, (_, new) in resume["changed"].items()})
    changes = config_changes(effective, flat)
    if changes:
      record.setdefault("resumes", []).append({"step": start_step, "changed": changes})
  else:
    record["config"] = flat
  record["generator_arch"] = dict(generator_arch)
  _write(path, record)
  return changes


def describe_changes(changes: dict[str, list[Any]]) -> str | None:
  """A console line for the changes that are not routine; None if there are none."""
  notable = {k: v for k, v in changes.items() if k not in _ROUTINE_CHANGES}
  if not notable:
    return None
  fields = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in notable.items())
  return f"note: this run resumes with a different configuration ({fields}); recorded in {RUN_INFO}"


def best_validation(workdir: Path) -> dict[str, Any] | None:
  """{"step", "metric", "value"} of the best validation so far, or None."""
  path = Path(workdir) / RUN_INFO
  return json.loads(path.read_text()).get("best_validation") if path.exists() else None


def record_best_validation(workdir: Path, *, step: int, metric: str, value: float) -> None:
  path = Path(workdir) / RUN_INFO
  record = json.loads(path.read_text())
  record["best_validation"] = {"step": step, "metric": metric, "value": value}
  _write(path, record)


def _write(path: Path, record: dict[str, Any]) -> None:
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(json.dumps(record, indent=2))
  os.replace(temporary, path)  # A run killed mid-write keeps the previous record.


def generator_arch(workdir: Path) -> dict[str, int]:
  path = Path(workdir) / RUN_INFO
  if not path.exists():
    raise FileNotFoundError(f"{workdir} is not a jaxsr training directory ({RUN_INFO} is missing)")
  return json.loads(path.read_text())["generator_arch"]
