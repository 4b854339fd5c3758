"""The devices inference spreads its windows over: all local ones, CPU cores included.

XLA's CPU backend runs a convolution on one core, so with JAX's default single CPU device the
other cores idle (1 and 2 threads take the same time). `use_cpu_cores()` asks for one CPU device
per core; `Upscaler` then splits each batch of windows over a mesh of all local devices (one or
more CPU cores, or every GPU / TPU chip of the host). It must run before JAX's backends start
(`python -m jaxsr.upscale` calls it first thing); in a process where JAX already runs, it changes
nothing. Mirrors `jaxsr.train.sharding.use_cpu_cores`, which inference does not import.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def cpu_cores() -> int:
  """The cores this process may run on (its affinity mask where the OS has one)."""
  if hasattr(os, "sched_getaffinity"):
    return max(1, len(os.sched_getaffinity(0)))
  return max(1, os.cpu_count() or 1)


def use_cpu_cores(count: int | None = None) -> int | None:
  """Asks JAX for `count` CPU devices (default: one per core); returns the count set.

  Returns None, changing nothing, when XLA_FLAGS (--xla_force_host_platform_device_count) or
  JAX_NUM_CPU_DEVICES already says how many, or when JAX's backends have started (the count can
  only be chosen before). Only the CPU backend is concerned: GPUs and TPUs are unaffected.
  """
  if ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
      or os.environ.get("JAX_NUM_CPU_DEVICES")):
    return None
  count = cpu_cores() if count is None else int(count)
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError:  # "should be updated before backends are initialized"
    return None
  return count


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis mesh over `devices` (default: every local device of the default backend)."""
  devices = list(jax.local_devices() if devices is None else devices)
  if not devices:
    raise ValueError("no devices to run on")
  return Mesh(np.asarray(devices), (BATCH_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """A copy on every device of the mesh (the network's parameters)."""
  return NamedSharding(mesh, PartitionSpec())


def batch_split(mesh: Mesh) -> NamedSharding:
  """The leading (batch) axis split evenly over the mesh's devices."""
  return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def row_split(mesh: Mesh) -> NamedSharding:
  """An NHWC batch's rows (axis 1) split over the mesh's devices: one image spread spatially."""
  return NamedSharding(mesh, PartitionSpec(None, BATCH_AXIS))


def round_up(batch: int, devices: int) -> int:
  """The smallest multiple of `devices` that is at least `batch`."""
  return -(-batch // devices) * devices
