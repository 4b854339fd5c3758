"""Weight conversion between PyTorch / ncnn Real-ESRGAN files and jaxsr model directories.

`convert()` reads an official `.pth` (generator: RRDBNet or SRVGGNetCompact, discriminator, or
torchvision VGG19) or an ncnn `.param`/`.bin` pair, validates it against the Flax network and writes a self-describing model
directory (see `jaxsr.checkpoint`). `export_torch()` goes back to a `.pth` the official PyTorch code
loads with `strict=True`, or to a `.safetensors` file holding exactly the official state-dict keys
(what spandrel and the tools built on it prefer); `interpolation` blends two generators' weights.
torch is imported lazily, only for `.pth` files: reading ncnn files and writing `.safetensors`
never need it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from jaxsr import checkpoint
from jaxsr.convert import layouts, ncnn
from jaxsr.convert.torch_files import (TorchFileError, read_state_dict, write_safetensors,
                                       write_state_dict)

KINDS = ("generator", "discriminator", "vgg19")
# How each kind is wrapped in the official files (generators: EMA weights; torchvision: bare).
EXPORT_WRAPPER_KEY = {"generator": "params_ema", "discriminator": "params", "vgg19": None}
NCNN_SUFFIXES = (".param", ".bin")
EXPORT_SUFFIXES = (".pth", ".pt", ".safetensors")


class ConversionError(Exception):
  """Conversion failed; the message is a complete, user-facing explanation."""


def _sha256(path: Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def default_output(src: str | Path) -> Path:
  """`RealESRGAN_x4plus.pth` -> `./RealESRGAN_x4plus` (a model directory in the working dir)."""
  return Path(Path(src).name).with_suffix("")


def _read_source(src: Path, key: str | None, act_type: str | None):
  """(state dict, provenance, act_type the file reveals or the caller gave)."""
  if src.suffix.lower() in NCNN_SUFFIXES:
    param = src.with_suffix(".param")
    try:
      found = ncnn.read_generator(param, src.with_suffix(".bin"))
    except (ncnn.NcnnError, OSError) as e:
      raise ConversionError(str(e)) from e
    source = {"file": param.name, "format": "ncnn", "sha256": _sha256(param),
              "bin_sha256": _sha256(src.with_suffix(".bin"))}
    if found.output_scale:
      # realesr-animevideov3 x2/x3: the x4 network, then a bicubic resize of its output.
      source["output_scale"] = found.output_scale
    if act_type and found.act_type and act_type != found.act_type:
      raise ConversionError(f"{src} uses {found.act_type} activations, not {act_type}")
    return found.state, source, act_type or found.act_type
  try:
    state, info = read_state_dict(src, key)
  except TorchFileError as e:
    raise ConversionError(str(e)) from e
  return (state, {"file": src.name, "format": "pth", "sha256": _sha256(src), "key": info["key"]},
          act_type)


def convert(src: str | Path, out: str | Path | None = None, *, kind: str = "auto",
            key: str | None = None, act_type: str | None = None, overwrite: bool = False) -> Path:
  """Converts weights at `src` into a model directory at `out`; returns its path.

  `act_type` (relu | leakyrelu) is needed only for an SRVGGNetCompact `.pth` without PReLU weights,
  whose activation the file cannot tell."""
  src = Path(src)
  if kind != "auto" and kind not in KINDS:
    raise ConversionError(f"--kind must be auto or one of {KINDS}, got {kind!r}")
  if not src.exists():
    raise ConversionError(f"{src} does not exist")
  out = Path(out) if out else default_output(src)
  if out.exists() and not overwrite:
    raise ConversionError(f"{out} already exists; choose another -o or pass --force to replace it")

  state, source, act_type = _read_source(src, key, act_type)
  detected = layouts.detect_kind(state)
  if kind == "auto":
    if detected is None:
      raise ConversionError(
          f"{src} does not look like a Real-ESRGAN generator, discriminator or torchvision VGG19: "
          f"its weights are {layouts.describe_keys(state)}. If it is one of them under other "
          "names, pass --kind; if the weights sit under a wrapper key, pass --key.")
    kind = detected
  elif detected is not None and detected != kind:
    raise ConversionError(
        f"{src} holds a {detected} (weights {layouts.describe_keys(state, 3)}), not a {kind}. "
        f"Use --kind {detected} (or --kind auto) to convert it as what it is.")

  try:
    if kind == "generator":
      variables, arch = layouts.generator_from_torch(state, act_type)
    else:
      variables, arch = layouts.FROM_TORCH[kind](state)
  except layouts.LayoutError as e:
    raise ConversionError(f"{src}: {e}") from e
  metadata = checkpoint.ModelMetadata(kind=kind, arch=arch, source=source)
  return checkpoint.save(out, variables, metadata, overwrite=overwrite)


def export_torch(model_dir: str | Path, out: str | Path) -> Path:
  """Writes a model directory back out in the official PyTorch layout; the format is `out`'s suffix.

  `.pth` / `.pt`: a torch pickle, generators under `params_ema` and discriminators under `params`
  as in the official releases (VGG19 bare, as torchvision's). `.safetensors`: the same state dict,
  flat (exactly the official keys), float32, written without torch.
  """
  suffix = Path(out).suffix.lower()
  if suffix not in EXPORT_SUFFIXES:
    raise ConversionError(f"cannot tell the export format from {Path(out).name}; name it "
                          f"{' or '.join(EXPORT_SUFFIXES)}")
  try:
    variables, metadata = checkpoint.load(model_dir)
  except checkpoint.CheckpointError as e:
    raise ConversionError(str(e)) from e
  state = layouts.TO_TORCH[metadata.kind](variables)
  try:
    if suffix == ".safetensors":
      return write_safetensors(out, state)
    return write_state_dict(out, state, EXPORT_WRAPPER_KEY[metadata.kind])
  except TorchFileError as e:
    raise ConversionError(str(e)) from e
