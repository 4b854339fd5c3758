"""A persistent XLA compilation cache for jaxsr's commands: a program compiled once on a machine
is loaded, not compiled again, by the next command that needs it.

Why: on CPUs, compiling is a large part of a short command. x4plus's forward for one input shape
compiles in about 6 s: `python -m jaxsr.upscale` on a 96x96 PNG took 16.7 s the first time and
9.7 s with the program cached (2-core Zen 3). A discriminator trained from scratch is initialised
by a program whose random initialisers (threefry's bit generator compiles slowly on XLA's CPU
backend) take 8 s to compile, and a relaunched or resumed training run compiles its train step
again (about a minute for x4plus on a 2-core CPU).

`python -m jaxsr.upscale`, `jaxsr.evaluate`, `jaxsr.train`, `jaxsr.study` and `jaxsr.demo` keep
their programs in the user's cache folder (`$XDG_CACHE_HOME/jaxsr/xla`, else `~/.cache/jaxsr/xla`),
so a resumed or relaunched run, another study arm or the next file's upscale compiles nothing that
was compiled before with the same shapes. Each machine kind gets a folder of its own (`host_tag`):
an XLA:CPU executable is machine code for the instruction set of the CPU that compiled it, and a
home folder shared by a cluster's nodes must not hand an AVX-512 program to an AVX2 node.

What the user set up wins: with JAX_COMPILATION_CACHE_DIR (or `jax_compilation_cache_dir`) set,
this changes nothing; `JAXSR_COMPILATION_CACHE=off` turns jaxsr's default off. A cache entry is
keyed by JAX on the program, the compiler options, the devices and the jax/jaxlib versions, and
only programs that took at least a second to compile are written (JAX's
`jax_persistent_cache_min_compile_time_secs`), so small ones never fill the folder.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path

import jax

OFF_VALUES = ("0", "off", "false", "no", "none")
SWITCH = "JAXSR_COMPILATION_CACHE"
# Least-recently-used entries go beyond this (JAX's LRU eviction; it locks the folder with
# filelock). An x4plus forward for one window shape is about 0.4 MB.
MAX_BYTES = 2 * 1024**3


def user_cache_folder() -> Path:
  """`$XDG_CACHE_HOME/jaxsr/xla`, else `~/.cache/jaxsr/xla`."""
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "jaxsr" / "xla"


def _cpu_features() -> str:
  """The CPU's instruction-set flags as the OS reports them (Linux: /proc/cpuinfo's first
  `flags` / `Features` line), else what `platform` knows."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
          return " ".join(sorted(value.split()))
  except OSError:
    pass
  return platform.processor()


def host_tag() -> str:
  """`<machine>-<hash of the CPU's instruction-set flags>`: one cache folder per machine kind."""
  digest = hashlib.sha256(_cpu_features().encode()).hexdigest()[:12]
  return f"{platform.machine() or 'unknown'}-{digest}"


def use_persistent_cache() -> Path | None:
  """Keeps compiled programs in `user_cache_folder() / host_tag()`.

  Must run before the first compilation of the process (JAX decides once whether it caches).
  Returns the folder in use, or None where it changed nothing: the user set JAX's cache folder,
  `JAXSR_COMPILATION_CACHE` is off, or the folder cannot be created (a warning says so: the
  command then runs as before, compiling everything).
  """
  if jax.config.jax_compilation_cache_dir:
    return None
  if os.environ.get(SWITCH, "").strip().lower() in OFF_VALUES:
    return None
  path = user_cache_folder().expanduser() / host_tag()
  if not _can_create(path):
    warnings.warn(f"no compilation cache ({path} cannot be created or written); every program "
                  f"compiles afresh. Set JAX_COMPILATION_CACHE_DIR to a writable folder, or "
                  f"{SWITCH}=off to silence this.", stacklevel=2)
    return None
  # JAX creates the folder at the first compilation, so a command that stops before compiling
  # anything (a bad config, a missing file) leaves no folder behind.
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
  return path


def _can_create(path: Path) -> bool:
  """Whether `path` is a writable folder or could be made one (its nearest existing ancestor is
  a writable folder). JAX would otherwise fail inside the first compilation."""
  for existing in (path, *path.parents):
    if existing.exists():
      return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
  return False
