"""Export of the EMA generator: a jaxsr model directory (for upscale/evaluate) and a PyTorch `.pth`.

Runs at the end of training, or on demand from any checkpoint of a run:

    python -m jaxsr.train.export --workdir runs/stare [--step 2000] [--no-pth]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import tqdm

from jaxsr import checkpoint
from jaxsr import convert
from jaxsr.train import run_record


def export_ema(workdir: Path, *, generator_arch: dict[str, int], ema_params: Any, step: int,
               torch_file: bool = True, name: str = "generator_ema",
               note: dict | None = None) -> dict[str, str]:
  """Writes WORKDIR/export/NAME (+ .pth); returns the paths written.

  `note` adds entries to the model's `source` metadata (e.g. the validation score it was picked by).
  """
  out_dir = workdir / "export" / name
  params = jax.tree.map(np.asarray, jax.device_get(ema_params))
  meta = checkpoint.ModelMetadata(kind="generator", arch=dict(generator_arch),
                                  source={"file": str(workdir), "format": "jaxsr-train", "step": step,
                                          "params": "ema", **(note or {})})
  written = {"model_dir": str(checkpoint.save(out_dir, {"params": params}, meta, overwrite=True))}
  if torch_file:
    try:
      written["pth"] = str(convert.export_torch(out_dir, out_dir.with_suffix(".pth")))
    except convert.ConversionError as e:  # No torch here: the model directory is enough.
      tqdm.tqdm.write(f"note: no .pth written ({e})")
  # tqdm.write: on a line of its own even while the training progress bar is drawn.
  tqdm.tqdm.write(f"exported the EMA generator of step {step}: " + ", ".join(written.values()))
  return written


def export_checkpoint(workdir: Path, step: int | None = None, torch_file: bool = True) -> dict[str, str]:
  import orbax.checkpoint as ocp

  workdir = Path(workdir).absolute()
  arch = run_record.generator_arch(workdir)
  with ocp.CheckpointManager(workdir / "checkpoints",
                             item_handlers=ocp.StandardCheckpointHandler()) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {workdir / 'checkpoints'}")
    # The checkpoint may come from a cluster (its arrays laid out on devices this machine does
    # not have): restore every array onto this process's first device instead.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                          manager.item_metadata(step))
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  return export_ema(workdir, generator_arch=arch, ema_params=restored["ema_params"], step=step,
                    torch_file=torch_file)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxsr.train.export", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, type=Path)
  parser.add_argument("--step", type=int, default=None, help="default: the latest checkpoint")
  parser.add_argument("--no-pth", action="store_true", help="skip the PyTorch file")
  args = parser.parse_args(argv)
  try:
    export_checkpoint(args.workdir, args.step, torch_file=not args.no_pth)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
