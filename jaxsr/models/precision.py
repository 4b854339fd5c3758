"""Compute dtypes by name: one vocabulary for every config field and CLI flag.

The canonical names are NumPy's ("float32", "bfloat16"); the short spellings the CLIs have long
used ("fp32", "bf16") are accepted everywhere as the same thing. Parameters and optimiser state
stay float32 whatever the compute dtype.
"""

from __future__ import annotations

import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
ALIASES = {"fp32": "float32", "bf16": "bfloat16"}
NAMES = tuple(COMPUTE_DTYPES) + tuple(ALIASES)


def canonical_name(name: str) -> str:
  """"bf16" -> "bfloat16"; a name outside the vocabulary is a ValueError that lists it."""
  canonical = ALIASES.get(name, name)
  if canonical not in COMPUTE_DTYPES:
    raise ValueError(f"compute dtype must be one of {', '.join(NAMES)}, got {name!r}")
  return canonical


def compute_dtype(name: str):
  """The jnp dtype a compute-dtype name stands for."""
  return COMPUTE_DTYPES[canonical_name(name)]
