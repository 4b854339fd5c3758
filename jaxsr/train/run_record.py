"""WORKDIR/run.json: what a checkpoint alone does not say about a training run.

It holds the generator's architecture (so `jaxsr.train.export` can rebuild it from a bare
checkpoint), the full configuration the run started with, one entry per resume that ran
with a different configuration (which fields changed, from what to what, at which step), and
the best held-out validation so far (so a resumed run keeps comparing against it), how many
validations since have not beaten it, step 0's validation scores (the guard-rails' reference)
and, when the run stopped early, where. A resumed run with a changed configuration is allowed
(raising `total_steps` is the usual reason) but never silent: the trainer prints the differences
and they stay on record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jaxsr.io.atomic import atomic_write

RUN_INFO = "run.json"

# Changes a resume records in run.json without printing: a longer run; fields a jaxsr version
# added (a run from before has None for them) or removed (help text once stored in the config).
_ROUTINE_CHANGES = frozenset({"total_steps"})
_ADDED_FIELDS = frozenset({"generator.arch.type", "discriminator.warmup_steps"})
_REMOVED_FIELDS = frozenset({"generator.howto", "discriminator.howto"})


def _is_routine(key: str, old: Any, new: Any) -> bool:
  return (key in _ROUTINE_CHANGES or (key in _ADDED_FIELDS and old is None)
          or (key in _REMOVED_FIELDS and new is None))


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
                 start_step: int, discriminator_arch: dict[str, Any] | None = None
                 ) -> dict[str, list[Any]]:
  """Writes or updates run.json for a run (re)starting at `start_step`; returns the changes.

  A fresh run (step 0, or a workdir without run.json) records its config; a resume compares
  its config with the effective one so far and records the differences, if any.

  A resume past an early stop (see `early_stopped`: it needs a new `total_steps`) goes on with
  a fresh patience; the early stop moves into that resume's entry.
  """
  path = Path(workdir) / RUN_INFO
  flat = flatten_config(config)
  record = json.loads(path.read_text()) if path.exists() and start_step > 0 else {}
  changes = {}
  if "config" in record:
    changes = config_changes(_effective_config(record), flat)
    stopped = record.pop("early_stopped", None)
    if stopped is not None:
      record.pop("validations_since_best", None)
    if changes or stopped is not None:
      entry = {"step": start_step, "changed": changes}
      if stopped is not None:
        entry["after_early_stop"] = stopped
      record.setdefault("resumes", []).append(entry)
  else:
    record["config"] = flat
  record["generator_arch"] = dict(generator_arch)
  if discriminator_arch is not None:
    record["discriminator_arch"] = dict(discriminator_arch)
  _write(path, record)
  return changes


def _effective_config(record: dict[str, Any]) -> dict[str, Any]:
  """The flat config a run has now: the starting one with every resume's changes applied."""
  effective = dict(record["config"])
  for resume in record.get("resumes", []):
    effective.update({key: new for key, (_, new) in resume["changed"].items()})
  return effective


def describe_changes(changes: dict[str, list[Any]]) -> str | None:
  """A console line for the changes that are not routine; None if there are none."""
  notable = {k: v for k, v in changes.items() if not _is_routine(k, *v)}
  if not notable:
    return None
  fields = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in notable.items())
  return f"note: this run resumes with a different configuration ({fields}); recorded in {RUN_INFO}"


def best_validation(workdir: Path) -> dict[str, Any] | None:
  """{"step", "metric", "value"} of the best validation so far, or None."""
  path = Path(workdir) / RUN_INFO
  return json.loads(path.read_text()).get("best_validation") if path.exists() else None


def record_best_validation(workdir: Path, *, step: int, metric: str, value: float) -> None:
  _update(workdir, best_validation={"step": step, "metric": metric, "value": value})


def validations_since_best(workdir: Path) -> int:
  """How many validations in a row have not beaten the best (early stopping's count)."""
  return int(_read(workdir).get("validations_since_best", 0))


def record_validations_since_best(workdir: Path, count: int) -> None:
  _update(workdir, validations_since_best=int(count))


def first_validation(workdir: Path) -> dict[str, float] | None:
  """Step 0's validation scores {"val/<metric>": value}, or None (e.g. validation was off)."""
  return _read(workdir).get("first_validation")


def record_first_validation(workdir: Path, scores: dict[str, float]) -> None:
  _update(workdir, first_validation={k: float(v) for k, v in scores.items()})


def record_early_stop(workdir: Path, *, step: int, best_step: int | None) -> None:
  """The run ended at `step` because its best validation (at `best_step`) stopped improving."""
  _update(workdir, early_stopped={"step": step, "best_step": best_step})


def early_stopped(workdir: Path, total_steps: int) -> dict[str, Any] | None:
  """{"step", "best_step"} if the run in `workdir` stopped early and relaunching it with
  `total_steps` would only repeat that (its checkpoint is there, `total_steps` is the same);
  None otherwise: a changed `total_steps` asks for more training."""
  record = _read(workdir)
  stopped = record.get("early_stopped")
  if stopped is None or "config" not in record:
    return None
  if _effective_config(record).get("total_steps") != total_steps:
    return None
  if not (Path(workdir) / "checkpoints" / str(stopped["step"])).is_dir():
    return None  # Checkpoints deleted: a run from scratch, not a relaunch.
  return stopped


def _read(workdir: Path) -> dict[str, Any]:
  path = Path(workdir) / RUN_INFO
  return json.loads(path.read_text()) if path.exists() else {}


def _update(workdir: Path, **entries: Any) -> None:
  path = Path(workdir) / RUN_INFO
  record = json.loads(path.read_text())
  record.update(entries)
  _write(path, record)


def _write(path: Path, record: dict[str, Any]) -> None:
  # A run killed mid-write keeps the previous record.
  atomic_write(path, lambda f: f.write(json.dumps(record, indent=2).encode()))


def generator_arch(workdir: Path) -> dict[str, int]:
  path = Path(workdir) / RUN_INFO
  if not path.exists():
    raise FileNotFoundError(f"{workdir} is not a jaxsr training directory ({RUN_INFO} is missing)")
  return json.loads(path.read_text())["generator_arch"]


def discriminator_arch(workdir: Path) -> dict[str, Any] | None:
  """The discriminator's architecture as run.json recorded it; None for records without it."""
  path = Path(workdir) / RUN_INFO
  return json.loads(path.read_text()).get("discriminator_arch") if path.exists() else None


VALIDATION_LOG = "validation.jsonl"


def record_validation(workdir: Path, step: int, values: dict[str, float]) -> None:
  """Appends one validation's scores to WORKDIR/validation.jsonl (a plain-text twin of the
  TensorBoard val/* curves, for scripts such as the fine-tuning study)."""
  with open(Path(workdir) / VALIDATION_LOG, "a") as f:
    f.write(json.dumps({"step": step, **{k: float(v) for k, v in values.items()}}) + "\n")


def validation_history(workdir: Path) -> list[dict[str, float]]:
  """The run's validations in step order; where a resumed run repeated a step, its last scores."""
  path = Path(workdir) / VALIDATION_LOG
  if not path.exists():
    return []
  by_step = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        entry = json.loads(line)
        by_step[entry["step"]] = entry
  return [by_step[step] for step in sorted(by_step)]
