"""Data parallelism: a step on 4 devices equals the step on 1 device (in this process, which has 4
CPU devices); a 2-process training run (preempted on one process, then resumed) equals a
1-process run (subprocesses: several processes are the point)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest


TRAIN_SCRIPT = Path(__file__).with_name("multihost_train.py")
REPO = Path(__file__).resolve().parents[2]
GLOBAL_BATCH = 4


def run_training(*args, background=False):
  """multihost_train.py in a fresh process with one CPU device."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
         "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=1"}
  cmd = [sys.executable, str(TRAIN_SCRIPT), *map(str, args)]
  if background:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return done


def one_step(device_count: int) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
  """(state leaves, metrics) after one train step of tiny networks on a batch of 4 split over the
  first `device_count` of this process's CPU devices (tests/conftest.py sets up 4)."""
  from jaxsr.models import RRDBNet, UNetDiscriminatorSN  # pylint: disable=import-outside-toplevel
  from jaxsr.train import sharding  # pylint: disable=import-outside-toplevel
  from jaxsr.train import state as state_lib  # pylint: disable=import-outside-toplevel
  from jaxsr.train.step import make_train_step  # pylint: disable=import-outside-toplevel

  generator = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
  discriminator = UNetDiscriminatorSN(num_feat=8)
  rng = np.random.default_rng(0)
  batch = {"lq": rng.random((GLOBAL_BATCH, 8, 8, 3), np.float32),
           "gt": rng.random((GLOBAL_BATCH, 32, 32, 3), np.float32)}
  batch["gt_usm"] = np.clip(batch["gt"] * 1.1, 0, 1).astype(np.float32)
  g_params = generator.init(jax.random.key(1), batch["lq"][:1])["params"]
  d_vars = discriminator.init(jax.random.key(2), batch["gt"][:1])
  opt = ml_collections.ConfigDict(dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8))
  g_tx, d_tx = state_lib.adam(opt), state_lib.adam(opt)
  loss = ml_collections.ConfigDict(dict(pixel_weight=1.0, perceptual_weight=1.0, gan_weight=0.1,
                                        ema_decay=0.999, perceptual_layer_weights={},
                                        d_warmup_steps=0))
  mesh = sharding.make_mesh(sharding.training_devices(device_count))
  step = sharding.jit_data_parallel(
      make_train_step(generator, discriminator, None, loss, g_tx, d_tx,
                      axis_name=sharding.DATA_AXIS), mesh)
  state = jax.device_put(state_lib.create(g_params, d_vars, g_tx, d_tx), sharding.replicated(mesh))
  state, metrics = step(state, sharding.global_batch(batch, sharding.batch_sharded(mesh)), None)
  assert all(len(x.sharding.device_set) == device_count for x in jax.tree.leaves(state))
  return ([np.asarray(x) for x in jax.tree.leaves(state)],
          {k: np.asarray(v) for k, v in jax.device_get(metrics).items()})


@pytest.mark.slow
def test_four_devices_equal_one_device():
  (four, four_metrics), (one, one_metrics) = one_step(4), one_step(1)
  assert len(four) == len(one)
  for i, (a, b) in enumerate(zip(four, one)):
    # Gradients are all-reduced in another order, so sums differ in the last float bits; Adam's
    # first step (lr * g / (|g| + eps)) keeps that below 1e-6 except where |g| ~ eps.
    diff = np.abs(a.astype(np.float64) - b)
    assert diff.max() <= 2e-4, i
    assert np.mean(diff > 1e-6) < 0.02, i
  assert set(four_metrics) == set(one_metrics)
  for k in four_metrics:
    if not k.endswith("grad_norm"):
      np.testing.assert_allclose(four_metrics[k], one_metrics[k], rtol=1e-5, err_msg=k)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def train_on_two_processes(*args, sigterm_at_step=0):
  """Both processes' stdout; the stop signal (if any) reaches process 1 only."""
  port = free_port()
  procs = [run_training(*args, "--process_id", i, "--num_processes", 2, "--port", port,
                        "--sigterm_at_step", sigterm_at_step if i == 1 else 0, background=True)
           for i in range(2)]
  outs = []
  for p in procs:
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    outs.append(out)
  return outs


