"""Model checkpoints: network variables (orbax) plus a metadata file that makes them self-describing.

Layout of a model directory::

    MODEL_DIR/
      jaxsr_model.json     kind, architecture hyper-parameters, provenance (file name, sha256)
      variables/           orbax PyTree checkpoint: {"params": ...} (+ {"spectral": ...} for D)

Loading needs no flags: the metadata says which network to build. Saving is atomic: everything is
written to a sibling staging directory that is renamed into place last, so an interrupted or
failed save never leaves a half-written model behind.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxsr import models

METADATA_FILE = "jaxsr_model.json"
VARIABLES_DIR = "variables"
KINDS = ("generator", "discriminator", "vgg19")
FORMAT_VERSION = 1


class CheckpointError(Exception):
  """A model directory is missing, incomplete or of the wrong kind."""


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
  kind: str
  arch: dict[str, Any]
  source: dict[str, Any] = dataclasses.field(default_factory=dict)
  format_version: int = FORMAT_VERSION

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def save(directory: str | os.PathLike, variables: Any, metadata: ModelMetadata, *,
         overwrite: bool = False) -> Path:
  """Writes `variables` and `metadata` to `directory` atomically; returns the final path."""
  if metadata.kind not in KINDS:
    raise ValueError(f"unknown model kind {metadata.kind!r}; expected one of {KINDS}")
  final = Path(directory).absolute()
  if final.exists() and not overwrite:
    raise CheckpointError(f"{final} already exists; pass overwrite=True (--force) to replace it")
  final.parent.mkdir(parents=True, exist_ok=True)
  staging = final.with_name(f".{final.name}.partial-{os.getpid()}")
  shutil.rmtree(staging, ignore_errors=True)
  try:
    staging.mkdir()
    host_variables = jax.tree.map(np.asarray, variables)
    checkpointer = _orbax_checkpointer()
    checkpointer.save(staging / VARIABLES_DIR, host_variables)
    checkpointer.wait_until_finished()  # Orbax saves asynchronously; the rename must come after.
    meta = dict(json.loads(metadata.to_json()))
    meta["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    (staging / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    if final.exists():
      shutil.rmtree(final)
    os.replace(staging, final)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return final


def load_metadata(directory: str | os.PathLike) -> ModelMetadata:
  path = Path(directory)
  meta_file = path / METADATA_FILE
  if not path.is_dir():
    raise CheckpointError(f"{path} is not a model directory (it does not exist or is a file); "
                          "create one with `python -m jaxsr.convert`")
  if not meta_file.is_file():
    exported = sorted(p for p in (path / "export").glob("generator_*") if p.is_dir())
    if (path / "run.json").is_file() and exported:  # A training workdir: name its exports.
      raise CheckpointError(f"{path} is a training directory, not a model directory; use one of "
                            f"its exports: {', '.join(str(p) for p in exported)}")
    raise CheckpointError(f"{path} is not a jaxsr model directory: {METADATA_FILE} is missing "
                          f"(found: {sorted(p.name for p in path.iterdir())[:8]})")
  raw = json.loads(meta_file.read_text())
  return ModelMetadata(kind=raw["kind"], arch=raw["arch"], source=raw.get("source", {}),
                       format_version=raw.get("format_version", FORMAT_VERSION))


def load(directory: str | os.PathLike, *, expect_kind: str | None = None
         ) -> tuple[dict[str, Any], ModelMetadata]:
  """Returns (variables as NumPy arrays, metadata); checks the kind when `expect_kind` is given."""
  metadata = load_metadata(directory)
  if expect_kind is not None and metadata.kind != expect_kind:
    raise CheckpointError(
        f"{directory} holds a {metadata.kind} ({_describe(metadata)}), but a {expect_kind} is "
        f"needed here. Convert the {expect_kind} weights with `python -m jaxsr.convert` and "
        "point to that directory instead.")
  variables = _orbax_checkpointer().restore(Path(directory).absolute() / VARIABLES_DIR)
  return jax.tree.map(np.asarray, variables), metadata


def weights_digest(variables) -> str:
  """SHA-256 of a model's variables (every leaf's path, dtype, shape and bytes, in tree order):
  the identity of the weights, whatever directory or file name holds them."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(variables):
    array = np.ascontiguousarray(leaf)
    digest.update(f"{jax.tree_util.keystr(path)} {array.dtype} {array.shape}".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def build_model(metadata: ModelMetadata, dtype=None):
  """The Flax module a checkpoint's metadata describes (compute dtype optional, params stay fp32)."""
  # JSON has no tuples; Flax module attributes should be hashable.
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in metadata.arch.items()}
  if metadata.kind == "generator":
    return models.build_generator(kwargs, dtype)
  if dtype is not None:
    kwargs["dtype"] = dtype
  if metadata.kind == "discriminator":
    return models.UNetDiscriminatorSN(**kwargs)
  if metadata.kind == "vgg19":
    return models.VGG19Features(**kwargs)
  raise CheckpointError(f"unknown model kind {metadata.kind!r} in metadata")


def _describe(metadata: ModelMetadata) -> str:
  arch = ", ".join(f"{k}={v}" for k, v in sorted(metadata.arch.items()))
  src = metadata.source.get("file")
  return f"{arch}" + (f"; converted from {src}" if src else "")


def _orbax_checkpointer():
  import orbax.checkpoint as ocp  # Heavy import; only needed when touching variables.

  # A model directory holds host (NumPy) arrays and is written or read by whichever process
  # asks, alone: in a multi-host run (the trainer's export is done by process 0) the default
  # would wait at barriers for every other process.
  this_process = jax.process_index()
  return ocp.StandardCheckpointer(multiprocessing_options=ocp.options.MultiprocessingOptions(
      primary_host=this_process, active_processes={this_process}))
