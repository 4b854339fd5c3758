"""One iteration of Real-ESRGAN's GAN fine-tuning, as a pure function of (state, batch).

Order and semantics follow RealESRGANModel.optimize_parameters:
  1. G step: sr = G(lq); loss = w_pix * L1(sr, gt_usm) + w_percep * perceptual(sr, gt_usm)
     + w_gan * BCE(D(sr), real). D runs in train mode (one spectral-norm power iteration).
  2. D step on the same sr (detached): BCE(D(gt), real) + BCE(D(sr), fake), two more iterations;
     both terms' gradients are summed into one Adam step, as PyTorch accumulates them.
  3. EMA of G after both steps (optionally bias-corrected: `ema_decay_at`).

Discriminator warm-up (BasicSR's `net_d_init_iters`, `config.d_warmup_steps`): for the first
steps G is not optimised (its forward still feeds D the fakes, and D's spectral norm skips the
G-step power iteration, as no G step runs); D learns alone to tell the starting G's output from
GT before its gradients steer G. One compiled step: the G step is computed and, during the
warm-up, its results (G, its Adam state, the spectral vectors it moved) are not kept. A
`lax.cond` would skip that work during the warm-up, but on XLA's CPU backend the step with the
cond ran about 14 s per x4plus step after the warm-up (the fine-tuning study, batch 2), where
the plain step takes about 2 s.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxsr.models import SPECTRAL_COLLECTION
from jaxsr.train import losses
from jaxsr.train.state import TrainState


def ema_decay_at(step: jax.Array, decay: float, *, debias: bool, first_g_step: int = 0):
  """The EMA decay of the update that follows `step` completed steps.

  Without `debias`, the constant `decay`: the original's EMA starts as a copy of the starting
  generator, which keeps the weight decay**T after T steps (0.99**180 = 16 % after the demo's
  180 steps, 0.999**300 = 74 % after 300 steps at the paper's decay), so a short run's EMA is
  still partly the pretrained network, with its bias.

  With `debias`, the EMA is bias-corrected as Adam corrects its moments: after the t-th G update
  (counted from `first_g_step`, where the D warm-up ends) it is the average of those t generators
  weighted by decay**(t - s), the starting weights taking no part. As a recurrence on the same
  state that is the decay decay * (1 - decay**(t-1)) / (1 - decay**t): 0 at t = 1 (the EMA becomes
  the first trained generator), tending to `decay` as t grows. During the D warm-up (t <= 0, G
  held at its starting weights) it is 0 as well, so the EMA stays the starting generator.
  """
  if not debias:
    return decay
  t = jnp.maximum(step + 1 - first_g_step, 1).astype(jnp.float32)
  return decay * (1.0 - decay ** (t - 1.0)) / (1.0 - decay ** t)


def make_train_step(generator, discriminator, features_fn: Callable | None, config,
                    g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                    axis_name: str | None = None):
  """Returns train_step(state, batch, perceptual_params) -> (state, metrics).

  `features_fn(perceptual_params, images, grad_rows) -> {layer: features}` is the frozen
  perceptual network (`jaxsr.train.perceptual.build`),
  or None to train without the perceptual term. `config` is the `loss` ConfigDict plus `ema_decay`,
  the optional `ema_debias` (default False: the original's EMA) and `d_warmup_steps` (0: none).
  Its optional `low_frequency_weight` (default 0: the paper's recipe) adds that weight times
  `losses.block_mean_l1(sr, gt, low_frequency_block)` to G's loss, its optional `texture_weight`
  (default 0) that weight times `losses.texture_energy_l1(sr, gt, texture_block)`.

  `axis_name`: the step runs on one shard of the batch per device (`sharding.jit_data_parallel`,
  a shard_map over that mesh axis). Gradients and metrics are then averaged over the axis before
  the optimisers run, which equals the whole batch's mean loss because every device holds the same
  number of rows. None: the step sees the whole batch.
  """
  layer_weights = dict(config.perceptual_layer_weights)
  warmup_steps = int(config.d_warmup_steps)
  ema_debias = bool(config.get("ema_debias", False))
  low_frequency_weight = float(config.get("low_frequency_weight", 0.0))
  low_frequency_block = int(config.get("low_frequency_block", 8))
  texture_weight = float(config.get("texture_weight", 0.0))
  texture_block = int(config.get("texture_block", 8))
  if axis_name is None:
    batch_mean = lambda tree: tree
  else:
    batch_mean = lambda tree: jax.lax.pmean(tree, axis_name)

  def discriminate(d_params, spectral, images):
    logits, updates = discriminator.apply(
        {"params": d_params, SPECTRAL_COLLECTION: spectral}, images, train=True,
        mutable=[SPECTRAL_COLLECTION])
    return logits.astype(jnp.float32), updates[SPECTRAL_COLLECTION]

  def train_step(state: TrainState, batch: dict[str, jax.Array], perceptual_params: Any):
    lq, gt, gt_usm = batch["lq"], batch["gt"], batch["gt_usm"]

    def generator_loss(g_params):
      sr = generator.apply({"params": g_params}, lq).astype(jnp.float32)
      pixel = losses.l1(sr, gt_usm)
      if features_fn is not None:
        percep = losses.perceptual(
            lambda x, grad_rows: features_fn(perceptual_params, x, grad_rows), sr, gt_usm,
            layer_weights)
      else:
        percep = jnp.zeros((), jnp.float32)
      fake_logits, spectral = discriminate(state.d_params, state.d_spectral, sr)
      gan = losses.bce_with_logits(fake_logits, True)
      total = (config.pixel_weight * pixel + config.perceptual_weight * percep
               + config.gan_weight * gan)
      terms = {"g/pixel": pixel, "g/perceptual": percep, "g/gan": gan}
      if low_frequency_weight:  # Not in the paper's recipe (see losses.block_mean_l1).
        terms["g/low_frequency"] = losses.block_mean_l1(sr, gt, low_frequency_block)
        total += low_frequency_weight * terms["g/low_frequency"]
      if texture_weight:  # Not in the paper's recipe (see losses.texture_energy_l1).
        terms["g/texture"] = losses.texture_energy_l1(sr, gt, texture_block)
        total += texture_weight * terms["g/texture"]
      terms["g/total"] = total
      return total, (sr, spectral, terms)

    def update_generator(state):
      (_, (sr, spectral, terms)), grads = jax.value_and_grad(
          generator_loss, has_aux=True)(state.g_params)
      grads, terms = batch_mean((grads, terms))
      updates, opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
      return optax.apply_updates(state.g_params, updates), opt_state, sr, spectral, terms, grads

    g_params, g_opt_state, sr, spectral, g_terms, g_grads = update_generator(state)
    if warmup_steps:  # D warm-up: keep G, its optimiser and the spectral vectors as they were.
      train_g = state.step >= warmup_steps
      keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(train_g, n, o), new, old)
      g_params = keep(g_params, state.g_params)
      g_opt_state = keep(g_opt_state, state.g_opt_state)
      spectral = keep(spectral, state.d_spectral)
      g_grads = keep(g_grads, jax.tree.map(jnp.zeros_like, g_grads))
      g_terms = {**{k: jnp.where(train_g, v, 0.0) for k, v in g_terms.items()},
                 "g/pixel": g_terms["g/pixel"]}

    sr = jax.lax.stop_gradient(sr)

    def discriminator_loss(d_params):
      real_logits, spectral_real = discriminate(d_params, spectral, gt)
      fake_logits, spectral_fake = discriminate(d_params, spectral_real, sr)
      real = losses.bce_with_logits(real_logits, True)
      fake = losses.bce_with_logits(fake_logits, False)
      terms = {"d/real": real, "d/fake": fake, "d/out_real": jnp.mean(real_logits),
               "d/out_fake": jnp.mean(fake_logits)}
      return real + fake, (spectral_fake, terms)

    (_, (d_spectral, d_terms)), d_grads = jax.value_and_grad(
        discriminator_loss, has_aux=True)(state.d_params)
    d_grads, d_terms = batch_mean((d_grads, d_terms))
    d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    decay = ema_decay_at(state.step, config.ema_decay, debias=ema_debias,
                         first_g_step=warmup_steps)
    ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params)

    new_state = state.replace(step=state.step + 1, g_params=g_params, g_opt_state=g_opt_state,
                              ema_params=ema_params, d_params=d_params, d_spectral=d_spectral,
                              d_opt_state=d_opt_state)
    metrics = {**g_terms, **d_terms,
               "g/grad_norm": optax.tree.norm(g_grads), "d/grad_norm": optax.tree.norm(d_grads),
               "g/param_norm": optax.tree.norm(g_params),
               "d/param_norm": optax.tree.norm(d_params)}
    return new_state, metrics

  return train_step
