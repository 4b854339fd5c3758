"""Shared test setup: CPU-only JAX, quiet TensorFlow, and a persistent XLA compilation cache.

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
