"""jaxsr.infer.compilation_cache: where compiled programs are kept, and that a second process
loads them instead of compiling (JAX's own cache-hit events) with the same results.

JAX decides once per process whether it caches, and the test processes already use the suite's
cache (conftest.py), so each case runs in a fresh Python process of its own.
"""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from jaxsr.infer import compilation_cache

REPO = Path(__file__).resolve().parents[2]

# One process: jaxsr's cache set up, then a small jitted program.
PROGRAM = r"""
import json, warnings
import numpy as np, jax, jax.numpy as jnp
from jaxsr.infer import compilation_cache
events = []
jax.monitoring.register_event_listener(lambda event, **kwargs: events.append(event))
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter("always")
  folder = compilation_cache.use_persistent_cache()
x = np.arange(12, dtype=np.float32).reshape(3, 4) / 12
y = jax.jit(lambda a: jnp.tanh(a) @ a.T)(x)
print(json.dumps({"folder": folder and str(folder), "config": jax.config.jax_compilation_cache_dir,
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "warnings": [str(w.message) for w in caught], "y": np.asarray(y).tolist()}))
"""


def numpy_result():
  """What PROGRAM computes, by NumPy."""
  x = np.arange(12, dtype=np.float32).reshape(3, 4) / 12
  return np.tanh(x) @ x.T


def environment(tmp_path, **extra):
  """The suite's environment without its JAX cache folder; the user cache under tmp_path; every
  program cached however fast it compiled (JAX skips those under a second by default)."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COMPILATION_CACHE_DIR", compilation_cache.SWITCH)}
  env.update({"XDG_CACHE_HOME": str(tmp_path / "xdg"), "JAX_PLATFORMS": "cpu",
              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "PYTHONPATH": str(REPO), **extra})
  return env


def run_program(tmp_path, **extra):
  out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True,
                       text=True, cwd=REPO, timeout=300, env=environment(tmp_path, **extra))
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def cache_entries(folder: Path):
  return sorted(p.name for p in folder.glob("*-cache"))


def test_a_second_process_loads_what_the_first_compiled(tmp_path):
  first = run_program(tmp_path)
  folder = tmp_path / "xdg" / "jaxsr" / "xla" / compilation_cache.host_tag()
  assert first["folder"] == first["config"] == str(folder)
  assert first["hits"] == 0 and len(cache_entries(folder)) == 1
  second = run_program(tmp_path)
  assert second["hits"] == 1 and len(cache_entries(folder)) == 1
  # The loaded program computes what the compiled one did, and what NumPy does.
  np.testing.assert_allclose(second["y"], numpy_result(), rtol=1e-6)
  assert second["y"] == first["y"]


def test_the_users_cache_folder_wins_and_the_switch_turns_it_off(tmp_path):
  user = run_program(tmp_path, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine"))
  assert user["folder"] is None and user["config"] == str(tmp_path / "mine")
  assert len(cache_entries(tmp_path / "mine")) == 1
  off = run_program(tmp_path, **{compilation_cache.SWITCH: "Off"})
  assert off["folder"] is None and off["config"] is None and not off["warnings"]
  assert not (tmp_path / "xdg").exists()


def test_a_folder_that_cannot_be_created_warns_and_compiles_as_before(tmp_path):
  (tmp_path / "a_file").write_text("")
  out = run_program(tmp_path, XDG_CACHE_HOME=str(tmp_path / "a_file"))
  assert out["folder"] is None and out["config"] is None
  assert len(out["warnings"]) == 1 and "no compilation cache" in out["warnings"][0]
  np.testing.assert_allclose(out["y"], numpy_result(), rtol=1e-6)


def test_each_instruction_set_gets_a_folder_of_its_own(monkeypatch):
  monkeypatch.setattr(compilation_cache, "_cpu_features", lambda: "avx2 fma sse4_2")
  avx2 = compilation_cache.host_tag()
  monkeypatch.setattr(compilation_cache, "_cpu_features", lambda: "avx2 avx512f fma sse4_2")
  avx512 = compilation_cache.host_tag()
  assert avx2 != avx512
  monkeypatch.undo()
  tag = compilation_cache.host_tag()
  assert tag == compilation_cache.host_tag() and tag.startswith(f"{platform.machine()}-")
