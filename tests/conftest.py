"""Shared test setup: CPU-only JAX, quiet TensorFlow, deterministic threads."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
