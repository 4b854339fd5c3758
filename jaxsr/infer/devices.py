"""The devices inference spreads its windows over: all local ones, CPU cores included.

XLA's CPU backend runs a convolution on one core, so with JAX's default single CPU device the
other cores idle (1 and 2 threads take the same time). `use_cpu_cores()` asks for one CPU device
per core; `Upscaler` then splits each batch of windows over a mesh of all local devices (one or
more CPU cores, or every GPU / TPU chip of the host). It must run before JAX's backends start
(`python -m jaxsr.upscale` calls it first thing); in a process where JAX already runs, it changes
nothing. Mirrors `jaxsr.train.sharding.use_cpu_cores`, which inference does not import.
"""

from __future__ import annotations

import functools
import mmap
import os
from pathlib import Path
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


# XLA's CPU compiler hands convolutions and dots, fused with the element-wise and reduction ops
# around them, to YNNPACK. Those multi-op fusions ran far slower than the bare convolutions here:
# the frozen VGG19 forward at 64x64 took 170 ms with them and 55 ms without (2-core Xeon, jax
# 0.10.2); on a 2-core EPYC (Zen 5) every network of the train step was up to 8 % faster
# without them on one core. Kept: each convolution and dot as its own YNNPACK call. `reduce`
# keeps YNNPACK's reductions, which XLA's default has on and which naming only the two
# `individual_` kinds would switch off: XLA's own reduce emitter took 34 ms instead of 4.3 ms for
# the norm of the generator's 702 parameter arrays (one Zen 5 core), and the train step, which
# reduces every bias gradient and logs norms, was about 8 % slower without it.
_YNN_FUSION_FLAG = "xla_cpu_experimental_ynn_fusion_type"
_YNN_FUSION_VALUE = "individual_convolution,individual_dot,reduce"


@functools.cache
def backend_knows_flag(flag: str) -> bool:
  """Whether this jaxlib's XLA declares `flag` (an unknown flag in XLA_FLAGS aborts the process,
  and experimental flags come and go between releases)."""
  try:
    import jaxlib  # pylint: disable=import-outside-toplevel
  except ImportError:
    return False
  library = Path(jaxlib.__file__).with_name("libjax_common.so")
  if not library.is_file():
    return False
  with open(library, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
    return data.find(flag.encode()) >= 0


def prefer_unfused_cpu_convolutions() -> bool:
  """Adds `--xla_cpu_experimental_ynn_fusion_type=individual_convolution,individual_dot,reduce`
  to XLA_FLAGS (see above); returns whether it did.

  Like the device count, it only takes effect before JAX's backends start, and it concerns only
  the CPU backend. Changes nothing when XLA_FLAGS already sets the flag (the user's choice wins) or
  when this jaxlib does not know it.
  """
  current = os.environ.get("XLA_FLAGS", "")
  if _YNN_FUSION_FLAG in current or not backend_knows_flag(_YNN_FUSION_FLAG):
    return False
  os.environ["XLA_FLAGS"] = f"{current} --{_YNN_FUSION_FLAG}={_YNN_FUSION_VALUE}".strip()
  return True


def use_cpu_cores(count: int | None = None) -> int | None:
  """Asks JAX for `count` CPU devices (default: one per core); returns the count set.

  Returns None, changing nothing, when XLA_FLAGS (--xla_force_host_platform_device_count) or
  JAX_NUM_CPU_DEVICES already says how many, or when JAX's backends have started (the count can
  only be chosen before). Only the CPU backend is concerned: GPUs and TPUs are unaffected. Also
  keeps convolutions unfused (`prefer_unfused_cpu_convolutions`), faster on one core each.
  """
  prefer_unfused_cpu_convolutions()
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
