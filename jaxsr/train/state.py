"""Everything a GAN fine-tuning run carries from step to step, as one pytree (checkpointed whole)."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array              # int32 scalar: completed iterations.
  g_params: Any                # Generator parameters being optimised.
  g_opt_state: Any
  ema_params: Any              # EMA of g_params (decay 0.999): what evaluation and export use.
  d_params: Any
  d_spectral: Any              # Spectral-norm u, v of the discriminator ("spectral" collection).
  d_opt_state: Any


def adam(config) -> optax.GradientTransformation:
  """Adam as PyTorch's torch.optim.Adam (eps outside the square root, no weight decay)."""
  return optax.adam(config.lr, b1=config.b1, b2=config.b2, eps=config.eps)


def create(g_params, d_variables, g_tx: optax.GradientTransformation,
           d_tx: optax.GradientTransformation) -> TrainState:
  g_params = jax.tree.map(jnp.asarray, g_params)
  d_params = jax.tree.map(jnp.asarray, d_variables["params"])
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_params,
      g_opt_state=g_tx.init(g_params),
      ema_params=jax.tree.map(jnp.copy, g_params),
      d_params=d_params,
      d_spectral=jax.tree.map(jnp.asarray, d_variables["spectral"]),
      d_opt_state=d_tx.init(d_params),
  )
