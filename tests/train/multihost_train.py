"""The tiny training run of test_trainer.py, alone or as one of several processes on loopback.

Run in subprocesses by test_trainer.py (one process) and test_data_parallel.py (several):
  python multihost_train.py --workdir W --data D --steps N [--process_id I --num_processes P
      --port PORT] [--sigterm_at_step K]      (the signal reaches only the process that gets it)
Prints "RESULT <process> <step> <stopped_by>".
"""

import argparse
import os
import signal
import sys
from pathlib import Path


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--data", required=True)
  parser.add_argument("--steps", type=int, required=True)
  parser.add_argument("--process_id", type=int, default=None)
  parser.add_argument("--num_processes", type=int, default=1)
  parser.add_argument("--port", type=int, default=0)
  parser.add_argument("--sigterm_at_step", type=int, default=0, help="0: never")
  args = parser.parse_args()

  from jaxsr.train import sharding
  if args.process_id is not None:
    sharding.initialize_distributed(f"localhost:{args.port}", args.num_processes, args.process_id)

  sys.path.insert(0, str(Path(__file__).parent))
  from test_trainer import tiny_config  # pylint: disable=import-outside-toplevel

  from jaxsr.train import trainer

  config = tiny_config(Path(args.data), total_steps=args.steps)
  config.num_devices = 0  # Every device of every process (one each here).
  config.checkpoint_every_steps = 1000  # Only the final (or the stop's) checkpoint.
  config.stop_check_every_steps = 2
  if args.sigterm_at_step:
    # The host side of each step (batch placement) is where the "preemption" arrives. Only
    # training batches count (they carry gt_usm); the image summaries' fixed batch does not.
    place, calls = trainer.sharding.global_batch, []

    def global_batch(local, *a):
      calls.append("gt_usm" in local)
      if sum(calls) == args.sigterm_at_step and calls[-1]:
        os.kill(os.getpid(), signal.SIGTERM)
      return place(local, *a)

    trainer.sharding.global_batch = global_batch
  result = trainer.train(config, Path(args.workdir))
  print("RESULT", args.process_id or 0, result["step"], result["stopped_by"], flush=True)


if __name__ == "__main__":
  main()
