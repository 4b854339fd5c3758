"""Reading and writing PyTorch weight files: `.pth` (the only place jaxsr imports torch) and
`.safetensors` (written with the `safetensors` package's NumPy API: no torch).

Files are opened with `torch.load(weights_only=True)`: tensors and plain containers only, never
arbitrary pickled objects (a `.pth` from the internet is code otherwise). Files are written
atomically (a temporary file in the target's folder, renamed over it when complete) and get the
mode any new file gets (0644 under the usual umask 022), not a temporary file's 0600: both through
`jaxsr.io.atomic_write`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from jaxsr.io.atomic import atomic_write

# Wrapper keys of the official releases, in order of preference: Real-ESRGAN generators carry the
# EMA weights under `params_ema` (use those), discriminators and older files under `params`.
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")


class TorchFileError(ValueError):
  """A `.pth` file cannot be read as a weight file."""


def import_torch():
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # Chained: a broken install says why here.
    raise TorchFileError("reading/writing .pth files needs PyTorch, which jaxsr uses for weight "
                         "conversion only: pip install 'jaxsr[convert]' (CPU build: pip install "
                         "torch --index-url https://download.pytorch.org/whl/cpu)") from e
  return torch


def read_state_dict(path: str | Path, key: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """(state dict as float32 NumPy arrays, info {"key": wrapper used, "top_level": keys}) of a `.pth`."""
  torch = import_torch()
  path = Path(path)
  if not path.is_file():
    raise TorchFileError(f"{path} does not exist or is not a file")
  if path.stat().st_size == 0:
    raise TorchFileError(f"{path} is empty")
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    raise TorchFileError(
        f"{path} was refused: it contains pickled Python objects other than tensors, and jaxsr "
        f"never unpickles those (torch.load weights_only=True). PyTorch said: {_first_line(e)}. "
        "If you trust the file, re-save just its state dict: "
        "torch.save(torch.load(f, weights_only=False)['params_ema'], 'clean.pth').") from e
  except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
    raise TorchFileError(f"{path} cannot be read as a PyTorch file; it is truncated, corrupt or "
                         f"not a .pth at all ({type(e).__name__}: {_first_line(e)})") from e
  if not isinstance(obj, dict):
    raise TorchFileError(f"{path} holds a {type(obj).__name__}, not a state dict (a dict of tensors)")

  top_level = list(obj)
  used_key = None
  if key is not None:
    if key not in obj:
      raise TorchFileError(f"{path} has no entry {key!r}; its top-level keys are {top_level[:8]}")
    obj, used_key = obj[key], key
  elif not _is_tensor_dict(obj, torch):
    for candidate in WRAPPER_KEYS:
      if isinstance(obj.get(candidate), dict):
        obj, used_key = obj[candidate], candidate
        break
  if not isinstance(obj, dict) or not obj:
    raise TorchFileError(f"{path}: the entry {used_key!r} is not a non-empty state dict")

  state = {}
  for name, value in obj.items():
    if not torch.is_tensor(value):
      continue  # e.g. BatchNorm's num_batches_tracked counters in other architectures.
    name = name[len("module."):] if name.startswith("module.") else name
    state[name] = value.detach().to(torch.float32).numpy().copy()
  if not state:
    raise TorchFileError(f"{path} holds no tensors (top-level keys: {top_level[:8]})")
  return state, {"key": used_key, "top_level": top_level}


def write_state_dict(path: str | Path, state: dict[str, np.ndarray], wrapper_key: str | None) -> Path:
  """Saves `{wrapper_key: state}` (or the bare state) as a `.pth`, atomically."""
  torch = import_torch()
  tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
  payload = {wrapper_key: tensors} if wrapper_key else tensors
  return atomic_write(path, lambda f: torch.save(payload, f))


def write_safetensors(path: str | Path, state: dict[str, np.ndarray]) -> Path:
  """Saves `state` (flat: safetensors has no wrapper keys) as float32 `.safetensors`, atomically.

  Needs the `safetensors` package, not torch. The header's metadata says `format: pt`, as files
  written by PyTorch code do (some loaders check it).
  """
  try:
    from safetensors import numpy as safetensors_numpy  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise TorchFileError("writing .safetensors files needs the safetensors package: "
                         "pip install safetensors") from e
  arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
  data = safetensors_numpy.save(arrays, metadata={"format": "pt"})
  return atomic_write(path, lambda f: f.write(data))


def _is_tensor_dict(obj: dict, torch) -> bool:
  return bool(obj) and all(torch.is_tensor(v) for v in obj.values())


def _first_line(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return text[0][:300] if text else type(e).__name__
