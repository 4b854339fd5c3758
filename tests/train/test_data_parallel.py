"""Data parallelism: a step on 4 devices equals the step on 1 device; a 2-process training run
(preempted on one process, then resumed) equals a 1-process run. (A 2-process single step
against 1 process was a separate test; the training run covers it, with the same tolerance, at
every weight after 6 steps.)"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest


SCRIPT = Path(__file__).with_name("data_parallel_step.py")
TRAIN_SCRIPT = Path(__file__).with_name("multihost_train.py")
REPO = Path(__file__).resolve().parents[2]


def run(out, *args, device_count=1, background=False, script=SCRIPT):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={device_count}"}
  cmd = [sys.executable, str(script), *map(str, args)]
  if out is not None:
    cmd += ["--out", str(out)]
  if background:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return done


def assert_same_step(a_file, b_file):
  a, b = np.load(a_file), np.load(b_file)
  assert set(a.files) == set(b.files)
  for k in a.files:
    if k.startswith("metric/") or k == "devices":
      continue
    # Gradients are all-reduced in another order, so sums differ in the last float bits; Adam's
    # first step (lr * g / (|g| + eps)) keeps that below 1e-6 except where |g| ~ eps.
    diff = np.abs(a[k].astype(np.float64) - b[k])
    assert diff.max() <= 2e-4, k
    assert np.mean(diff > 1e-6) < 0.02, k
  for k in a.files:
    if k.startswith("metric/") and not k.endswith("grad_norm"):
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, err_msg=k)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
  out = tmp_path_factory.mktemp("dp") / "one.npz"
  run(out, "--devices", 1, device_count=4)
  assert int(np.load(out)["devices"]) == 1
  return out


@pytest.mark.slow
def test_four_devices_equal_one_device(tmp_path, one_device):
  run(tmp_path / "four.npz", device_count=4)
  assert int(np.load(tmp_path / "four.npz")["devices"]) == 4
  assert_same_step(tmp_path / "four.npz", one_device)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def train_on_two_processes(*args, sigterm_at_step=0):
  """Both processes' stdout; the stop signal (if any) reaches process 1 only."""
  port = free_port()
  procs = [run(None, *args, "--process_id", i, "--num_processes", 2, "--port", port,
               "--sigterm_at_step", sigterm_at_step if i == 1 else 0, script=TRAIN_SCRIPT,
               background=True) for i in range(2)]
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
  out = run(None, "--workdir", one, "--data", data, "--steps", 6, script=TRAIN_SCRIPT).stdout
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
