"""Train the study's arms and score them on the held-out images.

Each arm is the study's base training config with a few named fields overridden. It trains in
WORKDIR/ARM with `jaxsr.train` (so an interrupted study resumes from its checkpoints) and is scored,
with the pretrained generator and bicubic, by `jaxsr.evaluate.run.evaluate` under each protocol of
the study, at full protocol resolution.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import ml_collections
import numpy as np

from jaxsr.evaluate import run as evaluate_run
from jaxsr.train import config as config_lib
from jaxsr.train import pretrained
from jaxsr.train import run_record
from jaxsr.train import trainer


class StudyError(ValueError):
  """A study config that names nothing runnable; the message says what."""


def arm_config(base: ml_collections.ConfigDict, overrides: Mapping[str, Any]
               ) -> ml_collections.ConfigDict:
  """`base` with the arm's dotted fields replaced; a field the config lacks is a StudyError."""
  try:
    return config_lib.apply_overrides(base, overrides)
  except KeyError as e:
    raise StudyError(e.args[0]) from e


def select_arms(arms: Sequence[Mapping[str, Any]], names: str) -> list[Mapping[str, Any]]:
  """The arms named in `names` (comma-separated; "all" for every arm), in the config's order."""
  known = [arm["name"] for arm in arms]
  if names == "all":
    return list(arms)
  wanted = [name for name in names.split(",") if name]
  unknown = sorted(set(wanted) - set(known))
  if unknown:
    raise StudyError(f"unknown arm(s) {unknown}; the config has {known}")
  return [arm for arm in arms if arm["name"] in wanted]


def train_arm(base: ml_collections.ConfigDict, arm: Mapping[str, Any], workdir: Path) -> dict:
  """Trains (or resumes, or finds finished) one arm; returns its record for the write-up."""
  config = arm_config(base, arm.get("overrides", {}))
  run_dir = workdir / arm["name"]
  start = time.perf_counter()
  result = trainer.train(config, run_dir)
  if result["export"] is None:
    raise StudyError(f"arm {arm['name']!r} stopped early ({result['stopped_by']}); run the same "
                     "command again to resume it")
  return {
      "name": arm["name"],
      "label": arm.get("label", arm["name"]),
      "why": arm.get("why", ""),
      "overrides": dict(arm.get("overrides", {})),
      "steps": result["step"],
      "stopped_by": result["stopped_by"],
      "seconds_this_launch": round(time.perf_counter() - start, 1),
      "model_dir": result["export"]["model_dir"],
      "validation": run_record.validation_history(run_dir),
  }


def pretrained_dir(base: ml_collections.ConfigDict, workdir: Path) -> Path:
  """The starting generator as a model directory (a raw .pth/.param is converted once)."""
  return pretrained.resolve(base.generator.init, "generator", workdir)


def starting_models(base: ml_collections.ConfigDict, arms: Sequence[Mapping[str, Any]],
                    workdir: Path) -> dict[str, str]:
  """Table name -> directory of every starting generator: "pretrained" (the base's), and
  "pretrained-ARM" for an arm that starts from other weights (the compact arm), so each
  fine-tuned row can be read against where it started."""
  models = {"pretrained": str(pretrained_dir(base, workdir))}
  for arm in arms:
    config = arm_config(base, arm.get("overrides", {}))
    if config.generator.init != base.generator.init:
      models[f"pretrained-{arm['name']}"] = str(pretrained_dir(config, workdir))
  return models


def held_out_images(spec: str, names: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
  """(name, HxWx3 float32 in [0, 1]) of the images of source `spec` named `names`, in order."""
  try:
    return evaluate_run.source_images(spec, names)
  except KeyError as e:
    raise StudyError(e.args[0]) from e


def evaluate_models(evaluation: ml_collections.ConfigDict, models: Mapping[str, str],
                    out_dir: Path) -> dict[str, dict]:
  """Scores `models` (table name -> generator directory) under each protocol of `evaluation`
  (`protocols`: protocol name -> the held-out image names it scores) with `jaxsr.evaluate`."""
  images = {protocol: functools.partial(held_out_images, evaluation.data, list(names))
            for protocol, names in evaluation.protocols.items()}
  return evaluate_run.evaluate_model_dirs(
      images, models, str(out_dir),
      data={"source": evaluation.data,
            "images": {k: list(v) for k, v in evaluation.protocols.items()}})
