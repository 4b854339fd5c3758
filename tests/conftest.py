"""Shared test setup: CPU-only JAX with 4 devices, quiet TensorFlow, a persistent XLA compilation
cache.

Many tests (and the subprocesses some of them start, which inherit the environment) compile the
same small networks; the on-disk cache turns each repeat from tens of seconds into one.
"""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")

# The CPU compiler setting every jaxsr command makes before JAX starts, so the tests check the
# programs users run (and the subprocesses they start inherit it through XLA_FLAGS).
from jaxsr.infer import devices  # pylint: disable=wrong-import-position

devices.prefer_unfused_cpu_convolutions()

# Four CPU devices in every test process, set once before JAX starts: multi-device code (the
# data-parallel train step, windows and image rows split over devices) is tested in-process on
# meshes of 1, 2 or 4 of them. Subprocesses (the commands as users run them) choose their own.
TEST_CPU_DEVICES = 4
import jax  # pylint: disable=wrong-import-position

jax.config.update("jax_num_cpu_devices", TEST_CPU_DEVICES)


def pytest_collection_modifyitems(config, items):
  """Test files with slow (end-to-end) tests run first.

  Under pytest-xdist's `--dist loadfile` (pyproject's addopts) each file runs on one worker, in
  collection order: the few files that take minutes, started first, overlap with everything else
  instead of finishing alone at the end. Without xdist the order does not matter.
  """
  del config
  slow_files = {item.path for item in items if item.get_closest_marker("slow")}
  items.sort(key=lambda item: item.path not in slow_files)  # Stable: order within a file kept.
