"""The correspondence between official PyTorch state dicts and jaxsr's Flax variables.

Pure NumPy: a state dict here is `{key: np.ndarray}` already pulled out of its file. Each network
kind has one function into Flax (validating every key and shape against the Flax module it will be
loaded into) and one back out, so `.pth -> Flax -> .pth` is the identity.

Naming rule (shared by all kinds): a Flax module path joins with "." into the PyTorch key,
`body_N` is PyTorch's `body.N`, Flax `kernel` (HWIO) is PyTorch `weight` (OIHW), and for spectral-
normalised convs `kernel`/`u`/`v` are `weight_orig`/`weight_u`/`weight_v`. VGG19 convs are named
after their layer (`conv3_4`) and stored by torchvision under their index (`features.16`).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import jax
import numpy as np

from jaxsr.models import vgg as vgg_lib
from jaxsr.models.discriminator import SPECTRAL_COLLECTION, UNetDiscriminatorSN
from jaxsr.models.generators import build_generator, generator_type

StateDict = dict[str, np.ndarray]

# Real-ESRGAN scale from the number of input channels of conv_first (pixel-unshuffle folds 2x2
# or 4x4 pixels into channels for the x2 and x1 models).
_SCALE_FROM_IN_CHANNELS = {3: 4, 12: 2, 48: 1}

# Old ESRGAN (pre-BasicSR 1.x) generator key names -> current names.
_LEGACY_GENERATOR_RENAMES = (
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\."), r"body.\1.rdb\2."),
    (re.compile(r"^trunk_conv\."), "conv_body."),
    (re.compile(r"^upconv1\."), "conv_up1."),
    (re.compile(r"^upconv2\."), "conv_up2."),
    (re.compile(r"^HRconv\."), "conv_hr."),
)


# SRVGGNetCompact keys: `body.N.weight` / `body.N.bias` and nothing else.
_COMPACT_KEY = re.compile(r"^body\.(\d+)\.(weight|bias)$")


class LayoutError(ValueError):
  """A state dict does not have the layout of the network it is converted to."""


# ----------------------------------------------------------------------------- kind detection

def detect_kind(state: Mapping[str, Any]) -> str | None:
  """'generator', 'discriminator', 'vgg19', or None when the keys look like none of them."""
  keys = set(state)
  if "conv_first.weight" in keys and any(k.startswith(("body.", "RRDB_trunk.")) for k in keys):
    return "generator"
  if "body.0.weight" in keys and all(_COMPACT_KEY.match(k) for k in keys):
    return "generator"  # SRVGGNetCompact: every layer in one `body` list.
  if "conv1.weight_orig" in keys and "conv9.weight" in keys:
    return "discriminator"
  if "features.0.weight" in keys and "features.34.weight" in keys:
    return "vgg19"
  return None


def describe_keys(state: Mapping[str, Any], limit: int = 6) -> str:
  """A short human description of a state dict, for error messages."""
  items = list(state.items())
  shown = ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in items[:limit])
  more = f", ... ({len(items)} entries)" if len(items) > limit else ""
  return shown + more if items else "no entries"


def normalize_generator_keys(state: Mapping[str, np.ndarray]) -> StateDict:
  """Maps old ESRGAN names (`RRDB_trunk.*`, `trunk_conv`, `upconv1`, `HRconv`) to current ones."""
  out = {}
  for key, value in state.items():
    for pattern, repl in _LEGACY_GENERATOR_RENAMES:
      key = pattern.sub(repl, key)
    out[key] = value
  return out


# ----------------------------------------------------------------------------- architecture inference

def infer_generator_arch(state: Mapping[str, np.ndarray], act_type: str | None = None
                         ) -> dict[str, Any]:
  """The generator's arch dict (see `jaxsr.models.generators`) from key names and shapes alone.

  `act_type` is needed only for an SRVGGNetCompact without PReLU weights: ReLU and LeakyReLU
  have no parameters, so the file cannot tell which of the two it was trained with."""
  if "conv_first.weight" not in state and "body.0.weight" in state:
    return infer_compact_arch(state, act_type)
  return infer_rrdbnet_arch(state)


def infer_compact_arch(state: Mapping[str, np.ndarray], act_type: str | None = None
                       ) -> dict[str, Any]:
  """SRVGGNetCompact hyper-parameters. Its body list alternates conv and activation, so the convs
  sit at even indices 0, 2, ..., 2 * num_conv + 2, and PReLU slopes (when PReLU) at odd ones."""
  indices = sorted({int(m.group(1)) for k in state if (m := _COMPACT_KEY.match(k))})
  convs = [i for i in indices if np.ndim(state.get(f"body.{i}.weight")) == 4]
  prelus = [i for i in indices if np.ndim(state.get(f"body.{i}.weight")) == 1]
  if len(convs) < 2 or convs != list(range(0, 2 * len(convs), 2)):
    raise LayoutError(f"not an SRVGGNetCompact: its convolutions should be body.0, body.2, ..., "
                      f"but the file holds {describe_keys(state)}")
  first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
  num_in_ch, num_feat = int(first.shape[1]), int(first.shape[0])
  scale = int(round((int(last.shape[0]) / num_in_ch) ** 0.5))
  if scale < 1 or num_in_ch * scale * scale != int(last.shape[0]):
    raise LayoutError(f"the last convolution has {last.shape[0]} outputs, which is not "
                      f"{num_in_ch} channels x scale^2 for any scale")
  if prelus:
    if prelus != [i + 1 for i in convs[:-1]]:
      raise LayoutError("an SRVGGNetCompact has one PReLU after every convolution but the last; "
                        f"this file has PReLU weights at body.{prelus}")
    found = "prelu"
    if act_type not in (None, found):
      raise LayoutError(f"the file holds PReLU weights, so its activation is prelu, not {act_type}")
  elif act_type in ("relu", "leakyrelu"):
    found = act_type
  else:
    raise LayoutError("this SRVGGNetCompact has no PReLU weights, so it uses ReLU or LeakyReLU, "
                      "and a file cannot tell which: pass --act-type relu or --act-type leakyrelu")
  return dict(type="SRVGGNetCompact", scale=scale, num_in_ch=num_in_ch, num_out_ch=num_in_ch,
              num_feat=num_feat, num_conv=len(convs) - 2, act_type=found)


def infer_rrdbnet_arch(state: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """RRDBNet hyper-parameters from weight shapes alone."""
  try:
    first = state["conv_first.weight"]
    growth = state["body.0.rdb1.conv1.weight"]
    last = state["conv_last.weight"]
  except KeyError as e:
    raise LayoutError(f"not an RRDBNet generator: key {e.args[0]!r} is missing; "
                      f"the file holds {describe_keys(state)}") from e
  in_ch = int(first.shape[1])
  if in_ch not in _SCALE_FROM_IN_CHANNELS:
    raise LayoutError(f"conv_first takes {in_ch} input channels; Real-ESRGAN RRDBNets take 3 (x4), "
                      "12 (x2, pixel-unshuffle 2) or 48 (x1, pixel-unshuffle 4)")
  blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
  return dict(type="RRDBNet", scale=_SCALE_FROM_IN_CHANNELS[in_ch], num_feat=int(first.shape[0]),
              num_block=len(blocks), num_grow_ch=int(growth.shape[0]),
              num_out_ch=int(last.shape[0]))


# ----------------------------------------------------------------------------- generic mapping

def _flax_shapes(module, *args, **kwargs) -> dict[str, Any]:
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))
  return jax.tree.map(lambda a: a.shape, variables)


def _flatten(tree, prefix=()) -> dict[tuple[str, ...], Any]:
  flat = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      flat.update(_flatten(v, prefix + (k,)))
    else:
      flat[prefix + (k,)] = v
  return flat


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = value
  return tree


def _to_torch_value(value: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(value.transpose(3, 2, 0, 1)) if value.ndim == 4 else value


def _to_flax_value(value: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(value.transpose(2, 3, 1, 0)) if value.ndim == 4 else value


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  return (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else tuple(shape)


def _build(state: Mapping[str, np.ndarray], expected: Mapping[tuple[str, ...], tuple[int, ...]],
           key_of: Callable[[tuple[str, ...]], str], what: str) -> dict[str, Any]:
  """Pulls every expected Flax leaf out of `state`, checking names and shapes; all-or-nothing."""
  wanted = {key_of(path): path for path in expected}
  missing = [k for k in wanted if k not in state]
  unexpected = [k for k in state if k not in wanted]
  wrong = [(k, tuple(np.shape(state[k])), _torch_shape(expected[wanted[k]]))
           for k in wanted if k in state and tuple(np.shape(state[k])) != _torch_shape(expected[wanted[k]])]
  problems = []
  if missing:
    problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:4])})")
  if unexpected:
    problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:4])})")
  if wrong:
    problems.append(f"{len(wrong)} shape mismatches (first: " + "; ".join(
        f"{k} is {got}, expected {exp}" for k, got, exp in wrong[:3]) + ")")
  if problems:
    raise LayoutError(f"the weights do not fit {what}: " + ", ".join(problems) + ".")
  flat = {path: _to_flax_value(np.asarray(state[key], np.float32)) for key, path in wanted.items()}
  return _unflatten(flat)


def _export(variables: Mapping[str, Any], key_of: Callable[[tuple[str, ...]], str]) -> StateDict:
  return {key_of(path): _to_torch_value(np.asarray(v)) for path, v in _flatten(variables).items()}


# ----------------------------------------------------------------------------- generator

def _generator_key(path: tuple[str, ...]) -> str:
  _, *modules, leaf = path  # Drop the "params" collection.
  modules = [re.sub(r"^body_(\d+)$", r"body.\1", m) for m in modules]
  # Conv kernels are PyTorch's `weight`; PReLU slopes are called `weight` on both sides.
  return ".".join(modules + [{"kernel": "weight", "bias": "bias", "weight": "weight"}[leaf]])


def generator_expected_shapes(arch: Mapping[str, Any]):
  module = build_generator(arch)
  size = 4 * module.input_multiple  # Any size the network accepts; shapes do not depend on it.
  return _flatten(_flax_shapes(module, np.zeros((1, size, size, module.num_in_ch), np.float32)))


def describe_arch(arch: Mapping[str, Any]) -> str:
  """`RRDBNet(scale=4, num_feat=64, ...)`: an arch dict as the constructor call it stands for."""
  args = ", ".join(f"{k}={v}" for k, v in arch.items() if k != "type")
  return f"{generator_type(arch)}({args})"


def generator_from_torch(state: Mapping[str, np.ndarray], act_type: str | None = None
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
  """(Flax variables {"params": ...}, arch) from an RRDBNet (current or legacy names) or an
  SRVGGNetCompact state dict; which one is read off the keys."""
  state = normalize_generator_keys(state)
  arch = infer_generator_arch(state, act_type)
  expected = generator_expected_shapes(arch)
  return _build(state, expected, _generator_key, describe_arch(arch)), arch


def generator_to_torch(variables: Mapping[str, Any]) -> StateDict:
  return _export({"params": variables["params"]}, _generator_key)


# ----------------------------------------------------------------------------- discriminator

_SN_LEAF = {"kernel": "weight_orig", "u": "weight_u", "v": "weight_v"}


def _discriminator_key(path: tuple[str, ...]) -> str:
  collection, module, leaf = path
  if collection == SPECTRAL_COLLECTION or (module not in ("conv0", "conv9")):
    return f"{module}.{_SN_LEAF[leaf]}"
  return f"{module}.{'weight' if leaf == 'kernel' else 'bias'}"


def infer_discriminator_arch(state: Mapping[str, np.ndarray]) -> dict[str, Any]:
  if "conv0.weight" not in state:
    raise LayoutError(f"not a U-Net discriminator: conv0.weight is missing; the file holds "
                      f"{describe_keys(state)}")
  # The skip connections carry no weights, so they cannot be read off the file: Real-ESRGAN's
  # released discriminators all use them.
  return dict(num_feat=int(state["conv0.weight"].shape[0]), skip_connection=True)


def discriminator_from_torch(state: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, Any]]:
  """(Flax variables {"params", "spectral"}, arch) from a UNetDiscriminatorSN state dict."""
  arch = infer_discriminator_arch(state)
  module = UNetDiscriminatorSN(**arch)
  expected = _flatten(_flax_shapes(module, np.zeros((1, 8, 8, 3), np.float32)))
  return _build(state, expected, _discriminator_key,
                f"UNetDiscriminatorSN(num_feat={arch['num_feat']})"), arch


def discriminator_to_torch(variables: Mapping[str, Any]) -> StateDict:
  return _export({"params": variables["params"], SPECTRAL_COLLECTION: variables[SPECTRAL_COLLECTION]},
                 _discriminator_key)


# ----------------------------------------------------------------------------- VGG19

def _vgg_key(path: tuple[str, ...]) -> str:
  _, layer, leaf = path
  return f"features.{vgg_lib.VGG19_CONV_INDEX[layer]}.{'weight' if leaf == 'kernel' else 'bias'}"


VGG19_ARCH = dict(layers=list(vgg_lib.VGG19_CONV_INDEX))  # Every conv: any tap can be requested.


def vgg19_from_torch(state: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, Any]]:
  """(Flax variables, arch) from torchvision's vgg19 state dict; the classifier is dropped."""
  features = {k: v for k, v in state.items() if k.startswith("features.")}
  module = vgg_lib.VGG19Features(layers=tuple(VGG19_ARCH["layers"]))
  expected = _flatten(_flax_shapes(module, np.zeros((1, 16, 16, 3), np.float32)))
  return _build(features, expected, _vgg_key, "torchvision VGG19 features"), dict(VGG19_ARCH)


def vgg19_to_torch(variables: Mapping[str, Any]) -> StateDict:
  return _export({"params": variables["params"]}, _vgg_key)


FROM_TORCH = {"generator": generator_from_torch, "discriminator": discriminator_from_torch,
              "vgg19": vgg19_from_torch}
TO_TORCH = {"generator": generator_to_torch, "discriminator": discriminator_to_torch,
            "vgg19": vgg19_to_torch}
