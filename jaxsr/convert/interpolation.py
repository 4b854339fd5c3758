"""A strength dial between two generators: every weight blended, (1 - alpha) * A + alpha * B.

Real-ESRGAN's inference script blends realesr-general-x4v3 with its -wdn twin this way for its
denoise strength (`dni_weight`). Here A is typically the pretrained model and B the one fine-tuned
on medical images (or the other way round): alpha sets how far to go towards B, so the texture one
of them paints can be dialled down without retraining. Both must be generators of one architecture;
the blend is a model directory like any other, recording both sources and alpha.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import numpy as np

from jaxsr import checkpoint
from jaxsr import models


class InterpolationError(ValueError):
  """The two models cannot be blended (or alpha / the output is unusable); the message says why."""


def _load_generator(directory: Path):
  try:
    variables, metadata = checkpoint.load(directory, expect_kind="generator")
  except checkpoint.CheckpointError as e:
    raise InterpolationError(str(e)) from e
  arch = {**metadata.arch, "type": models.generator_type(metadata.arch)}
  return variables, metadata, arch


def _provenance(directory: Path, variables, metadata) -> dict:
  source = {k: metadata.source[k] for k in ("file", "format", "sha256") if k in metadata.source}
  return {"dir": str(directory.absolute()), "weights_sha256": checkpoint.weights_digest(variables),
          **source}


def blend(a: str | Path, b: str | Path, alpha: float
          ) -> tuple[dict, checkpoint.ModelMetadata]:
  """(variables, metadata) of (1 - alpha) * A + alpha * B, in memory (nothing is written).

  alpha = 0 gives A's weights and 1 gives B's, bit for bit. The blend is computed in float64 and
  kept in the models' own dtype (float32). The metadata records both sources and alpha.
  """
  a, b = Path(a), Path(b)
  if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
    raise InterpolationError(f"--alpha must be between 0 (model A) and 1 (model B), got {alpha}")
  a_vars, a_meta, a_arch = _load_generator(a)
  b_vars, b_meta, b_arch = _load_generator(b)
  if a_arch != b_arch:
    differ = sorted(k for k in set(a_arch) | set(b_arch) if a_arch.get(k) != b_arch.get(k))
    raise InterpolationError(
        f"{a} and {b} are different architectures ("
        + ", ".join(f"{k}: {a_arch.get(k)} vs {b_arch.get(k)}" for k in differ)
        + "); only generators of one architecture can be blended")
  if jax.tree.structure(a_vars) != jax.tree.structure(b_vars) or any(
      x.shape != y.shape for x, y in zip(jax.tree.leaves(a_vars), jax.tree.leaves(b_vars))):
    raise InterpolationError(f"{a} and {b} declare one architecture but hold differently shaped "
                             "weights; convert them again with `python -m jaxsr.convert`")
  scales = {a_meta.source.get("output_scale"), b_meta.source.get("output_scale")}
  if len(scales) > 1:
    raise InterpolationError(f"{a} and {b} resize their output to different scales "
                             f"({sorted(map(str, scales))}); blend models of one output scale")

  def mix(x, y):
    mixed = (1.0 - alpha) * np.asarray(x, np.float64) + alpha * np.asarray(y, np.float64)
    return mixed.astype(np.asarray(x).dtype)

  variables = jax.tree.map(mix, a_vars, b_vars)
  source = {"format": "interpolation", "alpha": float(alpha),
            "a": _provenance(a, a_vars, a_meta), "b": _provenance(b, b_vars, b_meta)}
  if scales != {None}:
    source["output_scale"] = scales.pop()
  return variables, checkpoint.ModelMetadata(kind="generator", arch=dict(a_meta.arch),
                                             source=source)


def interpolate(a: str | Path, b: str | Path, alpha: float, out: str | Path, *,
                overwrite: bool = False) -> Path:
  """Writes the model directory `out` holding `blend(a, b, alpha)`; returns its path."""
  a, b, out = Path(a), Path(b), Path(out)
  if out.absolute() in (a.absolute(), b.absolute()):
    raise InterpolationError(f"-o {out} is one of the models being blended; write the blend to a "
                             "new directory")
  if out.exists() and not overwrite:
    raise InterpolationError(f"{out} already exists; choose another -o or pass --force to "
                             "replace it")
  variables, metadata = blend(a, b, alpha)
  return checkpoint.save(out, variables, metadata, overwrite=overwrite)
