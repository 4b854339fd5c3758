"""`jaxsr.infer.devices`: the CPU set-up every command makes before JAX starts."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from scipy import signal

_PROBE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from jaxsr.infer import devices
    added = devices.prefer_unfused_cpu_convolutions()
    count = devices.use_cpu_cores(2)
    import jax, jax.numpy as jnp
    rng = np.random.default_rng(0)
    x, k = rng.random((1, 12, 12, 5), np.float32), rng.random((3, 3, 5, 4), np.float32)
    y = jax.jit(lambda x, k: jnp.maximum(jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")), 0.0))(x, k)
    # Reductions go to YNNPACK too: a norm over all but the channels, as of bias gradients.
    norm = jax.jit(lambda x: jnp.sqrt(jnp.sum(x * x, axis=(0, 1, 2))))(x)
    np.save(sys.argv[1], np.asarray(y))
    np.save(sys.argv[1] + ".norm.npy", np.asarray(norm))
    print(json.dumps({"added": added, "count": count, "devices": jax.device_count(),
                      "xla_flags": os.environ.get("XLA_FLAGS", "")}))
""")


def _probe(tmp_path, xla_flags):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("JAX_NUM_CPU_DEVICES", None)
  env.pop("XLA_FLAGS", None)
  if xla_flags is not None:
    env["XLA_FLAGS"] = xla_flags
  run = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "y.npy")], env=env,
                       capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  result = json.loads(run.stdout.strip().splitlines()[-1])
  norm = np.load(tmp_path / "y.npy.norm.npy")
  x, _ = _inputs()
  np.testing.assert_allclose(norm, np.linalg.norm(x.astype(np.float64).reshape(-1, 5), axis=0),
                             rtol=1e-5)
  return result, np.load(tmp_path / "y.npy")


def _inputs(seed=0):
  """The probe's image and kernel, drawn as it draws them."""
  rng = np.random.default_rng(seed)
  return rng.random((1, 12, 12, 5), np.float32), rng.random((3, 3, 5, 4), np.float32)


def _reference(seed=0):
  x, k = _inputs(seed)
  out = np.stack([sum(signal.correlate2d(x[0, :, :, c], k[:, :, c, o], mode="same")
                      for c in range(5)) for o in range(4)], -1)
  return np.maximum(out, 0)[None]


def test_unfused_convolutions_are_asked_for_accepted_and_compute_the_same(tmp_path):
  # This jaxlib knows the flag: it is added, JAX starts with it (an unknown XLA flag would abort)
  # and a fused conv + ReLU equals SciPy's correlation.
  result, y = _probe(tmp_path, None)
  assert result["added"] and result["count"] == 2 and result["devices"] == 2
  assert ("--xla_cpu_experimental_ynn_fusion_type=individual_convolution,individual_dot,reduce"
          in result["xla_flags"])
  np.testing.assert_allclose(y, _reference(), rtol=1e-5, atol=1e-5)


def test_a_users_own_fusion_setting_is_kept(tmp_path):
  result, y = _probe(tmp_path, "--xla_cpu_experimental_ynn_fusion_type=")
  assert not result["added"]
  assert result["xla_flags"] == "--xla_cpu_experimental_ynn_fusion_type="
  np.testing.assert_allclose(y, _reference(), rtol=1e-5, atol=1e-5)