@pytest.mark.slow
def test_two_process_training_stops_together_resumes_and_equals_one_process(tmp_path):
  from tests.train.test_trainer import make_images  # pylint: disable=import-outside-toplevel

  data = make_images(tmp_path / "images")
  two = tmp_path / "two"
  # A SIGTERM to one process (during step 3) stops both at the next step where the hosts compare
  # (stop_check_every_steps = 2: step 4), with one checkpoint of that step.
  outs = train_on_two_processes("--workdir", two, "--data", data, "--steps", 6,
                                sigterm_at_step=3)
  assert "RESULT 0 4 a stop signal to another process" in outs[0]
  assert "RESULT 1 4 SIGTERM" in outs[1]
  assert os.listdir(two / "checkpoints") == ["4"]
  outs = train_on_two_processes("--workdir", two, "--data", data, "--steps", 6)
  assert "resumed from step 4" in outs[0] and "RESULT 1 6 None" in outs[1]

  one = tmp_path / "one"
  out = run_training("--workdir", one, "--data", data, "--steps", 6).stdout
  assert "RESULT 0 6 None" in out
  # The same global batches reach the same networks: every weight of the two runs agrees up to
  # the all-reduce order of the gradients (see assert_same_step), far below what steps 5 and 6
  # moved them.
  from tests.train.test_trainer import restore_state  # pylint: disable=import-outside-toplevel

  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  one_state = restore_state(one, 6)
  # Saved by two processes: restored onto this process's device, shaped like the 1-process run.
  like = jax.tree.map(ocp.utils.to_shape_dtype_struct, one_state)
  with ocp.CheckpointManager(two / "checkpoints") as manager:
    two_state, two_at_4 = (manager.restore(step, args=ocp.args.StandardRestore(like))
                           for step in (6, 4))
  for name in ("g_params", "d_params", "ema_params"):
    pairs = zip(jax.tree.leaves(two_state[name]), jax.tree.leaves(one_state[name]),
                jax.tree.leaves(two_at_4[name]))
    for x, y, before in pairs:
      x, y, before = (np.asarray(v, np.float64) for v in (x, y, before))
      diff = np.abs(x - y)
      assert diff.max() <= 2e-4 and np.mean(diff > 1e-6) < 0.02, name
      assert diff.mean() < 0.01 * np.abs(x - before).mean(), name

  # A cluster's checkpoint exports on one machine (its arrays are laid out on 2 processes).
  from jaxsr import checkpoint  # pylint: disable=import-outside-toplevel
  from jaxsr.train import export  # pylint: disable=import-outside-toplevel

  export.export_checkpoint(two, step=4, torch_file=False)
  exported, _ = checkpoint.load(two / "export" / "generator_ema")
  for x, y in zip(jax.tree.leaves(exported["params"]), jax.tree.leaves(two_at_4["ema_params"])):
    np.testing.assert_array_equal(x, y)


def test_num_devices_picks_the_first_devices_and_refuses_what_cannot_be():
  from jaxsr.train import sharding  # pylint: disable=import-outside-toplevel

  assert sharding.training_devices(0) == jax.devices()
  assert sharding.training_devices(2) == jax.devices()[:2]
  with pytest.raises(ValueError, match="has 4 device"):
    sharding.training_devices(5)
  with pytest.raises(ValueError, match="divisible by the number of devices"):
    sharding.check_batch_size(2, sharding.make_mesh(sharding.training_devices(4)))


def test_memory_optimised_schedule_only_where_every_core_runs_a_device(monkeypatch):
  """XLA's memory-optimised schedule for the CPU step where each core runs one device's program,
  and XLA's default (which runs independent branches on spare cores) where cores are left over;
  a step compiled with the option still computes what NumPy does."""
  from jaxsr.infer import devices  # pylint: disable=import-outside-toplevel
  from jaxsr.train import sharding  # pylint: disable=import-outside-toplevel

  monkeypatch.setattr(devices, "cpu_cores", lambda: 2)
  memory_optimised = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
  two, four = (sharding.make_mesh(jax.devices()[:n]) for n in (2, 4))
  assert sharding.compiler_options(two) == memory_optimised
  assert sharding.compiler_options(four) == memory_optimised
  assert sharding.compiler_options(sharding.make_mesh(jax.devices()[:1])) == {}
  monkeypatch.setattr(devices, "cpu_cores", lambda: 8)
  assert sharding.compiler_options(four) == {}

  rng = np.random.default_rng(0)
  x, w = rng.random((4, 6), np.float32), rng.random((6, 3), np.float32)
  data = sharding.batch_sharded(two)
  out = jax.jit(lambda x, w: (jnp.tanh(x @ w), jnp.sum(x)), in_shardings=(data, None),
                compiler_options=memory_optimised)(x, w)
  np.testing.assert_allclose(out[0], np.tanh(x @ w), rtol=1e-5)
  np.testing.assert_allclose(out[1], x.sum(), rtol=1e-5)
