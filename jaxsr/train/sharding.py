"""Data parallelism with today's JAX: one "data" mesh axis over every device of every host.

The train state is replicated, batches are split along their leading axis. Each host feeds only its
own rows (`jax.make_array_from_process_local_data`), so the same code runs on one CPU, one GPU, a
multi-GPU box or a TPU pod slice.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxsr.infer import devices

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def training_devices(count: int = 0) -> list[jax.Device]:
  """The devices a run trains on (`config.num_devices`): all of them (0) or the first `count`."""
  every = jax.devices()
  if count == 0:
    return every
  if jax.process_count() > 1:
    raise ValueError(f"num_devices={count}: a multi-process run trains on every device "
                     "(num_devices=0)")
  if not 0 < count <= len(every):
    raise ValueError(f"num_devices={count}: this process has {len(every)} device(s)")
  return every[:count]


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


# XLA's CPU runtime maps each execution's temporary buffer afresh, so every step pays a page fault
# per 4 KiB of it. With one CPU device per core, each core runs one device's program and no core is
# left for the independent branches (D on real images, VGG on the target, ...) that XLA's default
# schedule keeps in flight together; its memory-optimised schedule then halves the train step's
# temporary buffer (x4plus GAN step, batch 2, GT 64: 236 -> 122 MiB per device, page faults
# 121k -> 63k per step) and the step took 0.661 s instead of 0.693 s (Zen 5, 2 cores, 2 devices,
# both compiled in one process and run alternately, 14 rounds). With fewer devices than cores the
# default's concurrency pays (one device on 2 cores: 0.72 s default, 0.81 s memory-optimised), so
# it stays. Inference gains nothing from it (x4plus forward on 96x96 windows: 1.70 s either way).
_CPU_SCHEDULER_FLAG = "xla_cpu_scheduler_type"
_CPU_SCHEDULER_MEMORY_OPTIMIZED = "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"


def compiler_options(mesh: Mesh) -> dict[str, str]:
  """XLA options for the train step on `mesh`: the memory-optimised schedule where every local
  core runs one CPU device of the mesh (see above); none elsewhere (GPU, TPU, spare cores)."""
  local = mesh.local_devices
  if (not all(d.platform == "cpu" for d in local) or len(local) < devices.cpu_cores()
      or not devices.backend_knows_flag(_CPU_SCHEDULER_FLAG)):
    return {}
  return {_CPU_SCHEDULER_FLAG: _CPU_SCHEDULER_MEMORY_OPTIMIZED}


def jit_data_parallel(train_step, mesh: Mesh):
  """jit `train_step(state, batch, frozen) -> (state, metrics)` as one program per device.

  State and frozen params are replicated, the batch is split over the mesh, and the old state's
  buffers are donated to the new one. The step runs per shard (`jax.shard_map`), so it must
  average its gradients and metrics over `DATA_AXIS` itself: build it with
  `make_train_step(..., axis_name=DATA_AXIS)`.

  Why shard_map rather than letting jit partition the whole-batch step: on XLA's CPU backend the
  automatically partitioned backward pass ran at about 1.4x the time of the same per-device
  backward with one explicit gradient mean (x4plus G, 2 devices). The explicit form is also the
  data parallelism the optimiser sees: one all-reduce of the gradients, then identical updates.
  check_vma is off because gradients of the replicated parameters are averaged explicitly (with it
  on, JAX would sum them across devices on its own). `compiler_options(mesh)` picks XLA's schedule.
  """
  rep, data = replicated(mesh), batch_sharded(mesh)
  per_device = jax.shard_map(train_step, mesh=mesh,
                             in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS), PartitionSpec()),
                             out_specs=(PartitionSpec(), PartitionSpec()), check_vma=False)
  return jax.jit(per_device, in_shardings=(rep, data, rep), out_shardings=(rep, rep),
                 donate_argnums=(0,), compiler_options=compiler_options(mesh))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  devices, hosts = mesh.devices.size, jax.process_count()
  if global_batch_size % devices or global_batch_size % hosts:
    raise ValueError(f"batch_size {global_batch_size} must be divisible by the number of devices "
                     f"({devices}) and hosts ({hosts}) so every device gets the same share")


def global_batch(local: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This host's rows -> global arrays sharded over the mesh (no cross-host copies)."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()}


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any of them (e.g. "stop now").

  Each process may see a signal at a different step; acting on the combined flag keeps them in
  lockstep (a checkpoint save is collective). One process: no communication.
  """
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins a multi-host run. With no arguments JAX detects the cluster (TPU pods, SLURM, ...)."""
  kwargs = {k: v for k, v in dict(coordinator_address=coordinator_address,
                                  num_processes=num_processes, process_id=process_id).items()
            if v is not None}
  # CPU processes need a collective backend to all-reduce across hosts (GPUs/TPUs have their own;
  # the setting only concerns the CPU backend). Asking for the backend here would initialise it,
  # which must not happen before `initialize`.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)


def use_cpu_cores(global_batch_size: int) -> int | None:
  """One CPU device per core that the batch can use; returns the count set (None: unchanged).

  XLA's CPU backend runs a convolution on one core, so a single CPU device leaves the other cores
  idle (1 and 2 threads take the same time). One device per core, with the batch split over them
  by the mesh, uses them all. The count is the largest divisor of the batch that is at most the
  number of cores, so every device gets the same share. See `jaxsr.infer.devices.use_cpu_cores`
  for when it applies (before JAX starts; an explicit device count wins; CPU backend only).
  """
  cores = devices.cpu_cores()
  count = max(d for d in range(1, max(1, min(cores, global_batch_size)) + 1)
              if global_batch_size % d == 0)
  return devices.use_cpu_cores(count)
