"""The generator architectures jaxsr knows, by name, and the arch dicts that describe them.

A generator's arch dict (in model directories, run.json and `config.generator.arch`) names its
architecture under "type" (the class name) beside the constructor's arguments:
  {"type": "RRDBNet", "scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32, ...}
  {"type": "SRVGGNetCompact", "scale": 4, "num_feat": 64, "num_conv": 16, "act_type": "prelu"}
Arch dicts written before the compact network existed have no "type"; they are RRDBNets.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax

from jaxsr.models.rrdbnet import RRDBNet
from jaxsr.models.srvgg import SRVGGNetCompact

GENERATORS: dict[str, type[nn.Module]] = {"RRDBNet": RRDBNet, "SRVGGNetCompact": SRVGGNetCompact}
DEFAULT_TYPE = "RRDBNet"
# The constructor arguments an arch dict records for each type (dtype is a runtime choice), and
# the ones it may also give. RRDBNet's input channels are not recorded: conversion cannot read
# them off an x2/x1 file (pixel-unshuffle folds them into conv_first's inputs).
_ARCH_FIELDS = {
    "RRDBNet": ("scale", "num_feat", "num_block", "num_grow_ch", "num_out_ch"),
    "SRVGGNetCompact": ("scale", "num_in_ch", "num_out_ch", "num_feat", "num_conv", "act_type"),
}
_OPTIONAL_FIELDS = {"RRDBNet": ("num_in_ch",), "SRVGGNetCompact": ()}


class GeneratorArchError(ValueError):
  """An arch dict names an unknown architecture or arguments it does not take."""


def generator_type(arch: Mapping[str, Any]) -> str:
  name = arch.get("type", DEFAULT_TYPE)
  if name not in GENERATORS:
    raise GeneratorArchError(f"unknown generator type {name!r}; jaxsr knows {sorted(GENERATORS)}")
  return name


def build_generator(arch: Mapping[str, Any], dtype=None) -> nn.Module:
  """The Flax generator an arch dict describes (compute dtype optional; params stay fp32)."""
  name = generator_type(arch)
  kwargs = {k: v for k, v in arch.items() if k != "type"}
  known = _ARCH_FIELDS[name] + _OPTIONAL_FIELDS[name]
  unknown = sorted(set(kwargs) - set(known))
  if unknown:
    raise GeneratorArchError(
        f"{name} takes {', '.join(known)}; it has no {', '.join(unknown)}. "
        f"(Is the weights file a different architecture than the one configured?)")
  if dtype is not None:
    kwargs["dtype"] = dtype
  return GENERATORS[name](**kwargs)


def for_inference(generator: nn.Module) -> nn.Module:
  """The same network, with the same parameters, set up for forward passes only: an RRDBNet
  scans its blocks (`RRDBNet.scan_body`: faster to compile per input shape, as fast to run,
  slow to differentiate) and, on a CPU, computes its dense blocks by Winograd
  (`RRDBNet.winograd`: 4x fewer multiply-adds, not differentiated; GPUs' libraries choose their
  own algorithms). Other generators come back unchanged."""
  if isinstance(generator, RRDBNet):
    return generator.clone(scan_body=True, winograd=jax.default_backend() == "cpu")
  return generator


def arch_of(generator: nn.Module) -> dict[str, Any]:
  """The arch dict that rebuilds `generator` (the inverse of `build_generator`)."""
  name = type(generator).__name__
  if name not in _ARCH_FIELDS:
    raise GeneratorArchError(f"{name} is not a generator jaxsr knows")
  return {"type": name, **{k: getattr(generator, k) for k in _ARCH_FIELDS[name]}}


def receptive_radius(generator: nn.Module) -> int | None:
  """Input pixels of context an output pixel depends on (each side), when it is small enough to
  matter for tiling; None for networks that see far beyond any practical tile pad (RRDBNet)."""
  return getattr(generator, "receptive_radius", None)
