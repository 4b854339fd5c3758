"""The loss terms of Real-ESRGAN's GAN stage (BasicSR's L1Loss, PerceptualLoss, GANLoss 'vanilla')."""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import optax


def l1(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error over every element (BasicSR L1Loss, reduction 'mean')."""
  return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def block_mean_l1(pred: jax.Array, target: jax.Array, block: int) -> jax.Array:
  """Mean absolute difference of the `block` x `block` means of NHWC `pred` and `target`.

  A low-frequency (intensity) term. Why it is needed beside the pixel L1: L1 is a median fit, so
  where per-pixel residuals (texture, noise, invented detail) are larger than a global offset,
  their signs are close to random and the offset's gradient is weak, about offset / residual
  scale; a GAN-trained generator can then keep a brightness bias of a few levels. Block means
  average the residual texture away first, so this term pulls every region's mean intensity to
  the target at full strength and leaves everything finer than the block to the other terms.
  """
  means = lambda x: _block_means(x.astype(jnp.float32), block, "block_mean_l1")
  return jnp.mean(jnp.abs(means(pred) - means(target)))


def _block_means(x: jax.Array, block: int, name: str) -> jax.Array:
  n, h, w, c = x.shape
  if block < 1 or h % block or w % block:
    raise ValueError(f"{name} needs H and W ({h}x{w}) divisible by the block ({block})")
  return x.reshape(n, h // block, block, w // block, block, c).mean(axis=(2, 4))


def block_gradient_rms(x: jax.Array, block: int, eps: float = 1e-6) -> jax.Array:
  """The RMS of the image gradient in each `block` x `block` square of NHWC `x`, per channel.

  Gradients are forward differences along H and W, 0 across the last row and column (so each
  square's value depends on its own pixels and one row and column of its neighbours). `eps`
  under the square root keeps the gradient finite where a square is flat.
  """
  x = x.astype(jnp.float32)
  dy = jnp.pad(x[:, 1:] - x[:, :-1], ((0, 0), (0, 1), (0, 0), (0, 0)))
  dx = jnp.pad(x[:, :, 1:] - x[:, :, :-1], ((0, 0), (0, 0), (0, 1), (0, 0)))
  return jnp.sqrt(_block_means(dy * dy + dx * dx, block, "block_gradient_rms") + eps)


def texture_energy_l1(pred: jax.Array, target: jax.Array, block: int) -> jax.Array:
  """Mean absolute difference of the per-square gradient RMS of `pred` and `target`.

  A texture-amount term. Why it is needed beside the pixel L1: fine texture (lung parenchyma,
  film grain) that the degraded input no longer pins down is, for an L1 fit, a zero-mean
  residual whose best prediction is flat, so the generator learns to smooth it away. This term
  asks only for the right *amount* of texture in each square, not its exact placement: a flat
  square where GT is textured costs as much as texture painted where GT is flat (the pretrained
  model's failure), while texture of GT's strength costs nothing whatever its phase.
  """
  return jnp.mean(jnp.abs(block_gradient_rms(pred, block) - block_gradient_rms(target, block)))


def bce_with_logits(logits: jax.Array, target_is_real: bool) -> jax.Array:
  """Mean binary cross-entropy of per-pixel logits against an all-real or all-fake target."""
  labels = jnp.full(logits.shape, 1.0 if target_is_real else 0.0, jnp.float32)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), labels))


def perceptual(features_fn: Callable[..., Mapping[str, jax.Array]],
               pred: jax.Array, target: jax.Array, layer_weights: Mapping[str, float]) -> jax.Array:
  """sum_k w_k * mean|phi_k(pred) - phi_k(target)|, target features held constant.

  `features_fn(images, grad_rows)` maps an NHWC RGB batch in [0, 1] to {layer: features}; both
  images go through it in one batch so the frozen network runs once, and `grad_rows` tells it
  that only the leading rows (the prediction) need an input gradient (`VGGFeatures`).
  """
  n = pred.shape[0]
  both = features_fn(jnp.concatenate([pred, target], axis=0), grad_rows=n)
  total = jnp.zeros((), jnp.float32)
  for layer, weight in layer_weights.items():
    feats = both[layer]
    total += weight * l1(feats[:n], jax.lax.stop_gradient(feats[n:]))
  return total
