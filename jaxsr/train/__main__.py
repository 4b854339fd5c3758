"""python -m jaxsr.train --config configs/stare.py --workdir runs/stare [--config.FIELD=VALUE ...]

Resumes automatically from the latest checkpoint in --workdir; SIGTERM/SIGINT save and exit.
Multi-host (GPU clusters, TPU pods): start the same command on every host with --distributed
(cluster auto-detection), or give --coordinator_address/--num_processes/--process_id.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxsr.infer import compilation_cache
from jaxsr.train import sharding  # JAX is imported, not started: the device count is still open.

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and exports.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize().")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (hosts).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Index of this process.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO: keep the console readable.
  # After the flags are read: --help and flag errors stay fast (no TensorFlow), and nothing
  # these import may start JAX's backends before the CPU device count is set below.
  from jaxsr.train import perceptual, pretrained, trainer  # pylint: disable=import-outside-toplevel

  if _DISTRIBUTED.value or _COORDINATOR.value:
    sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  else:  # One host: every CPU core gets a device (a no-op for the GPU/TPU backends).
    sharding.use_cpu_cores(_CONFIG.value.batch_size)
  # A resumed or relaunched run loads the programs compiled before instead of compiling them.
  compilation_cache.use_persistent_cache()
  try:
    trainer.train(_CONFIG.value, _WORKDIR.value)
  except (pretrained.PretrainedWeightsError, perceptual.PerceptualNetworkError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2  # The config names weights that are not there: a usage error.
  except trainer.NonFiniteLossError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1  # A runtime failure: the last good checkpoint is intact.
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
