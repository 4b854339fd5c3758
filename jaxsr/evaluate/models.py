"""jaxsr generator directories as `run.evaluate` models: `upscale(lr, scale) -> sr`.

The protocol fixes the output scale. A network of another scale runs at its own scale and its
output is resized to the protocol's with PIL Lanczos-3 (`Upscaler.upscale(outscale=...)`, what
Real-ESRGAN's `--outscale` does): x4plus under retina-x2 is "x4, then Lanczos to x2". `record`
and `note` put that into the result files, so no number hides how it was produced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxsr import checkpoint
from jaxsr.infer.upscaler import Upscaler
from jaxsr.models.generators import generator_type

RESIZE_METHOD = "PIL Lanczos-3"
GRAY_HANDLING = ("gray inputs (all channels equal) go in as gray: the network sees the value in "
                 "all three channels and the BT.601 luma of its output is kept, as Real-ESRGAN "
                 "and `python -m jaxsr.upscale` treat gray files")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  directory: str
  metadata: checkpoint.ModelMetadata

  @property
  def network_scale(self) -> int:
    return int(self.metadata.arch["scale"])


def check(directory: str, name: str | None = None) -> ModelSpec:
  """Reads a model directory's metadata only (cheap), so a bad `--model` fails before any work.

  Raises:
    checkpoint.CheckpointError: missing directory or metadata, no variables, or not a generator.
  """
  path = Path(directory)
  metadata = checkpoint.load_metadata(path)
  if metadata.kind != "generator":
    raise checkpoint.CheckpointError(
        f"{directory} holds a {metadata.kind}, not a generator; evaluate a generator directory "
        "(e.g. python -m jaxsr.convert RealESRGAN_x4plus.pth -o x4plus)")
  if not (path / checkpoint.VARIABLES_DIR).is_dir():
    raise checkpoint.CheckpointError(
        f"{directory} has {checkpoint.METADATA_FILE} but no {checkpoint.VARIABLES_DIR}/ folder; "
        "the model directory is incomplete")
  return ModelSpec(name=name or path.resolve().name, directory=str(directory), metadata=metadata)


class NetworkModel:
  """A loaded generator as `upscale(lr, scale)` on HxWx3 float32 images in [0, 1]."""

  def __init__(self, spec: ModelSpec, dtype: str = "fp32", intensity_lock: float = 0.0):
    self.spec = spec
    self.upscaler = Upscaler(spec.directory, dtype=dtype, intensity_lock=intensity_lock)

  def __call__(self, lr: np.ndarray, scale: int) -> np.ndarray:
    gray = np.array_equal(lr[..., 0], lr[..., 1]) and np.array_equal(lr[..., 0], lr[..., 2])
    sr = self.upscaler.upscale(lr[..., 0] if gray else lr, outscale=scale)
    return np.repeat(sr[..., None], 3, axis=-1) if gray else sr


def output_resize(spec: ModelSpec, scale: int) -> str | None:
  """How the network's output is brought to the protocol's scale; None when it already is."""
  if spec.network_scale == scale:
    return None
  return (f"network x{spec.network_scale} output resized to x{scale} with {RESIZE_METHOD} "
          f"(Upscaler outscale={scale})")


def record(spec: ModelSpec, scale: int, dtype: str, intensity_lock: float = 0.0) -> dict:
  """What summary.json says about a model: where it came from and how it was run."""
  return {
      "directory": spec.directory,  # As given: the sha256 in `source` identifies the weights.
      "arch": dict(spec.metadata.arch),
      "source": dict(spec.metadata.source),
      "network_scale": spec.network_scale,
      "output_scale": scale,
      "output_resize": output_resize(spec, scale),
      "dtype": dtype,
      "intensity_lock_sigma": intensity_lock,  # 0: the network's own output.
      "gray_inputs": GRAY_HANDLING,
  }


def note(spec: ModelSpec, scale: int, intensity_lock: float = 0.0) -> str:
  """One Markdown line for summary.md."""
  arch = spec.metadata.arch
  source = spec.metadata.source
  origin = ""
  if source.get("file"):
    digest = source.get("sha256", "")
    origin = f" from `{source['file']}`" + (f" (sha256 {digest[:12]}...)" if digest else "")
  resize = output_resize(spec, scale)
  size = (f"{arch.get('num_conv')} convs" if generator_type(arch) == "SRVGGNetCompact"
          else f"{arch.get('num_block')} blocks")
  return (f"`{spec.name}`: {generator_type(arch)} x{spec.network_scale} ({size}, "
          f"{arch.get('num_feat')} features){origin}; "
          + (f"{resize}" if resize else f"output at the network's own scale x{scale}")
          + (f"; intensity lock, sigma {intensity_lock:g} input pixels (jaxsr.infer.intensity)."
             if intensity_lock else "."))
