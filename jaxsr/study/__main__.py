"""python -m jaxsr.study --config configs/finetune_study.py [--workdir runs/study] [--out DIR]

Trains every arm of the study config (or those named by --arms), then scores the pretrained
generator and each arm's EMA generator on the held-out images with the paper's protocols at full
resolution, and writes README.md, results.json, config.json and one folder of evaluation files
per protocol to --out. Interrupted? Run the same command again: training resumes from the arms'
checkpoints and the evaluation from its journal.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxsr.infer import compilation_cache
from jaxsr.train import sharding  # JAX is imported, not started: the device count is still open.

_CONFIG = config_flags.DEFINE_config_file("config", None, "Study config file.", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", "runs/study", "Training runs of the arms go here.")
_OUT = flags.DEFINE_string("out", "docs/results/finetune", "Result files go here.")
_ARMS = flags.DEFINE_string("arms", None, "Comma-separated arm names, or 'all' (default: the "
                            "config's default_arms).")
flags.mark_flags_as_required(["config"])


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  study = _CONFIG.value
  sharding.use_cpu_cores(study.train.batch_size)
  # The arms differ in data and options, not in shapes, so they compile the same programs (train
  # step, validation, evaluation): with the cache each is compiled once for the whole study, and
  # not at all when an interrupted study resumes. A cache the user set up wins.
  compilation_cache.use_persistent_cache()
  # After the CPU device count is set: nothing these import may start JAX's backends first.
  from jaxsr.study import runner, writeup  # pylint: disable=import-outside-toplevel

  start = time.perf_counter()
  workdir, out = Path(_WORKDIR.value).absolute(), Path(_OUT.value)
  try:
    arms = runner.select_arms(study.arms, _ARMS.value or study.default_arms)
    configs = {arm["name"]: runner.arm_config(study.train, arm.get("overrides", {})).to_dict()
               for arm in arms}  # Every override is checked before anything trains.
  except runner.StudyError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  records = []
  for arm in arms:
    print(f"== arm {arm['name']}: {arm.get('label', '')}", flush=True)
    records.append(runner.train_arm(study.train, arm, workdir))
  models = {**runner.starting_models(study.train, arms, workdir),
            **{record["name"]: record["model_dir"] for record in records}}
  summaries = runner.evaluate_models(study.evaluation, models, out)
  command = "python -m jaxsr.study " + " ".join(shlex.quote(a) for a in sys.argv[1:])
  machine = {"cpu": writeup.cpu_name(), "cores": os.cpu_count(),
             "devices": f"{len(jax.devices())} {jax.default_backend()} device(s)"}
  readme = writeup.write(out, command=command, arms=records, summaries=summaries,
                         configs=configs, seconds=time.perf_counter() - start, machine=machine,
                         intro=study.get("intro", ""))
  print(f"study written to {readme}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
